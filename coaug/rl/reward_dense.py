"""In-batch dense similarity for the training reward (METHOD §4, dense): cosine of embeddings."""

from __future__ import annotations

import numpy as np


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; an all-zero row stays zero (cosine 0 with everything)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.divide(embeddings, norms, out=np.zeros_like(embeddings), where=norms != 0)


def cosine_matrix(query_embeddings: np.ndarray, doc_embeddings: np.ndarray) -> np.ndarray:
    """(queries, docs) cosine similarity; embeddings are normalised here, whatever the encoder did."""
    return _unit_rows(query_embeddings) @ _unit_rows(doc_embeddings).T
