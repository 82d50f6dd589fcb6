from __future__ import annotations

import math

import numpy as np
import pytest

from coaug.errors import CoaugError
from coaug.evaluation.significance import compare, holm_adjust, paired_bootstrap, paired_ttest


def test_ttest_matches_closed_form():
    # diff = [1, 0, 1, 2]: mean 1, sd sqrt(2/3), t = 1 / (sd / 2) = sqrt(6), df = 3.
    # Student's t with 3 df has a closed-form CDF: p = 1 - (2/pi)(theta + sin(theta)cos(theta)),
    # theta = atan(t / sqrt(3)).
    theta = math.atan(math.sqrt(6) / math.sqrt(3))
    expected = 1 - (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta))
    p = paired_ttest(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.0, 2.0, 2.0]))
    assert p == pytest.approx(expected, abs=1e-12)


def test_identical_systems_are_not_different():
    same = np.array([0.1, 0.5, 0.3])
    assert paired_ttest(same, same) == 1.0
    assert paired_bootstrap(same, same, 100, 0)["p_bootstrap"] == 1.0


def test_bootstrap_of_a_constant_difference_is_certain():
    result = paired_bootstrap(np.array([0.5, 0.7, 0.9]), np.array([0.4, 0.6, 0.8]), 200, 0)
    assert result["mean_diff"] == pytest.approx(0.1)
    assert result["ci_low"] == pytest.approx(0.1) and result["ci_high"] == pytest.approx(0.1)
    assert result["p_bootstrap"] == 0.0


def test_bootstrap_is_reproducible_for_a_seed():
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    assert paired_bootstrap(a, b, 500, 7) == paired_bootstrap(a, b, 500, 7)


def test_compare_pairs_by_query_id():
    result = compare(
        {"q1": 1.0, "q2": 0.0, "q3": 0.5}, {"q2": 0.0, "q3": 0.5, "q1": 0.5}, 100, 0, ("dense", "bm25_flat")
    )
    assert result["queries"] == 3
    assert result["mean_diff"] == pytest.approx(0.5 / 3)


@pytest.mark.parametrize(
    ("system", "baseline", "counts"),
    [
        ({"q1": 1.0, "q2": 0.0, "q3": 0.5}, {"q2": 0.0, "q1": 0.5, "q9": 1.0}, "dense has 3, bm25_flat 3, 2 shared"),
        ({"q1": 1.0, "q2": 0.0}, {"q1": 0.5}, "dense has 2, bm25_flat 1, 1 shared"),
        # The report: metrics of another dataset, no query in common (a NaN difference, p = 1).
        ({"PLAIN-1": 0.3}, {"q1": 0.5, "q2": 0.1}, "dense has 1, bm25_flat 2, 0 shared"),
        ({}, {}, "dense has 0, bm25_flat 0, 0 shared"),
    ],
)
def test_compare_needs_the_same_queries_on_both_sides(system, baseline, counts):
    with pytest.raises(CoaugError) as error:
        compare(system, baseline, 100, 0, ("dense", "bm25_flat"))
    assert str(error.value) == (
        f"paired test of dense against bm25_flat needs the same non-empty query set on both sides, but {counts}: "
        "rerun `coaug evaluate` for both on the current dataset"
    )


def test_holm_adjusts_in_step_down_order_and_keeps_the_given_order():
    # Sorted: 0.01 x 4 = 0.04, 0.02 x 3 = 0.06, 0.03 x 2 = 0.06 (monotone), 0.5 x 1 = 0.5.
    assert holm_adjust([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # Capped at 1; a single test is not adjusted.
    assert holm_adjust([0.4, 0.6]) == [0.8, 0.8]
    assert holm_adjust([0.2]) == [0.2]
    assert holm_adjust([]) == []
