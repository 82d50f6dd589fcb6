"""Sampling the RL rollouts: each prompt prefilled once for all of its rollouts, and the sampled tokens'
log-probs recorded on the way.

A step samples ``rollouts`` completions (4 on CPU) of every text. :func:`coaug.policy.generation.generate_batches`
fed the prompt ``rollouts`` times would prefill it ``rollouts`` times; here each distinct prompt is prefilled
once (after the prefix that all prompts share, :class:`coaug.policy.generation.PromptPrefix`) and its KV cache is
repeated for its rollouts, which then decode together. For a document prompt of ~124 tokens and 32 new tokens
the prefill is most of a rollout's arithmetic. The batch is laid out as generate_batches lays it out
(``[prefix][left padding][rest of prompt]``, positions from the mask, rows of one prompt adjacent), and
``model.generate`` still receives every row's whole prompt, so the repetition penalty covers prompt and output.

With ``score_temperature`` set, the log-prob of each sampled token under ``softmax(logits / temperature)`` (the
distribution the PPO update scores, coaug.rl.sequence_logprobs) and that distribution's entropy are recorded
while sampling: when rollouts and update compute in one dtype they are the update's old log-probs, and its
scoring pass before the first mini-batch is not needed. The logits are recorded before the repetition penalty
and the sampling warpers, which then apply exactly as in sampled generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from coaug.policy.generation import (
    Completion,
    GenerationParams,
    PromptPrefix,
    common_prefix,
    completion_from_ids,
    length_buckets,
    tokenize_conversations,
)
from coaug.policy.model import Policy
from coaug.policy.sampling import CategoricalSampler
from coaug.rl.sequence_logprobs import TokenScores


@dataclass(frozen=True)
class SampledCompletion:
    """A rollout's completion and, when recorded, each of its tokens' log-prob and entropy (shape (tokens,))."""

    completion: Completion
    logprobs: torch.Tensor | None = None
    entropies: torch.Tensor | None = None


class ScoringSampler:
    """The processors of sampled generation (repetition penalty, then :class:`CategoricalSampler`) in one
    logits processor that also records, per row, ``log softmax(logits / temperature)`` at the sampled token
    and the entropy of that distribution, taken from the logits before any processor."""

    def __init__(self, params: GenerationParams, score_temperature: float):
        from transformers import RepetitionPenaltyLogitsProcessor

        self._penalty = (
            RepetitionPenaltyLogitsProcessor(params.repetition_penalty) if params.repetition_penalty != 1.0 else None
        )
        self._sampler = CategoricalSampler(params.temperature, params.top_k, params.top_p)
        self._temperature = score_temperature
        self.logprobs: list[torch.Tensor] = []  # one (rows,) tensor per decoding step
        self.entropies: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scaled = scores.float() / self._temperature
        normaliser = torch.logsumexp(scaled, dim=-1)
        penalised = self._penalty(input_ids, scores) if self._penalty is not None else scores
        chosen = self._sampler(input_ids, penalised)
        tokens = chosen.argmax(dim=-1, keepdim=True)  # the only finite score
        self.logprobs.append(scaled.gather(-1, tokens).squeeze(-1) - normaliser)
        self.entropies.append(normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1))
        return chosen


def sample_rollouts(
    policy: Policy,
    conversations: list[list[dict]],
    rollouts: int,
    params: GenerationParams,
    batch_size: int,
    desc: str,
    score_temperature: float | None = None,
) -> Iterator[tuple[list[int], list[SampledCompletion]]]:
    """``rollouts`` completions of every conversation, yielded batch by batch as ``(indices, completions)``:
    ``indices`` are positions in ``conversations``, each repeated once per rollout, aligned with ``completions``.

    Batches hold ``batch_size // rollouts`` distinct prompts (at least one) of similar length, so a batch
    decodes about ``batch_size`` rows; batch ``b`` is seeded ``params.seed + b``. With ``batch_size`` a
    multiple of ``rollouts`` the rows, batches and seeds are those of ``generate_batches`` over each
    conversation repeated ``rollouts`` times (same samples, up to the rounding of other matrix shapes).
    ``score_temperature`` records log-probs and entropies (:class:`ScoringSampler`; sampling only).
    """
    if score_temperature is not None and not params.do_sample:
        raise ValueError("log-probs are recorded while sampling only (params.do_sample)")
    prompts = tokenize_conversations(policy, conversations)
    shared = common_prefix(prompts) if len(prompts) > 1 else []
    prefix = PromptPrefix(policy, shared) if shared else None
    for number, indices in enumerate(length_buckets([len(p) for p in prompts], max(1, batch_size // rollouts))):
        sampler = ScoringSampler(params, score_temperature) if score_temperature is not None else None
        rows = _sample_batch(
            policy, [prompts[i] for i in indices], rollouts, params, params.seed + number, prefix, sampler
        )
        completions = [completion_from_ids(policy, ids) for ids in rows]
        if sampler is None:
            samples = [SampledCompletion(c) for c in completions]
        else:
            logprobs, entropies = torch.stack(sampler.logprobs, dim=1), torch.stack(sampler.entropies, dim=1)
            samples = [
                SampledCompletion(c, logprobs[row, : len(c.token_ids)], entropies[row, : len(c.token_ids)])
                for row, c in enumerate(completions)
            ]
        yield [i for i in indices for _ in range(rollouts)], samples


def _sample_batch(
    policy: Policy,
    prompts: list[list[int]],
    rollouts: int,
    params: GenerationParams,
    seed: int,
    prefix: PromptPrefix | None,
    sampler: ScoringSampler | None,
) -> list[list[int]]:
    """Each prompt prefilled once up to its last token, its cache repeated ``rollouts`` times, then decoded:
    the new token ids of every row (prompt 0's rollouts first)."""
    model = policy.model
    start = len(prefix.ids) if prefix is not None else 0
    rests = policy.tokenizer.pad({"input_ids": [p[start:] for p in prompts]}, padding=True, return_tensors="pt")
    input_ids, attention = rests["input_ids"], rests["attention_mask"]
    if prefix is not None:
        shared = torch.tensor([prefix.ids] * len(prompts))
        input_ids, attention = (
            torch.cat([shared, input_ids], dim=1),
            torch.cat([torch.ones_like(shared), attention], dim=1),
        )
    input_ids, attention = input_ids.to(model.device), attention.to(model.device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # a pad's position is masked anyway
    with torch.inference_mode():
        cache = prefix.cache_for(len(prompts)) if prefix is not None else None
        if input_ids.shape[1] - 1 > start:  # every prompt but its last token, after the prefix
            cache = model(
                input_ids=input_ids[:, start:-1],
                attention_mask=attention[:, :-1],
                position_ids=positions[:, start:-1],
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            ).cache
        if cache is not None:
            cache.batch_repeat_interleave(rollouts)
    if sampler is not None:  # the repetition penalty is the sampler's first processor
        processors, penalty = [sampler], 1.0
    else:
        processors = [CategoricalSampler(params.temperature, params.top_k, params.top_p)] if params.do_sample else []
        penalty = params.repetition_penalty
    with (
        torch.inference_mode(),
        torch.random.fork_rng(devices=[model.device.index or 0] if model.device.type == "cuda" else []),
    ):
        torch.manual_seed(seed)
        output = model.generate(
            input_ids=input_ids.repeat_interleave(rollouts, dim=0),
            attention_mask=attention.repeat_interleave(rollouts, dim=0),
            max_new_tokens=params.max_new_tokens,
            repetition_penalty=penalty,
            do_sample=False,
            logits_processor=processors,
            **({"cache": cache} if cache is not None else {}),
        )
    return output[:, input_ids.shape[1] :].tolist()


def recorded_scores(samples: list[SampledCompletion], device) -> TokenScores:
    """The recorded log-probs and entropies of ``samples`` in :func:`coaug.rl.sequence_logprobs.completion_scores`'s
    layout (one row per sample, completions from column 0, zero-padded, ``mask`` 1.0 on real tokens)."""
    width = max(len(s.logprobs) for s in samples)
    logprobs = torch.zeros((len(samples), width), device=device)
    entropies, mask = torch.zeros_like(logprobs), torch.zeros_like(logprobs)
    for row, sample in enumerate(samples):
        length = len(sample.logprobs)
        logprobs[row, :length], entropies[row, :length], mask[row, :length] = sample.logprobs, sample.entropies, 1.0
    return TokenScores(logprobs, mask, entropies)
