"""How well one reward ranks a text's rollouts the way another does: the proxy check of the in-batch reward.

Centred group advantages use only differences between the rollouts of one text, so what matters of a reward
is its order WITHIN each group. The agreement of two rewards is the mean, over groups whose rollouts both
rewards tell apart, of their Spearman rank correlation.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def mean_group_spearman(first: np.ndarray, second: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """(mean Spearman ρ over groups, groups counted); NaN and 0 when no group has two distinct rewards on
    both sides (a constant side has no order)."""
    correlations = []
    for group in np.unique(groups):
        where = groups == group
        a, b = first[where], second[where]
        if len(a) >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
            correlations.append(float(spearmanr(a, b).statistic))
    return (float(np.mean(correlations)) if correlations else float("nan")), len(correlations)
