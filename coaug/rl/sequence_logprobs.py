"""Per-token log-probabilities (and entropies) of completions under a causal LM, at a temperature.

Sequences are ``prompt + completion`` token ids; only completion tokens count. Log-probs are taken at the
rollout temperature, as the reference's PPO does (METHOD §6).

The batch is laid out so that every completion starts in the same column: prompts left-padded,
completions right-padded, positions counted from the attention mask. The model's head then runs on the
completion positions only (``logits_to_keep``) instead of every prompt position, and the log-softmax is
``logit[token] - logsumexp(logits)`` without materialising a second vocabulary-sized tensor. Sequences go
through the model ``micro_batch_size`` at a time. :func:`full_softmax_scores` is the plain reference
(head on every position, full ``log_softmax``) that tests and benchmarks compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenScores:
    logprobs: torch.Tensor  # (sequences, completion positions) log p(token) of each completion token
    mask: torch.Tensor  # (sequences, completion positions) 1.0 on real completion tokens, 0.0 on padding
    entropy: torch.Tensor | None  # (sequences, completion positions) entropy of the next-token distribution


@dataclass(frozen=True)
class AlignedBatch:
    """``input_ids``/``attention``/``positions``: (sequences, P + C) with prompts ending at column P;
    ``targets``/``mask``: (sequences, C), the completion tokens and which of them are real."""

    input_ids: torch.Tensor
    attention: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor


def align_completions(sequences: list[tuple[list[int], list[int]]], pad_id: int) -> AlignedBatch:
    """Left-pad the prompts and right-pad the completions so that every completion starts at the same column."""
    prompt_width = max(len(p) for p, _ in sequences)
    completion_width = max(len(c) for _, c in sequences)
    rows = len(sequences)
    input_ids = torch.full((rows, prompt_width + completion_width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    mask = torch.zeros((rows, completion_width))
    for row, (prompt, completion) in enumerate(sequences):
        start = prompt_width - len(prompt)
        input_ids[row, start : prompt_width + len(completion)] = torch.tensor(prompt + completion)
        attention[row, start : prompt_width + len(completion)] = 1
        mask[row, : len(completion)] = 1.0
    # Positions count real tokens only, so left padding moves no token (pads get position 0, masked anyway).
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return AlignedBatch(input_ids, attention, positions, input_ids[:, prompt_width:], mask)


def completion_scores(
    model, sequences: list[tuple[list[int], list[int]]], pad_id: int, temperature: float, with_entropy: bool,
    micro_batch_size: int,
) -> TokenScores:  # fmt: skip
    """Log-probs (and optionally entropies) of each completion token, the head run on completion positions only.

    Gradients flow unless the caller disables them; micro-batches only bound the peak memory of a call.
    """
    batch = align_completions(sequences, pad_id)
    device = next(model.parameters()).device
    width = batch.targets.shape[1]
    logprobs, entropies = [], []
    for start in range(0, len(sequences), micro_batch_size):
        rows = slice(start, start + micro_batch_size)
        # Position P-1 predicts the first completion token: keep the last C+1 positions, drop the final one.
        logits = model(
            input_ids=batch.input_ids[rows].to(device), attention_mask=batch.attention[rows].to(device),
            position_ids=batch.positions[rows].to(device), logits_to_keep=width + 1,
        ).logits[:, :-1]  # fmt: skip
        scaled = logits.float() / temperature
        normaliser = torch.logsumexp(scaled, dim=-1)
        targets = batch.targets[rows].to(device).unsqueeze(-1)
        logprobs.append(scaled.gather(-1, targets).squeeze(-1) - normaliser)
        if with_entropy:
            entropies.append(normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1))
    entropy = torch.cat(entropies) if with_entropy else None
    return TokenScores(torch.cat(logprobs), batch.mask.to(device), entropy)


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
