"""Paired significance tests of one system against a baseline over the same queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from coaug.errors import CoaugError


def paired_ttest(system: np.ndarray, baseline: np.ndarray) -> float:
    """Two-sided paired t-test p-value (1.0 when the systems never differ)."""
    diff = np.asarray(system, float) - np.asarray(baseline, float)
    if not np.any(diff):
        return 1.0
    return float(stats.ttest_rel(system, baseline).pvalue)


def paired_bootstrap(system: np.ndarray, baseline: np.ndarray, samples: int, seed: int) -> dict[str, float]:
    """Paired bootstrap over queries (Sakai 2006): two-sided p-value and 95% CI of the mean difference.

    p = share of resampled mean differences, centred on the observed mean, at least as far from 0 as
    the observed mean (the null hypothesis shifts the distribution to mean 0).
    """
    diff = np.asarray(system, float) - np.asarray(baseline, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[picks].mean(axis=1)
    observed = diff.mean()
    p_value = float(np.mean(np.abs(means - observed) >= abs(observed))) if np.any(diff) else 1.0
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean_diff": float(observed), "ci_low": float(low), "ci_high": float(high), "p_bootstrap": p_value}


def compare(
    system: dict[str, float], baseline: dict[str, float], samples: int, seed: int, names: tuple[str, str]
) -> dict[str, float]:
    """Both tests on per-query values (sorted ids, so results are stable) of ``names`` = (system, baseline).

    Every judged query is scored (0 when unanswered), so two runs of one eval split have the same query set; a
    difference means one side is from another dataset or split, and testing only the shared queries would hide it.
    """
    if set(system) != set(baseline) or not system:
        shared = len(set(system) & set(baseline))
        raise CoaugError(
            f"paired test of {names[0]} against {names[1]} needs the same non-empty query set on both sides, but "
            f"{names[0]} has {len(system)}, {names[1]} {len(baseline)}, {shared} shared: "
            "rerun `coaug evaluate` for both on the current dataset"
        )
    qids = sorted(system)
    a = np.array([system[q] for q in qids])
    b = np.array([baseline[q] for q in qids])
    return {"queries": len(qids), **paired_bootstrap(a, b, samples, seed), "p_ttest": paired_ttest(a, b)}


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given: the i-th smallest of m is
    multiplied by (m - i), made monotone and capped at 1. Reject where the adjusted value < alpha."""
    order = np.argsort(np.asarray(p_values, dtype=float), kind="stable")
    adjusted = np.empty(len(order))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted.tolist()
