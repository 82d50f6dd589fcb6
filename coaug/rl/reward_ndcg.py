"""NDCG@k of sampled sub-lists, batched (METHOD §5): linear gains, stable tie order.

Same definition as the authors' ``calculate_ndcg``: rank by score, ties keep sub-list order; DCG of the
first ``min(k, length)`` entries with discount ``1 / log2(rank + 1)`` (rank from 1); ideal DCG from the same
gains sorted in decreasing order; NDCG = 0 where the ideal DCG is 0.

Ragged batches are padded at the end of a sub-list with score −inf (real scores are finite): a padding
entry ranks last and is no part of the list, neither of its DCG nor of its ideal. Leaving it out of the
ideal matters when gains can be negative (a padding gain of 0 would outrank them).
"""

from __future__ import annotations

import numpy as np

NDCG_CUTOFF = 10  # NDCG@10, METHOD §5


def rank_discounts(length: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..length."""
    return 1.0 / np.log2(np.arange(2, length + 2))


def ideal_dcg(gains: np.ndarray, k: int = NDCG_CUTOFF, present: np.ndarray | None = None) -> np.ndarray:
    """DCG@k of the best order of ``gains`` (..., length) over the last axis; only ``present`` entries count."""
    gains = np.asarray(gains, dtype=np.float64)
    if present is not None:
        gains = np.where(present, gains, -np.inf)
    best_first = -np.sort(-gains, axis=-1)[..., :k]
    best_first[np.isneginf(best_first)] = 0.0  # fewer than k entries present
    return best_first @ rank_discounts(best_first.shape[-1])


def dcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = NDCG_CUTOFF) -> np.ndarray:
    """DCG@k of each sub-list along the last axis, ranked by score with ties in sub-list order."""
    scores = np.asarray(scores, dtype=np.float64)
    gains = np.where(np.isneginf(scores), 0.0, np.asarray(gains, dtype=np.float64))
    top = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(gains, top, axis=-1) @ rank_discounts(top.shape[-1])


def normalised(dcg: np.ndarray, ideal: np.ndarray) -> np.ndarray:
    """dcg / ideal, 0 where the ideal DCG is 0."""
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal != 0)


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = NDCG_CUTOFF) -> np.ndarray:
    """NDCG@k of each sub-list along the last axis; leading axes (samples, rows, …) are batched.

    Ties in ``scores`` keep the sub-list order (stable argsort of −score); score −inf marks padding.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return normalised(dcg_at_k(scores, gains, k), ideal_dcg(gains, k, present=~np.isneginf(scores)))
