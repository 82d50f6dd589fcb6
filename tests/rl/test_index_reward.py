"""The index reward: sampled NDCG on the real index with the batch's documents replaced by their rollouts."""

from __future__ import annotations

import numpy as np
import pytest

from coaug.evaluation.metrics import per_query
from coaug.retrieval import lucene
from coaug.retrieval.lucene_bm25 import LuceneIndex
from coaug.rl.index_reward import IndexReward, RankedRows, sample_ndcg, sample_rewards
from coaug.rl.reward_layout import sampling_layout
from coaug.rl.reward_sampling import draw_joint_samples


def plain_ndcg(rows: RankedRows, column_score, joint_columns, column_key, k=10):
    """One list per (sample, row), sorted by (−score, docid order) in Python."""
    values = np.zeros((len(joint_columns), len(rows.ideal)))
    for m, chosen in enumerate(joint_columns):
        for r in range(len(rows.ideal)):
            entries = [
                (rows.fixed_score[r, i], rows.fixed_order[r, i], rows.fixed_gain[r, i])
                for i in range(rows.fixed_score.shape[1])
                if np.isfinite(rows.fixed_score[r, i])
            ]
            entries += [
                (column_score[r, c], rows.key_order[column_key[c]], rows.key_gain[r, column_key[c]]) for c in chosen
            ]
            entries.sort(key=lambda e: (-e[0], e[1]))
            dcg = sum(g / np.log2(rank + 2) for rank, (_, _, g) in enumerate(entries[:k]))
            values[m, r] = dcg / rows.ideal[r] if rows.ideal[r] else 0.0
    return values


@pytest.fixture
def batch():
    # Two queries (groups 0, 1), keys: (0, docA), (0, docB), (1, docC), two rollouts each; three query rollouts.
    layout = sampling_layout(
        np.array([0, 0, 1]),
        np.array([0, 0, 0, 0, 1, 1]),
        np.array([10, 10, 11, 11, 12, 12]),
        np.array([2, 2, 0, 0, 1, 1]),
    )
    rows = RankedRows(
        fixed_score=np.array([[5.0, 3.0, -np.inf], [5.0, 1.0, -np.inf], [4.0, 2.0, 2.0]]),
        fixed_gain=np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]),
        fixed_order=np.array([[3, 4, 0], [3, 5, 0], [6, 7, 8]]),
        key_gain=np.array([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        key_order=np.array([0, 1, 2]),
        ideal=np.array([2 + 1 / np.log2(3), 2 + 1 / np.log2(3), 1 + 1 / np.log2(3) + 0.5]),
    )
    column_score = np.array(
        [[6.0, 2.0, 3.0, 3.0, 0.0, 0.0], [1.0, 4.0, 0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 2.0, 9.0]]
    )
    return layout, rows, column_score


def test_sample_ndcg_equals_a_plain_sort_of_every_list(batch):
    layout, rows, column_score = batch
    joint = draw_joint_samples(layout, 40, np.random.default_rng(0))
    expected = plain_ndcg(rows, column_score, joint, layout.column_key, k=3)
    np.testing.assert_allclose(sample_ndcg(column_score, rows, joint, k=3), expected, rtol=1e-12)


def test_sample_rewards_follow_the_weighted_sums(batch):
    layout, rows, column_score = batch
    joint = draw_joint_samples(layout, 40, np.random.default_rng(1))
    values = sample_ndcg(column_score, rows, joint, k=3)
    query_rewards, doc_rewards = sample_rewards(values, rows.key_gain, layout, joint, kpos_reweight=10.0)
    np.testing.assert_allclose(query_rewards, values.mean(axis=0))
    reward, weight = np.zeros(layout.num_columns), np.zeros(layout.num_columns)
    for m, chosen in enumerate(joint):
        for c in chosen:
            w = 1 + 10.0 * rows.key_gain[:, layout.column_key[c]]
            reward[c] += (w * values[m]).sum() / w.sum()
            weight[c] += 1
    np.testing.assert_allclose(doc_rewards, np.divide(reward, weight, out=np.zeros(6), where=weight > 0))


CORPUS = {
    "D1": {
        "title": "Statins and breast cancer",
        "text": "Statin use was associated with lower breast cancer mortality.",
    },
    "D2": {"title": "Vitamin D", "text": "Vitamin D supplements improve bone density in older adults."},
    "D3": {"title": "Green tea", "text": "Green tea catechins may lower cholesterol and blood pressure."},
    "D4": {"title": "Asthma", "text": "Childhood asthma and air pollution."},
    "D5": {"title": "Cholesterol", "text": "Breast cancer patients with high cholesterol and statin therapy."},
}
QRELS = {"Q1": {"D1": 2, "D5": 1}, "Q2": {"D2": 1}}
QUERIES = {"Q1": "breast cancer statin", "Q2": "vitamin bone"}


@pytest.fixture
def reward(tmp_path):
    lucene.build_index(CORPUS.items(), "flat", tmp_path / "index", threads=1)
    return IndexReward(
        LuceneIndex(tmp_path / "index", 0.9, 0.4),
        QRELS,
        query_repeat=1,
        indexed_augmentation={},
        doc_ids=list(CORPUS),
        threads=1,
    )


def test_unchanged_documents_give_each_query_its_ndcg_on_the_index(reward):
    """Rollouts that leave the batch's documents as indexed: a query rollout's reward is its query's NDCG@10
    as the evaluation scores a search of the index (the documents re-scored outside Lucene rank as inside)."""
    layout = sampling_layout(np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([1, 3, 2]), np.array([2, 0, 1]))
    row_texts = [QUERIES["Q1"], "statin cholesterol", QUERIES["Q2"]]
    columns = [reward.doc_text(d, CORPUS[d], None) for d in ("D1", "D3", "D2")]
    query_rewards, _ = reward.rewards(
        ["Q1", "Q1", "Q2"],
        row_texts,
        columns,
        layout,
        ["D1", "D3", "D2"],
        8,
        np.random.default_rng(0),
        kpos_reweight=10.0,
    )
    hits = reward.index.search(row_texts, hits=10, threads=1)
    run = {f"r{i}": h for i, h in enumerate(hits)}
    qrels = {f"r{i}": QRELS[q] for i, q in enumerate(["Q1", "Q1", "Q2"])}
    expected = per_query(qrels, run, ["NDCG@10"])["NDCG@10"]
    np.testing.assert_allclose(query_rewards, [expected[f"r{i}"] for i in range(3)], rtol=1e-12)


def test_a_document_rollout_is_rewarded_with_its_own_ranking(reward):
    """One query, one document key with two rollouts: each rollout's reward is the query's NDCG@10 with that
    rollout indexed, and the query's reward their mean. D1 (the only relevant document of Q3) ranks below D5
    and D3 as indexed; an augmentation with the query's words lifts it to the top."""
    layout = sampling_layout(np.array([0]), np.array([0, 0]), np.array([1, 1]), np.array([1, 1]))
    qrels = {**QRELS, "Q3": {"D1": 1}}
    reward = IndexReward(reward.index, qrels, 1, {}, list(CORPUS), threads=1)
    columns = [
        reward.doc_text("D1", CORPUS["D1"], "cholesterol tea pressure cholesterol"),
        reward.doc_text("D1", CORPUS["D1"], "zebra"),
    ]
    hits = [doc for doc, _ in reward.index.search(["cholesterol pressure statin"], hits=10, threads=1)[0]]
    assert hits.index("D1") == 2  # as indexed: third
    query_rewards, doc_rewards = reward.rewards(
        ["Q3"],
        ["cholesterol pressure statin"],
        columns,
        layout,
        ["D1"],
        64,
        np.random.default_rng(0),
        kpos_reweight=10.0,
    )
    assert doc_rewards[0] == 1.0
    assert doc_rewards[1] == pytest.approx(1 / np.log2(4))
    chose_first = np.mean(draw_joint_samples(layout, 64, np.random.default_rng(0))[:, 0] == 0)
    assert query_rewards[0] == pytest.approx(chose_first * 1.0 + (1 - chose_first) / np.log2(4))


def test_with_query_repeat_0_a_rollout_is_rewarded_for_what_its_augmentation_finds_alone(reward):
    """The augmentation alone is searched: one that matches nothing (a made-up word, or nothing at all) scores 0,
    where with the original query beside it (query_repeat 1) it would keep the query's own ranking."""
    alone = IndexReward(reward.index, QRELS, 0, {}, list(CORPUS), threads=1)
    assert alone.query_text("breast cancer statin", "statin mortality") == "statin mortality"
    layout = sampling_layout(np.array([0, 0, 0]), np.array([0]), np.array([2]), np.array([0]))
    rows = ["Q1", "Q1", "Q1"]
    augmentations = ["statin mortality", "zorblax", ""]
    columns = [alone.doc_text("D2", CORPUS["D2"], None)]

    def query_rewards(of: IndexReward) -> np.ndarray:
        texts = [of.query_text("breast cancer statin", a) for a in augmentations]
        return of.rewards(rows, texts, columns, layout, ["D2"], 4, np.random.default_rng(0), 10.0)[0]

    with_query, by_itself = query_rewards(reward), query_rewards(alone)
    assert by_itself[1] == by_itself[2] == 0.0
    assert by_itself[0] > 0.0
    assert with_query[1] == with_query[2] > 0.0
