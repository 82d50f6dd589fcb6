"""Plain-loop reference of the reward pass (METHOD §4–§5) that benchmarks/reward_pass.py times.

Ports of the authors' ``compute_bm25_matrix`` and ``RewardManager``, written as plain loops: the reference the
property tests (tests/rl/test_reward_bm25.py, tests/rl/test_reward_sampling.py) check the vectorised code
against, and the one reward_pass.py times and checks (rtol 1e-12) on every run. It lives here so that no
benchmark imports from tests/.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from coaug.rl.reward_bm25 import tokenize


def loop_bm25(query_texts, doc_texts, idf, k1=1.2, b=0.75) -> list[list[float]]:
    """The reference ``compute_bm25_matrix`` (text_sim.py) as plain loops over pairs."""
    queries = [tokenize(t) for t in query_texts]
    docs = [tokenize(t) for t in doc_texts]
    average_length = sum(len(d) for d in docs) / len(docs)
    matrix = []
    for query in queries:
        row = []
        for doc in docs:
            query_tf, doc_tf, score = Counter(query), Counter(doc), 0.0
            for word in query_tf:
                if word in doc_tf:
                    f = doc_tf[word]
                    denominator = f + k1 * (1 - b + b * len(doc) / average_length)
                    score += idf.get(word, 0) * ((f * (k1 + 1)) / denominator) * query_tf[word]
            row.append(score)
        matrix.append(row)
    return matrix


def loop_ndcg(scores: list[float], gains: list[float], k: int) -> float:
    """The reference ``calculate_ndcg``: stable sort by −score, linear gains, ideal from the same gains."""
    n = min(k, len(scores))
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    dcg = sum(gains[i] / math.log2(rank + 2) for rank, i in enumerate(order[:n]))
    ideal = sorted(gains, reverse=True)[:n]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg != 0 else 0.0


def loop_key_columns(column_group, column_doc) -> dict:
    """qid -> cid -> columns, the reference's nested dict (insertion order = its sub-list order)."""
    id_to_columns: dict = defaultdict(lambda: defaultdict(list))
    for column, (group, doc) in enumerate(zip(column_group, column_doc)):
        id_to_columns[group][doc].append(column)
    return id_to_columns


def loop_gain(row_group, column_group, relevance) -> list[list[float]]:
    return [[relevance[c] if rg == column_group[c] else 0.0 for c in range(len(column_group))] for rg in row_group]


def loop_rewards(reward, weight):
    rows, columns = len(reward), len(reward[0])
    query = [sum(reward[r]) / sum(weight[r]) if sum(weight[r]) != 0 else 0.0 for r in range(rows)]
    col_reward = [sum(reward[r][c] for r in range(rows)) for c in range(columns)]
    col_weight = [sum(weight[r][c] for r in range(rows)) for c in range(columns)]
    doc = [col_reward[c] / col_weight[c] if col_weight[c] != 0 else 0.0 for c in range(columns)]
    return query, doc


def loop_batch_sampling(similarity, batch, joint_columns, k, kpos_reweight):
    row_group, column_group, column_doc, relevance = batch
    keys = loop_key_columns(column_group, column_doc)
    key_columns = [cols for group in keys for cols in keys[group].values()]
    gain = loop_gain(row_group, column_group, relevance)
    rows, columns = similarity.shape
    reward = [[0.0] * columns for _ in range(rows)]
    weight = [[0.0] * columns for _ in range(rows)]
    for sample in joint_columns.tolist():
        # One rollout of every key, in the reference's key order.
        assert len(sample) == len(key_columns)
        assert all(c in cols for c, cols in zip(sample, key_columns))
        for r in range(rows):
            v = loop_ndcg([similarity[r, c] for c in sample], [gain[r][c] for c in sample], k)
            for c in sample:
                reward[r][c] += v
                weight[r][c] += 1
                reward[r][c] += v * gain[r][c] * kpos_reweight
                weight[r][c] += gain[r][c] * kpos_reweight
    return reward, weight
