"""Per-token log-probabilities (and entropies) of completions under a causal LM, at a temperature.

Sequences are ``prompt + completion`` token ids, right-padded into one batch; only completion tokens count
(the mask). Log-probs are taken at the rollout temperature, as the reference's PPO does (METHOD §6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenScores:
    logprobs: torch.Tensor  # (sequences, positions) log p(token) of each next token
    mask: torch.Tensor  # (sequences, positions) 1.0 on completion tokens
    entropy: torch.Tensor | None  # (sequences, positions) entropy of the next-token distribution


def pad_batch(sequences: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and the completion mask aligned with next-token targets."""
    width = max(len(p) + len(c) for p, c in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    completion = torch.zeros((len(sequences), width - 1))
    for row, (prompt, answer) in enumerate(sequences):
        ids = prompt + answer
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        # target position t predicts token t + 1: the answer's tokens are targets len(prompt)-1 .. len(ids)-2
        completion[row, len(prompt) - 1 : len(ids) - 1] = 1.0
    return input_ids, attention, completion


def completion_scores(
    model, sequences: list[tuple[list[int], list[int]]], pad_id: int, temperature: float, with_entropy: bool
) -> TokenScores:
    input_ids, attention, mask = pad_batch(sequences, pad_id)
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    targets = input_ids[:, 1:].to(device).unsqueeze(-1)
    token_logprobs = log_probs.gather(-1, targets).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1) if with_entropy else None
    return TokenScores(token_logprobs, mask.to(device), entropy)
