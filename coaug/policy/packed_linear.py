"""Inference-only Linear layers whose weights are prepacked once into oneDNN's blocked layout (CPU).

At batch 1 (``coaug search``) a decoding step is ~210 matrix-vector products that stream every weight
once. torch's plain ``linear`` hands oneDNN the weight in its stored layout at every call and moved only
~7 GB/s of bf16 weights over the model's shapes on the developers' 2-core Zen 4 (~30 GB/s of read bandwidth);
packed once, at load, the same shapes streamed at ~11 GB/s (fp32: ~10 -> ~15 GB/s), and a whole query
answered 1.2-1.4x faster (benchmarks/search_latency.py compares both side by side); a corpus pass at batch 64
ran 1.10-1.22x faster on a Zen 2 and a Zen 4 but 0.82-1.06x on a Zen 3 (benchmarks/augment_throughput.py
--packed). Greedy and sampled outputs stayed
token-identical in every side-by-side run. Inference only (``policy.packed_weights``: corpus passes and
``coaug search``): a packed weight takes no gradient.
"""

from __future__ import annotations

import functools

import torch

from coaug.policy.model import Policy

# The batch-size hint oneDNN packs for: one new token per decoding step.
DECODING_ROWS = 1


class PackedLinear(torch.nn.Module):
    """The forward of a ``torch.nn.Linear`` on its weight packed for oneDNN."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), DECODING_ROWS)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def packing_available(policy: Policy) -> bool:
    """True when the policy runs on a CPU, this torch build has oneDNN (the packed kernels' library) and
    oneDNN packs the policy's dtype on this CPU (:func:`packs_dtype`)."""
    model = policy.model
    return model.device.type == "cpu" and torch.backends.mkldnn.is_available() and packs_dtype(model.dtype)


@functools.cache
def packs_dtype(dtype: torch.dtype) -> bool:
    """Whether oneDNN packs ``dtype`` weights on this CPU, asked of oneDNN itself with a 1x1 weight: its bf16
    path needs AVX512 (bw, vl, dq) or AVX-NE-CONVERT and refuses an AVX2-only CPU, where a policy forced to
    ``policy.dtype: bfloat16`` then keeps its plain Linear layers."""
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros((1, 1), dtype=dtype), DECODING_ROWS)
    except RuntimeError:
        return False
    return True


def pack_linear_layers(policy: Policy) -> bool:
    """Replace the ``torch.nn.Linear`` layers of ``policy.model`` by :class:`PackedLinear` in place (the
    model is for inference from then on; no second copy of a large model is held). Returns whether it
    packed: nothing changes where packing is unavailable (:func:`packing_available`)."""
    if not packing_available(policy):
        return False
    for module in list(policy.model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:  # subclasses (LoRA, quantised layers) keep their own forward
                setattr(module, name, PackedLinear(child))
    return True
