"""Metrics on hand-computed rankings (trec_eval semantics via ir-measures)."""

from __future__ import annotations

import math

import pytest

from coaug.errors import CoaugError
from coaug.evaluation.metrics import aggregate, per_query

QRELS = {"Q1": {"D5": 2, "D1": 1, "D4": 0}, "Q2": {"D2": 1}, "Q3": {"D4": 1}}
RUN = {
    "Q1": [("D1", 3.0), ("D5", 2.0), ("D2", 1.0)],
    "Q2": [("D3", 2.0), ("D2", 1.0)],
    # Q3 is judged but unanswered: it counts as 0 (trec_eval -c).
}
METRICS = ["NDCG@10", "Recall@100", "MAP@100", "P@10"]


def test_per_query_values_match_hand_computation():
    values = per_query(QRELS, RUN, METRICS)
    # Q1: linear gains 1 (rank 1) and 2 (rank 2); ideal order puts the 2 first.
    ndcg_q1 = (1 / math.log2(2) + 2 / math.log2(3)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert values["NDCG@10"]["Q1"] == pytest.approx(ndcg_q1, abs=1e-12)
    assert values["NDCG@10"]["Q2"] == pytest.approx(1 / math.log2(3), abs=1e-12)
    assert values["NDCG@10"]["Q3"] == 0.0
    assert values["Recall@100"] == {"Q1": 1.0, "Q2": 1.0, "Q3": 0.0}
    assert values["MAP@100"] == {"Q1": 1.0, "Q2": 0.5, "Q3": 0.0}
    assert values["P@10"] == {"Q1": pytest.approx(0.2), "Q2": pytest.approx(0.1), "Q3": 0.0}


def test_aggregate_averages_over_all_judged_queries():
    means = aggregate(per_query(QRELS, RUN, METRICS))
    assert means["MAP@100"] == pytest.approx(0.5)
    assert means["Recall@100"] == pytest.approx(2 / 3)
    assert means["P@10"] == pytest.approx(0.1)


def test_score_ties_break_by_docid_descending_like_trec_eval():
    qrels = {"Q": {"A": 1}}
    # Equal scores: trec_eval ranks B before A, so the relevant A sits at rank 2.
    values = per_query(qrels, {"Q": [("A", 1.0), ("B", 1.0)]}, ["MAP@100"])
    assert values["MAP@100"]["Q"] == pytest.approx(0.5)


def test_unknown_metric_is_one_clear_error():
    with pytest.raises(CoaugError, match=r"unknown metric 'MRR@10'"):
        per_query(QRELS, RUN, ["MRR@10"])
