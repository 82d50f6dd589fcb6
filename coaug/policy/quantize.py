"""Optional dynamic int8 quantisation of a policy for CPU inference.

Measured on 2 cores with SmolLM2-135M at batch 16: int8 raises prefill from ~600 to ~760 tok/s and one
decoding step from ~110 to ~200 tok/s, but the greedy augmentations of this small model turn off-topic
("A new user has joined! ..."), so the default is ``none``; larger models tolerate it better. The choice is
part of the model fingerprint (and so of every augmentation cache key). Training never quantises.
"""

from __future__ import annotations

from coaug.errors import CoaugError
from coaug.policy.model import Policy

QUANTIZATIONS = ("none", "int8")


def quantized(policy: Policy, mode: str) -> Policy:
    if mode not in QUANTIZATIONS:
        raise CoaugError(f"params: policy.quantize must be one of {', '.join(QUANTIZATIONS)}, got '{mode}'")
    if mode == "none":
        return policy
    import torch
    from torch.ao.quantization import quantize_dynamic

    model = quantize_dynamic(policy.model, {torch.nn.Linear}, dtype=torch.qint8)
    return Policy(
        model=model, tokenizer=policy.tokenizer, fingerprint=f"{policy.fingerprint}-{mode}", dtype=policy.dtype
    )
