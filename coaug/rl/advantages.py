"""Advantages for the policy update (METHOD §6): one group = the n rollouts of ONE text, then role scaling.

Estimators (``ADVANTAGE_ESTIMATORS``):
- ``centred`` (default, "Dr. GRPO"): A = R − mean_group(R), no std division;
- ``group_std`` (standard GRPO): (R − mean_group) / (std_group + ε), unbiased std as ``torch.std``;
- ``batch_norm``: (R − mean_batch) / (std_batch + ε) over every rollout of the batch.
Every estimator first zeroes centred values with |R − mean| < 1e-6, so a group of equal rewards gets
exactly 0 (float noise would otherwise survive, and the std estimators would blow it up). A lone rollout
has no baseline: its advantage is 0.

Inputs may be numpy arrays or torch tensors; the result has the input's kind (and a tensor's dtype and
device). Rewards carry no gradient, so the maths runs in float64 numpy.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch

from coaug.errors import CoaugError

ADVANTAGE_ESTIMATORS = ("centred", "group_std", "batch_norm")
ZERO_ADVANTAGE_BELOW = 1e-6  # |A| below this counts as 0, reference
STD_EPSILON = 1e-6  # added to a std before dividing, as verl's GRPO
QUERY_SCALE = 1.0  # METHOD §6: query advantages × 1.0
POSK = 0.2  # METHOD §6: positive-document advantages × `posk`
NEGK = 0.1  # METHOD §6: negative-document advantages × `negk`


class Role(IntEnum):
    """What a rollout augments; a positive document has qrels score > 0 for its query."""

    QUERY = 0
    POSITIVE_DOC = 1
    NEGATIVE_DOC = 2


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _to_float64(values) -> np.ndarray:
    return _as_numpy(values).astype(np.float64)


def _like(result: np.ndarray, template):
    """``result`` as the same kind of array as ``template`` (tensor dtype and device kept)."""
    if isinstance(template, torch.Tensor):
        dtype = template.dtype if template.is_floating_point() else torch.float64
        return torch.as_tensor(result, dtype=dtype, device=template.device)
    return result


def _group_stats(values: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Per-rollout group mean and unbiased group std (0 for a lone rollout)."""
    group_ids = np.unique(_as_numpy(groups), return_inverse=True)[1].ravel()
    sizes = np.bincount(group_ids)
    means = np.bincount(group_ids, weights=values) / sizes
    squares = np.bincount(group_ids, weights=(values - means[group_ids]) ** 2)
    stds = np.sqrt(np.divide(squares, sizes - 1, out=np.zeros_like(squares), where=sizes > 1))
    return means[group_ids], stds[group_ids]


def _zero_small(centred: np.ndarray, zero_below: float) -> np.ndarray:
    return np.where(np.abs(centred) < zero_below, 0.0, centred)


def centred_advantages(rewards, groups, *, zero_below: float = ZERO_ADVANTAGE_BELOW):
    """Dr. GRPO: A = R − mean_group(R); |A| < ``zero_below`` → 0. ``groups``: a group label per rollout."""
    values = _to_float64(rewards)
    means, _ = _group_stats(values, groups)
    return _like(_zero_small(values - means, zero_below), rewards)


def group_std_advantages(rewards, groups, *, epsilon: float = STD_EPSILON, zero_below: float = ZERO_ADVANTAGE_BELOW):
    """Standard GRPO: (R − mean_group) / (std_group + ε), unbiased std; a lone rollout gets 0."""
    values = _to_float64(rewards)
    means, stds = _group_stats(values, groups)
    return _like(_zero_small(values - means, zero_below) / (stds + epsilon), rewards)


def batch_norm_advantages(rewards, *, epsilon: float = STD_EPSILON, zero_below: float = ZERO_ADVANTAGE_BELOW):
    """Normalised over the whole batch: (R − mean) / (std + ε), unbiased std."""
    values = _to_float64(rewards)
    means, stds = _group_stats(values, np.zeros(len(values), dtype=np.int64))
    return _like(_zero_small(values - means, zero_below) / (stds + epsilon), rewards)


def role_scaled(advantages, roles, *, query_scale: float = QUERY_SCALE, posk: float = POSK, negk: float = NEGK):
    """Advantages × the scale of each rollout's ``Role`` (METHOD §6: query 1.0, positive 0.2, negative 0.1)."""
    scale_by_role = np.array([query_scale, posk, negk])
    scaled = _to_float64(advantages) * scale_by_role[_as_numpy(roles).astype(np.int64)]
    return _like(scaled, advantages)


def advantages(
    rewards,
    groups,
    roles,
    *,
    estimator: str = ADVANTAGE_ESTIMATORS[0],
    query_scale: float = QUERY_SCALE,
    posk: float = POSK,
    negk: float = NEGK,
    epsilon: float = STD_EPSILON,
    zero_below: float = ZERO_ADVANTAGE_BELOW,
):
    """The estimator named ``estimator``, then role scaling (METHOD §6)."""
    if estimator == "centred":
        raw = centred_advantages(rewards, groups, zero_below=zero_below)
    elif estimator == "group_std":
        raw = group_std_advantages(rewards, groups, epsilon=epsilon, zero_below=zero_below)
    elif estimator == "batch_norm":
        raw = batch_norm_advantages(rewards, epsilon=epsilon, zero_below=zero_below)
    else:
        raise CoaugError(f"unknown advantage estimator '{estimator}' (use one of {', '.join(ADVANTAGE_ESTIMATORS)})")
    return role_scaled(raw, roles, query_scale=query_scale, posk=posk, negk=negk)
