"""Reward estimation by sampling rollout combinations (METHOD §5), vectorised over samples and rows.

Each mode has two steps, so tests can feed the same draws to a plain loop: ``draw_*`` (the only random
part, an explicit ``numpy.random.Generator``) and ``*_sums`` (pure: draws -> reward and weight sums
R[r, c], W[r, c]). ``rewards_from_sums`` turns the sums into one reward per rollout.

``|batch|`` below is the number of rollout texts in the step, queries and documents together: 32 queries
× 16 texts × 5 rollouts = 2560 in the reference, whose 160 query rollouts give 64·2560 // 160 // 2 = 512
joint samples.
"""

from __future__ import annotations

import numpy as np

from coaug.reward_layout import SamplingLayout
from coaug.reward_ndcg import NDCG_CUTOFF, dcg_at_k, ideal_dcg, normalised, rank_discounts

SAMPLES_PER_ROLLOUT = 64  # samples per rollout text of the batch, reference
JOINT_SAMPLE_DIVISOR = 2  # the reference halves the joint-sample count (its comment: micro-batch 8)
KPOS_REWEIGHT = 10.0  # λ in w_c = 1 + λ·gain[r, c], reference `kpos_reweight`

# Largest samples × rows × candidates block held at once; bounds memory, does not change results.
_BLOCK_ELEMENTS = 1 << 22


def joint_sample_count(
    num_rollouts: int,
    num_query_rollouts: int,
    *,
    samples_per_rollout: int = SAMPLES_PER_ROLLOUT,
    divisor: int = JOINT_SAMPLE_DIVISOR,
) -> int:
    """M = max(64·|batch| // |rows| // 2, 1) joint samples of ``batch_sampling`` (METHOD §5).

    ``num_rollouts`` = |batch|, every rollout text of the step (query and document rollouts);
    ``num_query_rollouts`` = |rows|.
    """
    return max(samples_per_rollout * num_rollouts // num_query_rollouts // divisor, 1)


def single_query_sample_count(num_rollouts: int, *, samples_per_rollout: int = SAMPLES_PER_ROLLOUT) -> int:
    """64·|batch| samples of ``sampling`` mode (METHOD §5), |batch| as in ``joint_sample_count``."""
    return samples_per_rollout * num_rollouts


def draw_joint_samples(layout: SamplingLayout, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, keys) column indices: one rollout per key, uniformly, keys in sub-list order."""
    offsets = rng.integers(0, layout.key_size, size=(num_samples, layout.num_keys))
    return layout.columns_by_key[layout.key_start + offsets]


def draw_single_query_samples(
    layout: SamplingLayout, num_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``sampling`` draws: a uniform query rollout per sample, then one rollout per key of ITS group.

    Returns ``rows`` (samples,) and ``columns`` (samples, most keys in a group), keys in sub-list order,
    -1 after the last key of a smaller group.
    """
    rows = rng.integers(0, layout.num_rows, size=num_samples)
    keys = layout.group_keys[layout.row_group[rows]]
    present = keys >= 0
    keys = np.where(present, keys, 0)
    offsets = rng.integers(0, layout.key_size[keys])
    return rows, np.where(present, layout.columns_by_key[layout.key_start[keys] + offsets], -1)


def _contenders(similarity: np.ndarray, layout: SamplingLayout, k: int) -> np.ndarray:
    """(rows, width): the head of each row's columns in sub-list order, padded with ``num_columns``.

    Sub-list order = decreasing score, ties by key order, then by column: within any sample the chosen
    columns appear in exactly this order, the reference's stable argsort of −score over its sub-list.
    Only the head can reach a top k: take the k-th best key by its WORST rollout (score s*, key κ*);
    every sample chooses k columns ranked at or above that worst rollout, so nothing ranked after it is
    ever in the top k. The head is every column ranked at or above it, a prefix of the order, so ranks
    counted inside the head are true ranks. The padding column is one no sample chooses.
    """
    num_rows, num_columns = similarity.shape
    by_key = layout.columns_by_key
    if layout.num_keys <= k:
        keep = np.ones(similarity.shape, dtype=bool)
    else:
        worst = np.minimum.reduceat(similarity[:, by_key], layout.key_start, axis=1)
        kth_worst = -np.partition(-worst, k - 1, axis=1)[:, k - 1 : k]
        still_needed = k - (worst > kth_worst).sum(axis=1, keepdims=True)
        kth_key = np.argmax(np.cumsum(worst == kth_worst, axis=1) >= still_needed, axis=1)[:, None]
        keep = (similarity > kth_worst) | ((similarity == kth_worst) & (layout.column_key <= kth_key))
    rows, slots_by_key = np.nonzero(keep[:, by_key])  # row by row, each row in key order
    columns = by_key[slots_by_key]
    kept = np.bincount(rows, minlength=num_rows)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(kept) - kept, kept)
    head = np.full((num_rows, kept.max()), num_columns)
    head[rows, slot] = columns
    head_score = np.full(head.shape, -np.inf)
    head_score[rows, slot] = similarity[rows, columns]
    return np.take_along_axis(head, np.argsort(-head_score, axis=1, kind="stable"), axis=1)


def _chosen_mask(joint_columns: np.ndarray, num_columns: int) -> np.ndarray:
    """(samples, columns) True where the sample chose the column."""
    chosen = np.zeros((len(joint_columns), num_columns), dtype=bool)
    chosen[np.arange(len(joint_columns))[:, None], joint_columns] = True
    return chosen


def _running_counts(picked: np.ndarray) -> np.ndarray:
    """Inclusive prefix sums of ``picked`` along axis 0, as int32.

    A scan over positions, each step vectorised over rows × samples: numpy's cumsum along an axis costs
    ~20 ns an element here (numpy 2.4), this about 2.
    """
    counts = np.empty(picked.shape, dtype=np.int32)
    running = np.zeros(picked.shape[1:], dtype=np.int32)
    for position, picked_here in enumerate(picked):
        running += picked_here
        counts[position] = running
    return counts


def _ndcg_of_chosen(similarity: np.ndarray, layout: SamplingLayout, chosen: np.ndarray, k: int) -> np.ndarray:
    """(samples, rows) NDCG@k; ``chosen`` holds exactly one column per key in every sample.

    A chosen column's rank is the number of chosen columns up to it in its row's head (``_contenders``).
    Only columns with a non-zero gain add to the DCG, so ranks are read at those positions alone.
    """
    contenders = _contenders(similarity, layout, k)
    padded_gain = np.pad(layout.gain, ((0, 0), (0, 1)))  # the padding column gains nothing
    contender_gain = np.take_along_axis(padded_gain, contenders, axis=1)
    gaining = contender_gain != 0
    # Positions of each row's gaining contenders, padded with position 0 and gain 0.
    slots = max(1, int(gaining.sum(axis=1).max()))
    slot_position = np.argsort(~gaining, axis=1, kind="stable")[:, :slots]
    slot_gain = np.take_along_axis(contender_gain, slot_position, axis=1)
    slot_position = np.where(slot_gain != 0, slot_position, 0)
    prefix = contenders[:, : int(slot_position.max()) + 1]  # nothing after the last gaining one matters
    cutoff = min(k, prefix.shape[1])
    # Indexed by 1-based rank among the chosen; 0 (not chosen) and ranks past k weigh nothing.
    discount_by_rank = np.zeros(prefix.shape[1] + 1)
    discount_by_rank[1 : cutoff + 1] = rank_discounts(cutoff)

    num_samples = len(chosen)
    dcg = np.empty((layout.num_rows, num_samples))
    rows = np.arange(layout.num_rows)[:, None]
    chosen_by_column = np.zeros((layout.num_columns + 1, num_samples), dtype=bool)
    chosen_by_column[:-1] = chosen.T
    block = max(1, _BLOCK_ELEMENTS // (layout.num_rows * prefix.shape[1]))
    for start in range(0, num_samples, block):
        picked = chosen_by_column[:, start : start + block][prefix.T]  # (positions, rows, samples)
        rank = _running_counts(picked)[slot_position, rows] * picked[slot_position, rows]
        dcg[:, start : start + block] = np.einsum("rps,rp->rs", discount_by_rank[rank], slot_gain)
    # Every sample holds one rollout of every key: the ideal DCG is the same for all samples.
    return normalised(dcg.T, ideal_dcg(layout.key_gain, k))


def joint_sample_ndcg(
    similarity: np.ndarray, layout: SamplingLayout, joint_columns: np.ndarray, *, k: int = NDCG_CUTOFF
) -> np.ndarray:
    """(samples, rows) NDCG@k of every query rollout against every joint sample's document list.

    Equal to ``ndcg_at_k(similarity[r, C_m], gain[r, C_m])`` for all m, r, without sorting each sub-list.
    """
    return _ndcg_of_chosen(similarity, layout, _chosen_mask(joint_columns, layout.num_columns), k)


def joint_sample_sums(
    similarity: np.ndarray,
    layout: SamplingLayout,
    joint_columns: np.ndarray,
    *,
    k: int = NDCG_CUTOFF,
    kpos_reweight: float = KPOS_REWEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """``batch_sampling`` sums: R[r, c] = Σ_m v_mr·w_rc, W[r, c] = Σ_m w_rc over samples m choosing c.

    v_mr = NDCG@k of row r on sample m; w_rc = 1 + λ·gain[r, c] weighs a document's reward towards the
    queries it is relevant to (METHOD §5).
    """
    chosen = _chosen_mask(joint_columns, layout.num_columns)
    values = _ndcg_of_chosen(similarity, layout, chosen, k)
    weights = 1.0 + kpos_reweight * layout.gain
    return weights * (values.T @ chosen.astype(np.float64)), weights * chosen.sum(axis=0)


def single_query_sample_sums(
    similarity: np.ndarray,
    layout: SamplingLayout,
    rows: np.ndarray,
    columns: np.ndarray,
    *,
    k: int = NDCG_CUTOFF,
) -> tuple[np.ndarray, np.ndarray]:
    """``sampling`` sums: R[r, c] += v and W[r, c] += 1 for every sample of row r choosing c."""
    present = columns >= 0
    safe_columns = np.where(present, columns, 0)
    sample_rows = rows[:, None]
    scores = np.where(present, similarity[sample_rows, safe_columns], -np.inf)  # −inf: padding
    gains = layout.gain[sample_rows, safe_columns]
    # A sample holds one rollout of every key of its row's group: that row's ideal DCG, computed once.
    own_keys = layout.key_group[None, :] == layout.row_group[:, None]
    values = normalised(dcg_at_k(scores, gains, k), ideal_dcg(layout.key_gain, k, present=own_keys)[rows])
    cells = (sample_rows * layout.num_columns + safe_columns)[present]
    size = layout.num_rows * layout.num_columns
    shape = (layout.num_rows, layout.num_columns)
    reward_sum = np.bincount(cells, weights=np.broadcast_to(values[:, None], columns.shape)[present], minlength=size)
    weight_sum = np.bincount(cells, minlength=size).astype(np.float64)
    return reward_sum.reshape(shape), weight_sum.reshape(shape)


def _ratio(total: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.divide(total, weight, out=np.zeros_like(total), where=weight != 0)


def rewards_from_sums(reward_sum: np.ndarray, weight_sum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query rollout r: Σ_c R / Σ_c W; document rollout c: Σ_r R / Σ_r W; 0 where the weights sum to 0."""
    query_rewards = _ratio(reward_sum.sum(axis=1), weight_sum.sum(axis=1))
    doc_rewards = _ratio(reward_sum.sum(axis=0), weight_sum.sum(axis=0))
    return query_rewards, doc_rewards
