"""Reward estimation by sampling rollout combinations (METHOD §5), vectorised over samples and rows.

Each mode has two steps, so tests can feed the same draws to a plain loop: ``draw_*`` (the only random
part, an explicit ``numpy.random.Generator``) and ``*_rewards`` (pure: draws -> one reward per query
rollout and per document rollout).

``|batch|`` below is the number of rollout texts in the step, queries and documents together: 32 queries
× 16 texts × 5 rollouts = 2560 in the reference, whose 160 query rollouts give 64·2560 // 160 // 2 = 512
joint samples.
"""

from __future__ import annotations

import numpy as np

from coaug.rl.reward_layout import SamplingLayout
from coaug.rl.reward_ndcg import NDCG_CUTOFF, dcg_at_k, ideal_dcg, normalised, rank_discounts

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


def _ratio(total: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """total / weight, 0 where the weight is 0 (METHOD §5)."""
    return np.divide(total, weight, out=np.zeros_like(total), where=weight != 0)


def joint_sample_rewards(
    similarity: np.ndarray,
    layout: SamplingLayout,
    joint_columns: np.ndarray,
    *,
    k: int = NDCG_CUTOFF,
    kpos_reweight: float = KPOS_REWEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """``batch_sampling`` rewards (query rollouts, document rollouts) from the drawn joint samples.

    The reference accumulates R[r, c] += v_mr·w_rc and W[r, c] += w_rc for every sample m choosing c,
    with v_mr = NDCG@k of row r on sample m and w_rc = 1 + λ·gain[r, c] (METHOD §5); a query rollout
    gets Σ_c R / Σ_c W, a document rollout Σ_r R / Σ_r W. Only those sums are formed here, without the
    rows × columns matrices:
    - Σ_c w_rc over one sample's list is the same for every sample (one rollout of every key, and all of
      a key's rollouts share its gain), so a query rollout's reward is its mean NDCG over the samples;
    - Σ_r w_rc·v_mr = Σ_r v_mr + λ·relevance(c)·Σ_{r in c's group} v_mr.
    """
    chosen = _chosen_mask(joint_columns, layout.num_columns)
    values = _ndcg_of_chosen(similarity, layout, chosen, k)  # (samples, rows)
    num_samples = len(values)

    list_weight = layout.num_keys + kpos_reweight * layout.key_gain.sum(axis=1)
    query_rewards = _ratio(list_weight * values.sum(axis=0), num_samples * list_weight)

    sample_of_value = np.repeat(np.arange(num_samples), layout.num_rows)
    group_cells = sample_of_value * layout.num_groups + np.tile(layout.row_group, num_samples)
    group_values = np.bincount(group_cells, weights=values.ravel(), minlength=num_samples * layout.num_groups)
    group_values = group_values.reshape(num_samples, layout.num_groups)  # Σ of v over each group's rows
    # Σ_r w_rc·v_mr at every (sample, chosen column c).
    own_group_values = np.take_along_axis(group_values, layout.column_group[joint_columns], axis=1)
    relevance = layout.column_relevance[joint_columns]
    weighted_values = values.sum(axis=1, keepdims=True) + kpos_reweight * relevance * own_group_values
    reward_total = np.bincount(joint_columns.ravel(), weights=weighted_values.ravel(), minlength=layout.num_columns)
    times_chosen = np.bincount(joint_columns.ravel(), minlength=layout.num_columns)
    column_weight = layout.num_rows + kpos_reweight * layout.gain.sum(axis=0)
    doc_rewards = _ratio(reward_total, times_chosen * column_weight)
    return query_rewards, doc_rewards


def single_query_sample_rewards(
    similarity: np.ndarray,
    layout: SamplingLayout,
    rows: np.ndarray,
    columns: np.ndarray,
    *,
    k: int = NDCG_CUTOFF,
) -> tuple[np.ndarray, np.ndarray]:
    """``sampling`` rewards (query rollouts, document rollouts) from the drawn samples.

    R[r, c] += v and W[r, c] += 1 for every sample of row r choosing c (v = its NDCG@k); a query rollout
    gets Σ_c R / Σ_c W, a document rollout Σ_r R / Σ_r W (METHOD §5).
    """
    present = columns >= 0
    safe_columns = np.where(present, columns, 0)
    sample_rows = rows[:, None]
    scores = np.where(present, similarity[sample_rows, safe_columns], -np.inf)  # −inf: padding
    gains = layout.gain[sample_rows, safe_columns]
    # A sample holds one rollout of every key of its row's group: that row's ideal DCG, computed once.
    own_keys = layout.key_group[None, :] == layout.row_group[:, None]
    values = normalised(dcg_at_k(scores, gains, k), ideal_dcg(layout.key_gain, k, present=own_keys)[rows])

    cells = (sample_rows * layout.num_columns + safe_columns)[present]
    cell_values = np.broadcast_to(values[:, None], columns.shape)[present]
    size = layout.num_rows * layout.num_columns
    shape = (layout.num_rows, layout.num_columns)
    reward_sum = np.bincount(cells, weights=cell_values, minlength=size).reshape(shape)
    weight_sum = np.bincount(cells, minlength=size).reshape(shape).astype(np.float64)
    query_rewards = _ratio(reward_sum.sum(axis=1), weight_sum.sum(axis=1))
    doc_rewards = _ratio(reward_sum.sum(axis=0), weight_sum.sum(axis=0))
    return query_rewards, doc_rewards
