"""Per-token log-probabilities (and entropies) of completions under a causal LM, at a temperature.

Sequences are ``prompt + completion`` token ids; only completion tokens count. Log-probs are taken at the
rollout temperature, as the reference's PPO does (METHOD §6).

Sequences go through the model ``micro_batch_size`` at a time, longest prompts first, so that prompts of
one kind (a query's, a document's) share a micro-batch. In each micro-batch every completion starts in the
same column: the tokens all its prompts begin with (chat template and system prompt, ~35 of a document
prompt's ~124 tokens) come first and go through the model once, as a KV cache that every row continues from;
then the rest of each prompt, left-padded, then the completions, right-padded; positions are counted from the
attention mask. Rows with the same prompt (the ``train.rollouts`` samples of one text) are neighbours, and a
micro-batch computes each of its prompts once: the rest of a repeated prompt goes through the model once and
its KV cache is copied to each of its rows, which then run their completions only (with 4 rollouts a text,
the scoring pass before the update runs 2 document prompts per micro-batch of 8 instead of 8). Gradients
flow through those shared caches into the one prefix forward and the one prompt forward, so they are those
of the rows computed whole. The model's head runs on the completion positions only instead of every prompt
position, and the log-softmax is ``logit[token] - logsumexp(logits)`` without materialising a second
vocabulary-sized tensor. :func:`full_softmax_scores` is the plain reference (every row whole, head on every
position, full ``log_softmax``) that tests and benchmarks compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coaug.policy.generation import common_prefix


@dataclass
class TokenScores:
    logprobs: torch.Tensor  # (sequences, completion positions) log p(token) of each completion token
    mask: torch.Tensor  # (sequences, completion positions) 1.0 on real completion tokens, 0.0 on padding
    entropy: torch.Tensor | None  # (sequences, completion positions) entropy of the next-token distribution


@dataclass(frozen=True)
class AlignedBatch:
    """``input_ids``/``attention``/``positions``: (sequences, P + C) with prompts ending at column P, the
    first ``prefix_length`` columns the same tokens in every row; ``targets``/``mask``: (sequences, C), the
    completion tokens and which of them are real; ``prompt_rows``: the first row of each distinct prompt, and
    ``prompt_of_row``: (sequences,) the position in ``prompt_rows`` of each row's prompt."""

    input_ids: torch.Tensor
    attention: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    prompt_rows: list[int]
    prompt_of_row: torch.Tensor
    prefix_length: int = 0


def align_completions(
    sequences: list[tuple[list[int], list[int]]], pad_id: int, prefix_length: int = 0
) -> AlignedBatch:
    """Lay out ``[prefix][left pads][rest of the prompt][completion][right pads]`` so that every completion
    starts at the same column; the first ``prefix_length`` tokens must be the same in every prompt."""
    prompt_width = max(len(p) for p, _ in sequences)
    completion_width = max(len(c) for _, c in sequences)
    rows = len(sequences)
    input_ids = torch.full((rows, prompt_width + completion_width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    mask = torch.zeros((rows, completion_width))
    for row, (prompt, completion) in enumerate(sequences):
        start = prompt_width - len(prompt) + prefix_length
        input_ids[row, :prefix_length] = torch.tensor(prompt[:prefix_length])
        attention[row, :prefix_length] = 1
        input_ids[row, start : prompt_width + len(completion)] = torch.tensor(prompt[prefix_length:] + completion)
        attention[row, start : prompt_width + len(completion)] = 1
        mask[row, : len(completion)] = 1.0
    # Positions count real tokens only, so padding moves no token (a pad repeats its left neighbour's, masked anyway).
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    distinct: dict[tuple[int, ...], int] = {}  # prompt -> its position in prompt_rows
    prompt_rows, prompt_of_row = [], []
    for row, (prompt, _) in enumerate(sequences):
        if tuple(prompt) not in distinct:
            distinct[tuple(prompt)] = len(prompt_rows)
            prompt_rows.append(row)
        prompt_of_row.append(distinct[tuple(prompt)])
    targets = input_ids[:, prompt_width:]
    return AlignedBatch(
        input_ids, attention, positions, targets, mask, prompt_rows, torch.tensor(prompt_of_row), prefix_length
    )


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens that every prompt starts with, leaving each prompt at least its last token (whose position
    predicts the first completion token); 0 for a single prompt, where sharing saves nothing."""
    return len(common_prefix(prompts)) if len(prompts) > 1 else 0


def scoring_order(sequences: list[tuple[list[int], list[int]]]) -> list[int]:
    """Indices with the longest prompts first, rows of the same prompt together (then in input order):
    neighbours are prompts of one kind and length, so a micro-batch of them shares the longest prefix, pads
    least and computes each of its prompts once."""
    return sorted(range(len(sequences)), key=lambda i: (-len(sequences[i][0]), sequences[i][0], i))


def completion_scores(
    model,
    sequences: list[tuple[list[int], list[int]]],
    pad_id: int,
    temperature: float,
    with_entropy: bool,
    micro_batch_size: int,
) -> TokenScores:
    """Log-probs (and optionally entropies) of each completion token, rows in the order of ``sequences``.

    Gradients flow unless the caller disables them; micro-batches only bound the peak memory of a call.
    """
    device = next(model.parameters()).device
    width = max(len(c) for _, c in sequences)
    order = scoring_order(sequences)
    logprobs, entropies = [], []
    for start in range(0, len(order), micro_batch_size):
        part = [sequences[i] for i in order[start : start + micro_batch_size]]
        batch = align_completions(part, pad_id, shared_prefix_length([p for p, _ in part]))
        scaled = completion_logits(model, batch, device).float() / temperature
        normaliser = torch.logsumexp(scaled, dim=-1)
        targets = batch.targets.to(device).unsqueeze(-1)
        padding = (0, width - targets.shape[1])  # this micro-batch's completions may all be shorter
        logprobs.append(torch.nn.functional.pad(scaled.gather(-1, targets).squeeze(-1) - normaliser, padding))
        if with_entropy:
            entropies.append(
                torch.nn.functional.pad(normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1), padding)
            )
    rows = torch.empty(len(order), dtype=torch.long)
    rows[order] = torch.arange(len(order))  # back to the order of ``sequences``
    rows = rows.to(device)
    mask = torch.zeros((len(sequences), width), device=device)
    for row, (_, completion) in enumerate(sequences):
        mask[row, : len(completion)] = 1.0
    entropy = torch.cat(entropies)[rows] if with_entropy else None
    return TokenScores(torch.cat(logprobs)[rows], mask, entropy)


def completion_logits(model, batch: AlignedBatch, device) -> torch.Tensor:
    """The logits that predict each completion token of ``batch``: (sequences, C, vocabulary).

    The shared prefix goes through the model once (one row). Where some rows share a whole prompt, the rest of
    each distinct prompt goes through once (one row per prompt, continuing the prefix's cache), then every
    row's completion but its last token, continuing a copy of its prompt's cache; where every row has a prompt
    of its own, prompt and completion go through in one forward (splitting them made the backward ~8% slower).
    A prompt's last position predicts the first completion token; completion position t predicts token t + 1."""
    shared, prompt_width = batch.prefix_length, batch.input_ids.shape[1] - batch.targets.shape[1]
    input_ids, attention, positions = (t.to(device) for t in (batch.input_ids, batch.attention, batch.positions))
    repeated = len(batch.prompt_rows) < len(input_ids)
    cache = None
    if shared:
        prefix = input_ids[:1, :shared]
        cache = model(input_ids=prefix, attention_mask=torch.ones_like(prefix), use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(len(batch.prompt_rows))
    if not repeated:  # keep the last C + 1 positions and drop the final one
        return model(
            input_ids=input_ids[:, shared:],
            attention_mask=attention,
            position_ids=positions[:, shared:],
            logits_to_keep=batch.targets.shape[1] + 1,
            cache=cache,
        ).logits[:, :-1]
    prompts = torch.tensor(batch.prompt_rows, device=device)
    prompt_pass = model(
        input_ids=input_ids[prompts, shared:prompt_width],
        attention_mask=attention[prompts, :prompt_width],
        position_ids=positions[prompts, shared:prompt_width],
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    row_prompt = batch.prompt_of_row.to(device)
    first = prompt_pass.logits[row_prompt]
    end = input_ids.shape[1] - 1  # the last completion token predicts nothing
    if end == prompt_width:  # one-token completions: the prompts predicted all of them
        return first
    cache = prompt_pass.cache
    cache.batch_select_indices(row_prompt)
    rest = model(
        input_ids=input_ids[:, prompt_width:end],
        attention_mask=attention[:, :end],
        position_ids=positions[:, prompt_width:end],
        cache=cache,
    ).logits
    return torch.cat([first, rest], dim=1)


def full_softmax_scores(
    model, sequences: list[tuple[list[int], list[int]]], pad_id: int, temperature: float, with_entropy: bool
) -> TokenScores:
    """The reference: every sequence right-padded from column 0, the head on every position, a full
    ``log_softmax``; returned in :func:`completion_scores`'s layout."""
    width = max(len(p) + len(c) for p, c in sequences)
    completion_width = max(len(c) for _, c in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (prompt, completion) in enumerate(sequences):
        input_ids[row, : len(prompt) + len(completion)] = torch.tensor(prompt + completion)
        attention[row, : len(prompt) + len(completion)] = 1
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    token_logprobs = log_probs.gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    logprobs = torch.zeros((len(sequences), completion_width), device=device)
    entropies = torch.zeros_like(logprobs)
    mask = torch.zeros((len(sequences), completion_width), device=device)
    for row, (prompt, completion) in enumerate(sequences):
        # target position t predicts token t + 1: the completion's tokens are targets len(prompt)-1 ...
        span = slice(len(prompt) - 1, len(prompt) - 1 + len(completion))
        logprobs[row, : len(completion)] = token_logprobs[row, span]
        entropies[row, : len(completion)] = entropy[row, span]
        mask[row, : len(completion)] = 1.0
    return TokenScores(logprobs, mask, entropies if with_entropy else None)
