"""Reward sampling (METHOD §5): vectorised code against a plain-loop copy of the authors' reward manager.

The loop reference below follows the reference ``RewardManager`` line by line (nested dict of columns
per (qid, cid), ``calculate_ndcg``, the two sampling loops) and consumes the SAME draws as the vectorised
code, so the two must agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.reward_loops import loop_batch_sampling, loop_gain, loop_key_columns, loop_ndcg, loop_rewards
from coaug.errors import CoaugError
from coaug.rl.reward import SAMPLING_MODES, sampled_rewards, sampling_layout
from coaug.rl.reward_ndcg import ndcg_at_k
from coaug.rl.reward_sampling import (
    _contenders,
    draw_joint_samples,
    draw_single_query_samples,
    joint_sample_count,
    joint_sample_ndcg,
    joint_sample_rewards,
    single_query_sample_count,
    single_query_sample_rewards,
)

RTOL = 1e-12
# With negative gains, weights of opposite sign cancel: sums that are 0 come out as ±1e-18 rounding.
ATOL_AT_ZERO = 1e-14
SEEDS = range(6)


# ---------------------------------------------------------------- loop reference (plain Python)


def loop_sampling(similarity, batch, rows_drawn, columns_drawn, k):
    row_group, column_group, column_doc, relevance = batch
    keys = loop_key_columns(column_group, column_doc)
    rows, columns = similarity.shape
    reward = [[0.0] * columns for _ in range(rows)]
    weight = [[0.0] * columns for _ in range(rows)]
    for r, drawn in zip(rows_drawn.tolist(), columns_drawn.tolist()):
        sample = [c for c in drawn if c >= 0]
        own_keys = list(keys[row_group[r]].values()) if row_group[r] in keys else []
        assert len(sample) == len(own_keys)
        assert all(c in cols for c, cols in zip(sample, own_keys))
        v = loop_ndcg([similarity[r, c] for c in sample], [relevance[c] for c in sample], k)
        for c in sample:
            reward[r][c] += v
            weight[r][c] += 1
    return reward, weight


# ---------------------------------------------------------------- random batches


def random_batch(seed: int, *, groups: int, docs_per_group: int, tie_levels: int | None, lowest_relevance=0):
    """A small shuffled batch: n = 2–3 rollouts per text, groups of unequal size, one document drawn twice
    per group, frequent score ties."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 4))
    group_labels = rng.permutation(100)[:groups] + 7  # arbitrary labels, not 0..G-1
    row_group = np.repeat(group_labels, n)
    column_group, column_doc, relevance = [], [], []
    for group in group_labels:
        docs = rng.choice(50, size=int(rng.integers(3, docs_per_group + 1)), replace=False)
        docs[-1] = docs[0]  # drawn with replacement: one key with 2n rollouts
        doc_relevance = {doc: float(rng.integers(lowest_relevance, 3)) for doc in docs}
        for doc in docs:
            column_group += [group] * n
            column_doc += [doc] * n
            relevance += [doc_relevance[doc]] * n
    shuffle = rng.permutation(len(column_group))
    batch = (
        rng.permutation(row_group),
        np.array(column_group)[shuffle],
        np.array(column_doc)[shuffle],
        np.array(relevance)[shuffle],
    )
    shape = (len(row_group), len(column_group))
    if tie_levels is None:
        similarity = rng.random(shape)
    else:
        similarity = rng.integers(0, tie_levels, size=shape).astype(np.float64)
    return similarity, batch


BATCH_SHAPES = [
    dict(groups=2, docs_per_group=3, tie_levels=3),
    dict(groups=3, docs_per_group=5, tie_levels=4),
    dict(groups=3, docs_per_group=4, tie_levels=None),
    dict(groups=4, docs_per_group=4, tie_levels=2, lowest_relevance=-1),  # judged-bad docs: negative gain
]


# ---------------------------------------------------------------- property tests


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("k", [3, 10])
def test_batch_sampling_equals_loop_reference(seed, shape, k):
    similarity, batch = random_batch(seed, **shape)
    layout = sampling_layout(*batch)
    joint_columns = draw_joint_samples(layout, 20, np.random.default_rng(seed))
    rewards = joint_sample_rewards(similarity, layout, joint_columns, k=k, kpos_reweight=10.0)
    expected = loop_rewards(*loop_batch_sampling(similarity, batch, joint_columns, k, 10.0))
    np.testing.assert_allclose(rewards[0], expected[0], rtol=RTOL, atol=ATOL_AT_ZERO)
    np.testing.assert_allclose(rewards[1], expected[1], rtol=RTOL, atol=ATOL_AT_ZERO)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("k", [3, 10])
def test_joint_sample_ndcg_equals_loop_ndcg_for_every_sample_and_row(seed, shape, k):
    similarity, batch = random_batch(seed, **shape)
    layout = sampling_layout(*batch)
    joint_columns = draw_joint_samples(layout, 10, np.random.default_rng(seed))
    gain = loop_gain(*batch[:2], batch[3])
    expected = [
        [loop_ndcg([similarity[r, c] for c in sample], [gain[r][c] for c in sample], k) for r in range(len(gain))]
        for sample in joint_columns.tolist()
    ]
    np.testing.assert_allclose(joint_sample_ndcg(similarity, layout, joint_columns, k=k), expected, rtol=RTOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("k", [3, 10])
def test_sampling_equals_loop_reference(seed, shape, k):
    similarity, batch = random_batch(seed, **shape)
    layout = sampling_layout(*batch)
    rows, columns = draw_single_query_samples(layout, 60, np.random.default_rng(seed))
    rewards = single_query_sample_rewards(similarity, layout, rows, columns, k=k)
    expected = loop_rewards(*loop_sampling(similarity, batch, rows, columns, k))
    np.testing.assert_allclose(rewards[0], expected[0], rtol=RTOL, atol=ATOL_AT_ZERO)
    np.testing.assert_allclose(rewards[1], expected[1], rtol=RTOL, atol=ATOL_AT_ZERO)


def test_sampling_skips_query_groups_without_documents():
    # Group 5 has query rollouts but no documents: its samples score 0 and touch nothing.
    batch = (np.array([1, 1, 5]), np.array([1, 1, 1, 1]), np.array([3, 3, 4, 4]), np.array([1.0, 1.0, 0, 0]))
    similarity = np.arange(12, dtype=np.float64).reshape(3, 4)
    layout = sampling_layout(*batch)
    rows, columns = draw_single_query_samples(layout, 40, np.random.default_rng(0))
    assert np.all(columns[rows == 2] == -1)
    rewards = single_query_sample_rewards(similarity, layout, rows, columns, k=10)
    expected = loop_rewards(*loop_sampling(similarity, batch, rows, columns, 10))
    np.testing.assert_allclose(rewards[0], expected[0], rtol=RTOL)
    np.testing.assert_allclose(rewards[1], expected[1], rtol=RTOL)
    assert rewards[0][2] == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_ndcg_at_k_equals_loop_reference_over_samples_and_rows(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(7, 5, 13)).astype(np.float64)  # ties everywhere
    gains = rng.integers(0, 3, size=scores.shape).astype(np.float64)
    for k in (1, 3, 10, 20):
        expected = [
            [loop_ndcg(s.tolist(), g.tolist(), k) for s, g in zip(sample_scores, sample_gains)]
            for sample_scores, sample_gains in zip(scores, gains)
        ]
        np.testing.assert_allclose(ndcg_at_k(scores, gains, k), np.array(expected), rtol=RTOL)


def test_ndcg_padding_ranks_last_and_changes_nothing():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, size=(50, 6)).astype(np.float64)
    gains = rng.integers(-1, 3, size=(50, 6)).astype(np.float64)  # negative gains too
    padded_scores = np.concatenate([scores, np.full((50, 4), -np.inf)], axis=1)
    padded_gains = np.concatenate([gains, rng.integers(-1, 3, size=(50, 4))], axis=1)  # any padding gain
    for k in (2, 10):
        np.testing.assert_allclose(ndcg_at_k(padded_scores, padded_gains, k), ndcg_at_k(scores, gains, k), rtol=RTOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_contender_head_is_a_prefix_of_the_sub_list_order(seed, shape):
    similarity, batch = random_batch(seed, **shape)
    layout = sampling_layout(*batch)
    # Full order: decreasing score, ties by key order, then column.
    column_index = np.broadcast_to(np.arange(layout.num_columns), similarity.shape)
    key_index = np.broadcast_to(layout.column_key, similarity.shape)
    full = np.lexsort((column_index, key_index, -similarity), axis=1)
    head = _contenders(similarity, layout, 3)
    for r in range(layout.num_rows):
        real = head[r][head[r] < layout.num_columns]
        assert np.array_equal(real, full[r, : len(real)])
    assert head.shape[1] < layout.num_columns or layout.num_keys <= 3


# ---------------------------------------------------------------- draws


def test_draws_pick_one_rollout_per_key_uniformly():
    _, batch = random_batch(2, groups=2, docs_per_group=3, tie_levels=3)
    layout = sampling_layout(*batch)
    joint_columns = draw_joint_samples(layout, 20_000, np.random.default_rng(0))
    every_key_in_order = np.broadcast_to(np.arange(layout.num_keys), joint_columns.shape)
    assert np.array_equal(layout.column_key[joint_columns], every_key_in_order)
    counts = np.bincount(joint_columns.ravel(), minlength=layout.num_columns)
    expected = 20_000 / layout.key_size[layout.column_key]
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_same_seed_same_rewards_and_seeds_differ():
    similarity, batch = random_batch(4, groups=3, docs_per_group=4, tie_levels=None)
    layout = sampling_layout(*batch)
    for mode in SAMPLING_MODES:
        first = sampled_rewards(similarity, layout, np.random.default_rng(11), mode=mode)
        again = sampled_rewards(similarity, layout, np.random.default_rng(11), mode=mode)
        other = sampled_rewards(similarity, layout, np.random.default_rng(12), mode=mode)
        np.testing.assert_array_equal(first[0], again[0])
        np.testing.assert_array_equal(first[1], again[1])
        assert not np.array_equal(first[1], other[1])


# ---------------------------------------------------------------- hand-computed cases


def test_reference_batch_gets_512_joint_samples():
    # 32 queries × 16 texts × 5 rollouts = 2560 rollout texts, 32 × 5 = 160 of them query rollouts.
    assert joint_sample_count(32 * 16 * 5, 32 * 5) == 512
    assert single_query_sample_count(32 * 16 * 5) == 64 * 2560
    assert joint_sample_count(3, 100) == 1


def test_ndcg_ties_keep_sub_list_order():
    scores = np.array([1.0, 2.0, 2.0, 0.0])
    # Tied columns 1 and 2 rank in sub-list order: gains 1 then 2.
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(scores, np.array([0.0, 1.0, 2.0, 0.0]), 10) == pytest.approx(dcg / ideal, rel=RTOL)
    assert ndcg_at_k(scores, np.array([0.0, 2.0, 1.0, 0.0]), 10) == pytest.approx(1.0, rel=RTOL)
    assert ndcg_at_k(scores, np.array([0.0, 1.0, 2.0, 0.0]), 1) == pytest.approx(0.5, rel=RTOL)
    assert ndcg_at_k(scores, np.zeros(4), 10) == 0.0


def test_one_query_rollout_rewards_by_hand():
    # One query rollout; key A (relevant, rollouts 0 and 1), key B (not relevant, rollout 2).
    # Column 1 scores below B, column 0 above: NDCG 1 with column 0, 1/log2(3) with column 1.
    batch = (np.array([0]), np.array([0, 0, 0]), np.array([10, 10, 11]), np.array([1.0, 1.0, 0.0]))
    similarity = np.array([[3.0, 1.0, 2.0]])
    layout = sampling_layout(*batch)
    joint_columns = np.array([[0, 2], [1, 2], [1, 2]])
    query, doc = joint_sample_rewards(similarity, layout, joint_columns, k=10, kpos_reweight=10.0)
    low = 1 / math.log2(3)
    # R = [11·1, 11·2·low, 1 + 2·low] and W = [11, 22, 3]: weights 1 + 10·gain.
    np.testing.assert_allclose(query, [(12 + 24 * low) / 36], rtol=RTOL)
    np.testing.assert_allclose(doc, [1.0, low, (1 + 2 * low) / 3], rtol=RTOL)


def test_layout_rejects_inconsistent_relevance_and_bad_similarity():
    with pytest.raises(CoaugError, match="differ in relevance"):
        sampling_layout(np.array([0]), np.array([0, 0]), np.array([1, 1]), np.array([1.0, 0.0]))
    layout = sampling_layout(np.array([0]), np.array([0, 0]), np.array([1, 2]), np.array([1.0, 0.0]))
    with pytest.raises(CoaugError, match="similarity is"):
        sampled_rewards(np.zeros((2, 2)), layout, np.random.default_rng(0))
    with pytest.raises(CoaugError, match="NaN"):
        sampled_rewards(np.array([[np.nan, 0.0]]), layout, np.random.default_rng(0))
    with pytest.raises(CoaugError, match="unknown sampling mode"):
        sampled_rewards(np.zeros((1, 2)), layout, np.random.default_rng(0), mode="exhaustive")


@pytest.mark.parametrize("mode", SAMPLING_MODES)
def test_sampled_rewards_runs_the_drawn_samples_through_the_sums(mode):
    similarity, batch = random_batch(5, groups=3, docs_per_group=4, tie_levels=3)
    layout = sampling_layout(*batch)
    rows, columns = similarity.shape
    got = sampled_rewards(similarity, layout, np.random.default_rng(9), mode=mode, samples_per_rollout=2)
    rng = np.random.default_rng(9)  # the same draws, replayed through the loop reference
    if mode == "batch_sampling":
        joint_columns = draw_joint_samples(
            layout, joint_sample_count(rows + columns, rows, samples_per_rollout=2), rng
        )
        expected = loop_rewards(*loop_batch_sampling(similarity, batch, joint_columns, 10, 10.0))
    else:
        drawn = draw_single_query_samples(
            layout, single_query_sample_count(rows + columns, samples_per_rollout=2), rng
        )
        expected = loop_rewards(*loop_sampling(similarity, batch, *drawn, 10))
    np.testing.assert_allclose(got[0], expected[0], rtol=RTOL)
    np.testing.assert_allclose(got[1], expected[1], rtol=RTOL)
