from __future__ import annotations

import math

import pytest
import torch

from coaug.rl.ppo_loss import clipped_policy_loss, kl_penalty


def test_ratio_one_gives_minus_mean_advantage_per_token():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    out = clipped_policy_loss(logp, logp, torch.tensor([1.0, -2.0]), mask)
    # tokens: 2 with A=1, 3 with A=-2 -> -(2*1 + 3*(-2)) / 5
    assert out.loss.item() == pytest.approx(4 / 5)
    assert out.clip_fraction == 0.0


def test_clip_higher_bounds_are_asymmetric():
    mask = torch.ones(1, 1)
    old = torch.zeros(1, 1)
    up = torch.full((1, 1), math.log(1.5))  # ratio 1.5
    # positive advantage: ratio clipped at 1 + 0.28
    assert clipped_policy_loss(up, old, torch.tensor([1.0]), mask).loss.item() == pytest.approx(-1.28)
    down = torch.full((1, 1), math.log(0.5))  # ratio 0.5
    # negative advantage: ratio clipped at 1 - 0.2 -> loss = -(0.8 * -1)
    out = clipped_policy_loss(down, old, torch.tensor([-1.0]), mask)
    assert out.loss.item() == pytest.approx(0.8)
    assert out.clip_fraction == 1.0
    # inside the bounds nothing is clipped
    assert clipped_policy_loss(up, old, torch.tensor([-1.0]), mask).loss.item() == pytest.approx(1.5)


def test_log_ratio_is_clamped_and_gradients_flow():
    logp = torch.full((1, 2), 50.0, requires_grad=True)
    out = clipped_policy_loss(logp, torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2))
    assert out.loss.item() == pytest.approx(math.exp(10.0))
    out = clipped_policy_loss(logp * 0.0 + 0.1, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    out.loss.backward()
    assert logp.grad is not None


def test_kl_penalty_is_k3_per_token_averaged_over_real_tokens():
    logp = torch.tensor([[math.log(0.5), math.log(0.25), 0.0]], requires_grad=True)
    reference = torch.tensor([[math.log(0.25), math.log(0.25), 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third token is padding
    penalty = kl_penalty(logp, reference, mask)
    # r = log(0.25/0.5) = -log 2: exp(r) - r - 1 = 0.5 + log 2 - 1; r = 0 on the second token: 0
    assert penalty.item() == pytest.approx((0.5 + math.log(2) - 1) / 2)
    penalty.backward()
    # d/dlogp (exp(ref - logp) + logp - ref - 1) = 1 - exp(ref - logp): the policy is pulled back to the reference
    assert logp.grad[0].tolist() == pytest.approx([(1 - 0.5) / 2, 0.0, 0.0])


def test_kl_penalty_is_zero_where_policy_and_reference_agree():
    logp = torch.log(torch.tensor([[0.3, 0.7]]))
    assert kl_penalty(logp, logp.clone(), torch.ones(1, 2)).item() == 0.0
