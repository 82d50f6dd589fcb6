"""The champion/challenger rule: exact boundaries of the gain and the p-value, and the reason it gives.

Scores are multiples of 1/16, so means and differences are exact in binary floating point and the gain
boundary can be hit exactly.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from coaug.errors import CoaugError
from coaug.evaluation.significance import paired_ttest
from coaug.params import load_params
from coaug.params_schema import Promotion
from coaug.registry.promotion_rule import Champion, Decision, Rule, decide, rule_from_params

from ..conftest import REPO

QIDS = ["q1", "q2", "q3", "q4"]
BASELINE = dict(zip(QIDS, [0.25, 0.125, 0.5, 0.25]))  # mean 0.28125
CHAMPION = dict(zip(QIDS, [0.5, 0.25, 0.5, 0.25]))  # mean 0.375
CHALLENGER = dict(zip(QIDS, [0.75, 0.375, 0.75, 0.375]))  # mean 0.5625: +0.1875 over the champion
# Differences to the champion: 0.25, 0.125, 0.25, 0.125.
P_VS_CHAMPION = paired_ttest(np.array(list(CHALLENGER.values())), np.array(list(CHAMPION.values())))


def test_reference_p_value_is_the_projects_paired_t_test():
    # t = 0.1875 / (0.0722 / 2) = 5.196 with 3 degrees of freedom.
    assert P_VS_CHAMPION == pytest.approx(0.013846, abs=1e-6)


def test_promoted_when_gain_equals_min_delta_exactly():
    decision = decide(CHALLENGER, BASELINE, Champion("2", CHAMPION), "bm25_flat", Rule(0.1875, 0.05))
    assert decision == Decision(
        promote=True,
        reason="promoted: challenger NDCG@10 0.5625 vs champion v2 0.3750 over 4 queries: "
        "Δ +0.1875 ≥ 0.1875 and paired t-test p = 0.0138 ≤ 0.05",
        challenger_score=0.5625,
        champion_score=0.375,
        baseline_score=0.28125,
        delta=0.1875,
        p_value=P_VS_CHAMPION,
        compared_against="champion v2",
    )


def test_rejected_when_gain_is_just_below_min_delta():
    min_delta = math.nextafter(0.1875, 1.0)
    decision = decide(CHALLENGER, BASELINE, Champion("2", CHAMPION), "bm25_flat", Rule(min_delta, 0.05))
    assert not decision.promote
    assert decision.reason == (
        "rejected: challenger NDCG@10 0.5625 vs champion v2 0.3750 over 4 queries: "
        "Δ +0.1875 < 0.1875 and paired t-test p = 0.0138 ≤ 0.05"
    )


def test_p_value_boundary_is_inclusive():
    champion = Champion("2", CHAMPION)
    assert decide(CHALLENGER, BASELINE, champion, "bm25_flat", Rule(0.0, P_VS_CHAMPION)).promote
    rejected = decide(CHALLENGER, BASELINE, champion, "bm25_flat", Rule(0.0, math.nextafter(P_VS_CHAMPION, 0.0)))
    assert not rejected.promote
    assert rejected.reason.endswith("Δ +0.1875 ≥ 0 and paired t-test p = 0.0138 > 0.0138468")


def test_rejected_when_neither_gain_nor_significance_suffices():
    # Same mean as the champion, swapped per query: no gain and p = 1.
    swapped = dict(zip(QIDS, [0.25, 0.5, 0.25, 0.5]))
    decision = decide(swapped, BASELINE, Champion("7", CHAMPION), "bm25_flat", Rule(0.005, 0.05))
    assert (decision.promote, decision.delta, decision.p_value) == (False, 0.0, 1.0)
    assert decision.reason == (
        "rejected: challenger NDCG@10 0.3750 vs champion v7 0.3750 over 4 queries: "
        "Δ +0.0000 < 0.005 and paired t-test p = 1 > 0.05"
    )


def test_without_a_champion_the_challenger_must_beat_the_baseline():
    decision = decide(CHALLENGER, BASELINE, None, "bm25_flat", Rule(0.005, 0.05))
    p_value = paired_ttest(np.array(list(CHALLENGER.values())), np.array(list(BASELINE.values())))
    assert p_value == pytest.approx(0.037386, abs=1e-6)
    assert decision == Decision(
        promote=True,
        reason="promoted: challenger NDCG@10 0.5625 vs baseline bm25_flat 0.2812 over 4 queries: "
        "Δ +0.2812 ≥ 0.005 and paired t-test p = 0.0374 ≤ 0.05",
        challenger_score=0.5625,
        champion_score=None,
        baseline_score=0.28125,
        delta=0.28125,
        p_value=p_value,
        compared_against="baseline bm25_flat",
    )


def test_worse_than_the_baseline_is_rejected_with_a_negative_gain():
    decision = decide(BASELINE, CHALLENGER, None, "bm25_flat", Rule(0.005, 0.05))
    assert (decision.promote, decision.delta) == (False, -0.28125)
    assert "Δ -0.2812 < 0.005" in decision.reason


def test_scores_on_different_queries_are_refused():
    champion = Champion("2", {q: CHAMPION[q] for q in QIDS[:3]})
    with pytest.raises(CoaugError) as error:
        decide(CHALLENGER, BASELINE, champion, "bm25_flat", Rule(0.005, 0.05))
    assert str(error.value) == (
        "NDCG@10 of challenger (4 queries) and champion v2 (3 queries) cover different queries (e.g. 'q4'): "
        "evaluate both on the same split"
    )


def test_one_query_is_too_few_for_a_paired_test():
    with pytest.raises(CoaugError, match=r"^NDCG@10 covers 1 queries: a paired t-test needs at least 2$"):
        decide({"q1": 0.5}, {"q1": 0.25}, None, "bm25_flat", Rule(0.005, 0.05))


def promotion(**rule) -> Promotion:
    return dataclasses.replace(load_params(REPO / "params.yaml").promotion, **rule)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"min_delta": -0.1, "max_p_value": 0.05}, "params: promotion.min_delta must be a number >= 0, got -0.1"),
        ({"min_delta": 0.005, "max_p_value": 0}, "params: promotion.max_p_value must be a number in (0, 1], got 0"),
        (
            {"min_delta": 0.005, "max_p_value": "0.05"},
            "params: promotion.max_p_value must be a number in (0, 1], got '0.05'",
        ),
    ],
)
def test_rule_params_are_validated(rule, message):
    with pytest.raises(CoaugError) as error:
        rule_from_params(promotion(**rule))
    assert str(error.value) == message


def test_a_missing_rule_param_fails_when_params_are_loaded(tmp_path):
    lines = (REPO / "params.yaml").read_text().splitlines()
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(line for line in lines if not line.startswith("  min_delta:")))
    with pytest.raises(CoaugError) as error:
        load_params(path)
    promotion_line = lines.index("promotion:") + 1
    assert str(error.value) == (
        f"{path}:{promotion_line}: promotion.min_delta: missing (smallest NDCG@10 gain worth a change of the served model)"
    )


def test_rule_from_params_reads_the_defaults():
    assert rule_from_params(promotion(min_delta=0.005, max_p_value=0.05)) == Rule(0.005, 0.05)
