"""The policy-gradient loss of METHOD §6: PPO clipping with asymmetric bounds ("clip-higher", DAPO).

ratio = exp(clamp(logp − logp_old, ±log_ratio_clamp)); per token
loss = −min(ratio·A, clip(ratio, 1 − eps_low, 1 + eps_high)·A), averaged over every completion token of
the micro-batch (token-level mean). No KL term and no entropy bonus, as in the reference;
``train.kl_coef`` > 0 adds :func:`kl_penalty`, GRPO's per-token KL estimate to the initial policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EPSILON_LOW = 0.2
EPSILON_HIGH = 0.28  # DAPO clip-higher
LOG_RATIO_CLAMP = 10.0


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor
    clip_fraction: float


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float = EPSILON_LOW,
    epsilon_high: float = EPSILON_HIGH,
    log_ratio_clamp: float = LOG_RATIO_CLAMP,
) -> LossOutput:
    """``logprobs``/``old_logprobs``/``mask``: (sequences, tokens); ``advantages``: (sequences,)."""
    log_ratio = torch.clamp(logprobs - old_logprobs, -log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    advantage = advantages.unsqueeze(1)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high) * advantage
    per_token = -torch.minimum(unclipped, clipped)
    tokens = mask.sum().clamp(min=1)
    loss = (per_token * mask).sum() / tokens
    was_clipped = (clipped < unclipped).float()  # the clipped branch was the active minimum
    clip_fraction = float((was_clipped * mask).sum() / tokens)
    return LossOutput(loss=loss, clip_fraction=clip_fraction)


def kl_penalty(
    logprobs: torch.Tensor,
    reference_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    log_ratio_clamp: float = LOG_RATIO_CLAMP,
) -> torch.Tensor:
    """Token mean of k3 = exp(r) − r − 1, r = logp_ref − logp (DeepSeekMath's GRPO): ≥ 0, 0 where the policy
    agrees with the reference, an unbiased estimate of KL(policy ‖ reference) on the policy's own samples.
    Gradients flow through ``logprobs`` only."""
    log_ratio = torch.clamp(reference_logprobs.detach() - logprobs, -log_ratio_clamp, log_ratio_clamp)
    per_token = torch.exp(log_ratio) - log_ratio - 1
    return (per_token * mask).sum() / mask.sum().clamp(min=1)
