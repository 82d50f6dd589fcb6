"""Per-rollout rewards of one training batch (METHOD §4–§5): a similarity matrix in, one reward per rollout out.

The pieces live apart, one idea each: ``reward_bm25`` / ``reward_dense`` (in-batch similarity),
``reward_layout`` (groups, keys, gains), ``reward_ndcg`` (NDCG@k) and ``reward_sampling`` (the
estimator). This module names the public API and runs one estimate end to end.
"""

from __future__ import annotations

import numpy as np

from coaug.errors import CoaugError
from coaug.rl.reward_bm25 import BM25_B, BM25_K1, bm25_matrix, corpus_idf, tokenize
from coaug.rl.reward_dense import cosine_matrix
from coaug.rl.reward_layout import SamplingLayout, sampling_layout
from coaug.rl.reward_ndcg import NDCG_CUTOFF, ndcg_at_k
from coaug.rl.reward_sampling import (
    KPOS_REWEIGHT,
    SAMPLES_PER_ROLLOUT,
    draw_joint_samples,
    draw_single_query_samples,
    joint_sample_count,
    joint_sample_rewards,
    single_query_sample_count,
    single_query_sample_rewards,
)

__all__ = [
    "BM25_B",
    "BM25_K1",
    "KPOS_REWEIGHT",
    "NDCG_CUTOFF",
    "SAMPLES_PER_ROLLOUT",
    "SAMPLING_MODES",
    "SamplingLayout",
    "bm25_matrix",
    "corpus_idf",
    "cosine_matrix",
    "ndcg_at_k",
    "sampled_rewards",
    "sampling_layout",
    "tokenize",
]

# "batch_sampling" is the reference default (METHOD §5); "sampling" is the alternative.
SAMPLING_MODES = ("batch_sampling", "sampling")


def sampled_rewards(
    similarity: np.ndarray,
    layout: SamplingLayout,
    rng: np.random.Generator,
    *,
    mode: str = SAMPLING_MODES[0],
    num_rollouts: int | None = None,
    k: int = NDCG_CUTOFF,
    kpos_reweight: float = KPOS_REWEIGHT,
    samples_per_rollout: int = SAMPLES_PER_ROLLOUT,
) -> tuple[np.ndarray, np.ndarray]:
    """(query rollout rewards (rows,), document rollout rewards (columns,)) for one batch (METHOD §5).

    ``similarity``: (rows, columns) retrieval scores of query rollouts against document rollouts.
    ``num_rollouts``: |batch|, the rollout texts of the step; defaults to rows + columns, i.e. every text
    of the batch is a query or a document rollout. ``kpos_reweight`` only acts in ``batch_sampling``, as in
    the reference.
    """
    if mode not in SAMPLING_MODES:
        raise CoaugError(f"reward: unknown sampling mode '{mode}' (use one of {', '.join(SAMPLING_MODES)})")
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.shape != (layout.num_rows, layout.num_columns):
        raise CoaugError(
            f"reward: similarity is {similarity.shape}, layout needs ({layout.num_rows}, {layout.num_columns})"
        )
    if not np.all(np.isfinite(similarity)):
        raise CoaugError("reward: similarity has NaN or infinite scores")
    if num_rollouts is None:
        num_rollouts = layout.num_rows + layout.num_columns

    if mode == "batch_sampling":
        num_samples = joint_sample_count(num_rollouts, layout.num_rows, samples_per_rollout=samples_per_rollout)
        joint_columns = draw_joint_samples(layout, num_samples, rng)
        return joint_sample_rewards(similarity, layout, joint_columns, k=k, kpos_reweight=kpos_reweight)
    num_samples = single_query_sample_count(num_rollouts, samples_per_rollout=samples_per_rollout)
    rows, columns = draw_single_query_samples(layout, num_samples, rng)
    return single_query_sample_rewards(similarity, layout, rows, columns, k=k)
