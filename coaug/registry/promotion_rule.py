"""Champion/challenger: does a newly trained policy replace the one being served?

The challenger must beat the reference by at least ``promotion.min_delta`` in mean NDCG@10 AND a paired
t-test over the same queries must give ``p <= promotion.max_p_value``: a gain too small to matter, or one
that could be noise, does not justify changing what users get. The reference is the champion; with no
champion yet it is the BM25 baseline, because a policy that cannot beat plain BM25 is not worth serving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from coaug.errors import CoaugError
from coaug.evaluation.significance import paired_ttest
from coaug.params_schema import Promotion

# The rule is stated on NDCG@10, the paper's headline metric; registry tags carry its name (ndcg_at_10).
METRIC = "NDCG@10"
# A paired t-test needs at least two differences to estimate their variance.
MIN_QUERIES = 2

Scores = dict[str, float]


@dataclass(frozen=True)
class Rule:
    """``min_delta``: smallest mean NDCG@10 gain that counts; ``max_p_value``: largest paired t-test p."""

    min_delta: float
    max_p_value: float


@dataclass(frozen=True)
class Champion:
    """The registry version being served and its recorded per-query NDCG@10."""

    version: str
    scores: Scores


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_score: float
    champion_score: float | None
    baseline_score: float
    delta: float
    p_value: float
    compared_against: str


def rule_from_params(promotion: Promotion) -> Rule:
    min_delta = promotion.min_delta
    max_p_value = promotion.max_p_value
    if not _is_number(min_delta) or min_delta < 0:
        raise CoaugError(f"params: promotion.min_delta must be a number >= 0, got {min_delta!r}")
    if not _is_number(max_p_value) or not 0 < max_p_value <= 1:
        raise CoaugError(f"params: promotion.max_p_value must be a number in (0, 1], got {max_p_value!r}")
    return Rule(min_delta=float(min_delta), max_p_value=float(max_p_value))


def decide(
    challenger: Scores, baseline: Scores, champion: Champion | None, baseline_name: str, rule: Rule
) -> Decision:
    """Promote or not, by :data:`rule <Rule>`, against ``champion`` or (when None) the baseline.

    All score maps are ``query id -> NDCG@10`` and must cover the same queries.
    """
    named = {"challenger": challenger, baseline_name: baseline}
    if champion is not None:
        named[f"champion v{champion.version}"] = champion.scores
    qids = _common_queries(named)
    if champion is None:
        reference, compared_against = baseline, f"baseline {baseline_name}"
    else:
        reference, compared_against = champion.scores, f"champion v{champion.version}"
    challenger_score, reference_score = mean_score(challenger), mean_score(reference)
    delta = challenger_score - reference_score
    p_value = paired_ttest(np.array([challenger[q] for q in qids]), np.array([reference[q] for q in qids]))
    gain_ok = delta >= rule.min_delta
    significant = p_value <= rule.max_p_value
    promote = gain_ok and significant
    reason = (
        f"{'promoted' if promote else 'rejected'}: challenger {METRIC} {challenger_score:.4f} vs "
        f"{compared_against} {reference_score:.4f} over {len(qids)} queries: "
        f"Δ {delta:+.4f} {'≥' if gain_ok else '<'} {rule.min_delta:g} and "
        f"paired t-test p = {p_value:.3g} {'≤' if significant else '>'} {rule.max_p_value:g}"
    )
    return Decision(
        promote=promote,
        reason=reason,
        challenger_score=challenger_score,
        champion_score=None if champion is None else reference_score,
        baseline_score=mean_score(baseline),
        delta=delta,
        p_value=p_value,
        compared_against=compared_against,
    )


def mean_score(scores: Scores) -> float:
    """Mean over queries in sorted id order, so the same scores always give the same float."""
    return float(np.mean([scores[q] for q in sorted(scores)]))


def _common_queries(named: dict[str, Scores]) -> list[str]:
    """The sorted query ids, which every score map must share: a paired test on different queries is void."""
    (first_name, first), *others = named.items()
    for name, scores in others:
        if set(scores) != set(first):
            only = sorted(set(first) ^ set(scores))
            raise CoaugError(
                f"{METRIC} of {first_name} ({len(first)} queries) and {name} ({len(scores)} queries) "
                f"cover different queries (e.g. '{only[0]}'): evaluate both on the same split"
            )
    if len(first) < MIN_QUERIES:
        raise CoaugError(f"{METRIC} covers {len(first)} queries: a paired t-test needs at least {MIN_QUERIES}")
    return sorted(first)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
