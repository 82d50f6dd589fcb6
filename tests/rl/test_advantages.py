"""Advantages (METHOD §6): centred (Dr. GRPO), group std (GRPO), batch-normalised; role scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coaug.errors import CoaugError
from coaug.rl.advantages import (
    Role,
    advantages,
    batch_norm_advantages,
    centred_advantages,
    group_std_advantages,
    role_scaled,
)

# Two texts with n = 4 rollouts each, interleaved to show groups are labels, not positions.
REWARDS = np.array([0.25, 1.0, 0.5, 1.0, 1.0, 0.0, 0.25, 0.5])
GROUPS = np.array([7, 3, 7, 3, 7, 3, 7, 3])
# Group 7: 0.25, 0.5, 1.0, 0.25 (mean 0.5); group 3: 1.0, 1.0, 0.0, 0.5 (mean 0.625).
CENTRED = np.array([-0.25, 0.375, 0.0, 0.375, 0.5, -0.625, -0.25, -0.125])


def test_centred_advantages_of_known_groups():
    np.testing.assert_array_equal(centred_advantages(REWARDS, GROUPS), CENTRED)


def test_group_std_divides_by_unbiased_group_std():
    std_7 = math.sqrt((0.0625 + 0 + 0.25 + 0.0625) / 3)
    std_3 = math.sqrt((0.375**2 * 2 + 0.625**2 + 0.125**2) / 3)
    expected = CENTRED / np.where(GROUPS == 7, std_7 + 1e-6, std_3 + 1e-6)
    np.testing.assert_allclose(group_std_advantages(REWARDS, GROUPS), expected, rtol=1e-12)
    torch_std = torch.tensor(REWARDS[GROUPS == 7], dtype=torch.float64).std().item()
    assert std_7 == pytest.approx(torch_std, rel=1e-12)


def test_batch_norm_uses_the_whole_batch():
    mean, std = REWARDS.mean(), REWARDS.std(ddof=1)
    np.testing.assert_allclose(batch_norm_advantages(REWARDS), (REWARDS - mean) / (std + 1e-6), rtol=1e-12)


def test_equal_rewards_give_exact_zeros_despite_float_noise():
    rewards = np.array([0.1 + 0.2, 0.3, 0.3])  # 0.1 + 0.2 != 0.3 in floating point
    groups = np.zeros(3, dtype=int)
    assert np.all(centred_advantages(rewards, groups) == 0.0)
    assert np.all(group_std_advantages(rewards, groups) == 0.0)
    assert np.all(batch_norm_advantages(rewards) == 0.0)


def test_lone_rollout_has_zero_advantage():
    assert np.array_equal(group_std_advantages(np.array([0.7, 0.2, 0.4]), np.array([0, 1, 1]))[:1], [0.0])
    assert np.array_equal(centred_advantages(np.array([0.7]), np.array([0])), [0.0])


def test_role_scaling_uses_reference_defaults():
    roles = np.array([Role.QUERY, Role.POSITIVE_DOC, Role.NEGATIVE_DOC])
    np.testing.assert_allclose(role_scaled(np.array([1.0, 1.0, -2.0]), roles), [1.0, 0.2, -0.2], rtol=1e-12)
    np.testing.assert_allclose(
        role_scaled(np.ones(3), roles, query_scale=2.0, posk=0.5, negk=0.0), [2.0, 0.5, 0.0], rtol=1e-12
    )


def test_torch_in_torch_out_with_dtype_kept():
    rewards = torch.tensor(REWARDS, dtype=torch.float32)
    roles = torch.tensor([Role.QUERY] * 4 + [Role.POSITIVE_DOC] * 4)
    result = advantages(rewards, torch.tensor(GROUPS), roles)
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    expected = CENTRED * np.array([1.0] * 4 + [0.2] * 4)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6)


def test_estimator_is_selected_by_name():
    roles = np.full(len(REWARDS), Role.QUERY)
    np.testing.assert_array_equal(advantages(REWARDS, GROUPS, roles), CENTRED)
    np.testing.assert_array_equal(
        advantages(REWARDS, GROUPS, roles, estimator="group_std"), group_std_advantages(REWARDS, GROUPS)
    )
    np.testing.assert_array_equal(
        advantages(REWARDS, GROUPS, roles, estimator="batch_norm"), batch_norm_advantages(REWARDS)
    )
    with pytest.raises(CoaugError, match="unknown advantage estimator"):
        advantages(REWARDS, GROUPS, roles, estimator="reinforce")
