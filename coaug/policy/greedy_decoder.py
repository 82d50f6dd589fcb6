"""Greedy decoding of one prompt on a CPU without ``model.generate``'s per-step machinery (``coaug search``).

At batch 1 a decoding step of SmolLM2-135M through ``model.generate`` took ~26 ms on the developers' 2-core
Zen 4 (bf16, packed weights), of which the Linear layers took ~15 ms; the rest was ~1,000 small kernels plus
transformers' per-step Python (cache objects, masks, logits processors, module hooks). This loop runs the
same decoder layers with the same kernels on the same values, and changes what leaves every value bit-identical:

- q/k/v and gate/up are each one packed matrix: their outputs are the same dot products, and one oneDNN call
  streams the weights faster (all Linear layers of a step: 11.7 ms fused against 14.1 ms apart);
- query and key heads, side by side in the fused output, get their rotary embedding in one pass;
- keys and values go into buffers allocated once for the prompt plus ``max_new_tokens`` (no concatenation of
  the whole cache at every step);
- the decoder layers run as one TorchScript function (:func:`decode_layers`): the same aten kernels in the
  same order, without a Python-to-C++ crossing per op.

With ``coaug search``'s 24 new tokens a query took 0.49 s instead of 0.63 s (benchmarks/search_latency.py), and
0.44 s with the layers in TorchScript (1.13-1.14x over the same loop as eager Python, tokens identical).

The prompt is prefilled by the model itself (after the shared prefix of :class:`PromptPrefix`), and each next
token is chosen as ``generate`` chooses it: fp32 logits, the repetition penalty over prompt and output, argmax;
eos or ``max_new_tokens`` stop. Only what was checked equal is taken (:func:`decodes`): a Llama or Qwen2 model
(Qwen2's layer is Llama's with biased q/k/v) without sliding-window attention, on a CPU with packed weights,
greedy decoding, and a generation config that makes ``generate`` add no other logits processor. The fused
matrices are copies: a served policy holds its q/k/v and gate/up weights twice (+140 MB for SmolLM2-135M in
bf16).
"""

# No ``from __future__ import annotations`` here: TorchScript cannot read a NamedTuple's postponed annotations.
import functools
import warnings
from typing import List, NamedTuple, Optional, Union  # TorchScript reads typing's forms, not ``X | None``

import torch
from transformers import GenerationConfig

from coaug.policy.generation import GenerationParams, PromptPrefix
from coaug.policy.model import Policy
from coaug.policy.packed_linear import PackedLinear, packing_available

# The architectures whose decoder layer this loop replays (transformers' modeling_llama.py; modeling_qwen2.py
# differs only in its sliding window, which :func:`decodes` refuses).
MODEL_TYPES = ("llama", "qwen2")
# Generation-config fields with which ``model.generate`` adds a logits processor or a stopping rule; the
# loop runs only where each keeps transformers' default.
GENERATE_EXTRAS = (
    "guidance_scale",
    "sequence_bias",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "watermarking_config",
    "stop_strings",
    "max_time",
)


def decodes(policy: Policy, generation: GenerationParams) -> bool:
    """Whether :class:`GreedyDecoder` gives ``model.generate``'s greedy output for ``policy``: an
    architecture of :data:`MODEL_TYPES` with full attention in every layer (the loop has no sliding window), the
    SiLU-gated MLP (the loop's activation) and plain Linear layers (not quantised) that can be packed on this
    CPU, greedy decoding with the dynamic cache, and no generation-config extra (:data:`GENERATE_EXTRAS`)."""
    model = policy.model
    defaults = GenerationConfig()
    return (
        getattr(model.config, "model_type", None) in MODEL_TYPES
        and "sliding_attention" not in (getattr(model.config, "layer_types", None) or ())
        and getattr(model.config, "hidden_act", None) == "silu"
        and all(type(module) is torch.nn.Linear for module in _linears(model))
        and packing_available(policy)
        and not generation.do_sample
        and generation.cache_implementation is None
        and all(
            getattr(model.generation_config, name, None) == getattr(defaults, name, None) for name in GENERATE_EXTRAS
        )
    )


def next_token(logits, seen, penalty: float) -> int:
    """``generate``'s greedy choice from one row of fp32 logits: every token in ``seen`` (prompt and output
    so far, a 1 x n id tensor) has its logit divided by ``penalty`` if positive, multiplied if negative
    (transformers' RepetitionPenaltyLogitsProcessor); then the argmax."""
    score = torch.gather(logits, 1, seen)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return int(logits.scatter(1, seen, score).argmax(dim=-1))


def fuse_projections(policy: Policy) -> list[tuple[PackedLinear, PackedLinear]]:
    """Per decoder layer, q/k/v and gate/up each fused into one packed matrix. Call it on the plain Linear
    layers, *before* :func:`coaug.policy.packed_linear.pack_linear_layers` packs them in place."""
    return [
        (
            _fuse_linears(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
            _fuse_linears(layer.mlp.gate_proj, layer.mlp.up_proj),
        )
        for layer in policy.model.model.layers
    ]


class GreedyDecoder:
    """``decoder(prompt_ids, prefix) -> new token ids`` (the eos included when generated), for a policy whose
    Linear layers are packed, with its :func:`fuse_projections` taken before the packing. ``scripted`` false
    runs :func:`decode_layers` as eager Python: the same values, slower (benchmarks/search_latency.py)."""

    def __init__(
        self,
        policy: Policy,
        generation: GenerationParams,
        fused: list[tuple[PackedLinear, PackedLinear]],
        scripted: bool = True,
    ):
        model = policy.model
        self._model, self._generation = model, generation
        attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
        self._kv_heads, self._head_dim = model.config.num_key_value_heads, attention.head_dim
        query_heads = model.config.num_attention_heads
        self._shape = DecoderShape(
            eps=model.model.norm.variance_epsilon,
            head_dim=attention.head_dim,
            query_heads=query_heads,
            rotated_width=(query_heads + self._kv_heads) * attention.head_dim,
            intermediate=mlp.intermediate_size,
            scaling=attention.scaling,
        )
        self._layers = [
            LayerWeights(
                layer.input_layernorm.weight.detach(),
                qkv.weight,
                qkv.bias,
                layer.self_attn.o_proj.weight,
                layer.self_attn.o_proj.bias,
                layer.post_attention_layernorm.weight.detach(),
                gate_up.weight,
                gate_up.bias,
                layer.mlp.down_proj.weight,
                layer.mlp.down_proj.bias,
            )
            for layer, (qkv, gate_up) in zip(model.model.layers, fused)
        ]
        head = model.lm_head
        self._output = (model.model.norm.weight.detach(), head.weight, head.bias)
        self._decode_layers = _scripted_decode_layers() if scripted else decode_layers
        eos = model.generation_config.eos_token_id
        self._eos = set(eos) if isinstance(eos, list) else {eos}

    def __call__(self, prompt: list[int], prefix: PromptPrefix | None) -> list[int]:
        with torch.inference_mode():
            logits, keys, values = self._prefill(prompt, prefix)
            seen = torch.tensor([prompt])
            new: list[int] = []
            for step in range(self._generation.max_new_tokens):
                token = next_token(logits, seen, self._generation.repetition_penalty)
                new.append(token)
                if token in self._eos or len(new) == self._generation.max_new_tokens:
                    break
                seen = torch.cat([seen, torch.tensor([[token]])], dim=1)
                logits = self._step(token, len(prompt) + step, keys, values)
        return new

    def _prefill(self, prompt: list[int], prefix: PromptPrefix | None):
        """The model's own forward over the prompt (after the prefix when it starts with it), its last fp32
        logits, and its keys and values copied into buffers with room for every new token."""
        start = len(prefix.ids) if prefix is not None and prefix.starts(prompt) else 0
        cache = prefix.cache_for(1) if start else None
        output = self._model(
            input_ids=torch.tensor([prompt[start:]]),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
            position_ids=torch.arange(start, len(prompt)).unsqueeze(0),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        length = len(prompt) + self._generation.max_new_tokens
        keys, values = [], []
        for layer in output.cache.layers:
            for cached, buffers in ((layer.keys, keys), (layer.values, values)):
                buffer = cached.new_empty((1, self._kv_heads, length, self._head_dim))
                buffer[:, :, : len(prompt)] = cached
                buffers.append(buffer)
        return output.logits[:, -1, :].to(torch.float32), keys, values

    def _step(self, token: int, position: int, keys: list, values: list):
        """One decoding step: the token's embedding and rotary angles from the model's own modules, then its
        decoder layers and output head (:func:`decode_layers`)."""
        decoder = self._model.model
        hidden = decoder.embed_tokens(torch.tensor([[token]]))
        # cos and sin broadcast over the heads once per step.
        cos, sin = (part.unsqueeze(1) for part in decoder.rotary_emb(hidden, torch.tensor([[position]])))
        # Without the graph optimiser TorchScript runs the function's own ops as written, nothing rewritten.
        with torch.jit.optimized_execution(False):
            return self._decode_layers(
                hidden, cos, sin, position, self._layers, keys, values, self._shape, *self._output
            )


class LayerWeights(NamedTuple):
    """One decoder layer's weights as :func:`decode_layers` takes them: RMSNorm weights, and the packed
    matrices (q/k/v and gate/up fused) with their biases (None where the layer has none)."""

    input_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: Optional[torch.Tensor]
    o_proj: torch.Tensor
    o_bias: Optional[torch.Tensor]
    post_norm: torch.Tensor
    gate_up: torch.Tensor
    gate_up_bias: Optional[torch.Tensor]
    down: torch.Tensor
    down_bias: Optional[torch.Tensor]


class DecoderShape(NamedTuple):
    """The model's sizes that :func:`decode_layers` needs; ``rotated_width`` is the width of the query and key
    heads side by side at the front of the fused q/k/v output."""

    eps: float
    head_dim: int
    query_heads: int
    rotated_width: int
    intermediate: int
    scaling: float


def decode_layers(
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position: int,
    layers: List[LayerWeights],
    keys: List[torch.Tensor],
    values: List[torch.Tensor],
    shape: DecoderShape,
    final_norm: torch.Tensor,
    head: torch.Tensor,
    head_bias: Optional[torch.Tensor],
) -> torch.Tensor:
    """The decoder layers and output head for one new token at ``position``: transformers' LlamaDecoderLayer
    (= Qwen2DecoderLayer without a sliding window) op by op, on the fused matrices, writing the token's keys
    and values into the buffers; returns its fp32 logits."""
    for layer, key_buffer, value_buffer in zip(layers, keys, values):
        projected = _packed_linear(_rms_norm(hidden, layer.input_norm, shape.eps), layer.qkv, layer.qkv_bias)
        # The query and key heads, side by side in the fused output, rotated together: the same elementwise ops.
        heads = _rotated(
            projected[..., : shape.rotated_width].view(1, 1, -1, shape.head_dim).transpose(1, 2), cos, sin
        )
        key_buffer[:, :, position] = heads[:, shape.query_heads :, 0]
        value_buffer[:, :, position] = projected[..., shape.rotated_width :].view(1, -1, shape.head_dim)
        # transformers' sdpa path for one query token without a mask: grouped heads inside the kernel.
        attended = torch.nn.functional.scaled_dot_product_attention(
            heads[:, : shape.query_heads],
            key_buffer[:, :, : position + 1],
            value_buffer[:, :, : position + 1],
            scale=shape.scaling,
            enable_gqa=True,
        )
        hidden = hidden + _packed_linear(attended.transpose(1, 2).reshape(1, 1, -1), layer.o_proj, layer.o_bias)
        gate_up = _packed_linear(_rms_norm(hidden, layer.post_norm, shape.eps), layer.gate_up, layer.gate_up_bias)
        gate, up = gate_up.split(shape.intermediate, dim=-1)
        hidden = hidden + _packed_linear(torch.nn.functional.silu(gate) * up, layer.down, layer.down_bias)
    return _packed_linear(_rms_norm(hidden, final_norm, shape.eps), head, head_bias)[:, -1, :].to(torch.float32)


@functools.cache
def _scripted_decode_layers():
    """:func:`decode_layers` compiled by TorchScript, once per process. Its interpreter runs the same aten
    kernels as eager Python without a Python-to-C++ crossing per op (~1,300 per step for SmolLM2-135M): 1.13-1.14x
    per query on the developers' Zen 4 in bf16, 1.09x in fp32 on AVX2 kernels, tokens identical
    (benchmarks/search_latency.py). torch.compile cannot trace the packed oneDNN op, and its fused kernels round
    bf16 differently from eager (9/20 queries kept their augmentation in a probe); TorchScript is deprecated but
    kept by the pinned torch, and its warning saying so is silenced here, where the choice was made."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
        return torch.jit.script(decode_layers)


def _rms_norm(states: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm (= Qwen2RMSNorm), op for op."""
    normed = states.to(torch.float32)
    variance = normed.pow(2).mean(-1, keepdim=True)
    normed = normed * torch.rsqrt(variance + eps)
    return weight * normed.to(states.dtype)


def _packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """:class:`PackedLinear`'s forward on its packed weight and bias."""
    no_scalars: List[Optional[Union[int, float, complex]]] = []  # TorchScript's type for the op's Scalar?[]
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", no_scalars, "")


def _rotated(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' rotary embedding of one tensor: ``x * cos + rotate_half(x) * sin``, op for op."""
    half = states.shape[-1] // 2
    return states * cos + torch.cat((-states[..., half:], states[..., :half]), dim=-1) * sin


def _linears(model) -> list:
    """The Linear layers the loop calls: each layer's seven projections and the output head."""
    linears = [model.lm_head]
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        linears += [
            attention.q_proj,
            attention.k_proj,
            attention.v_proj,
            attention.o_proj,
            mlp.gate_proj,
            mlp.up_proj,
            mlp.down_proj,
        ]
    return linears


def _fuse_linears(*linears) -> PackedLinear:
    """One packed Linear whose output is the outputs of ``linears`` side by side (same input)."""
    first = linears[0]
    fused = torch.nn.Linear(
        first.in_features, sum(linear.out_features for linear in linears), bias=first.bias is not None, device="meta"
    )
    fused.weight = torch.nn.Parameter(torch.cat([linear.weight.detach() for linear in linears]), requires_grad=False)
    if first.bias is not None:
        fused.bias = torch.nn.Parameter(torch.cat([linear.bias.detach() for linear in linears]), requires_grad=False)
    return PackedLinear(fused)
