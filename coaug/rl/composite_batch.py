"""Composite training batches (METHOD §3): per query, its text, positives, hard and random negatives.

Per training query q: 1 query text + ``k_pos`` positives (qrels score > 0, drawn WITH replacement; when q
has none, those slots become extra random negatives) + ``k_hardneg`` hard negatives (score = 0 in the
qrels; missing ones also become random negatives) + ``k_randneg`` random negatives, drawn from documents
that are positive for no query of the split. Every text is generated for independently; only the reward
is joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coaug.data.beir import Qrels
from coaug.errors import CoaugError

QUERY, POSITIVE, NEGATIVE = "query", "positive", "negative"


@dataclass(frozen=True)
class Slot:
    """One text of the batch: ``group`` is the index of its query in the batch, ``relevance`` the qrels
    score of the document for that query (0 for negatives and for the query text itself)."""

    text_id: str
    role: str
    group: int
    relevance: int


def negative_pool(qrels: Qrels, doc_ids: list[str]) -> list[str]:
    """Documents positive for no query of the split, in corpus order."""
    positive = {doc_id for judged in qrels.values() for doc_id, score in judged.items() if score > 0}
    return [doc_id for doc_id in doc_ids if doc_id not in positive]


def sample_composite_batch(
    query_ids: list[str],
    qrels: Qrels,
    negatives: list[str],
    rng: np.random.Generator,
    *,
    k_pos: int = 5,
    k_hardneg: int = 0,
    k_randneg: int = 10,
) -> list[Slot]:
    """The texts of one step for ``query_ids`` (defaults: the paper's 5 / 0 / 10 → 16 texts per query)."""
    if not negatives:
        raise CoaugError("no random negatives: every document is positive for some training query")
    slots: list[Slot] = []
    for group, qid in enumerate(query_ids):
        judged = qrels.get(qid, {})
        positives = sorted(d for d, s in judged.items() if s > 0)
        hard = sorted(d for d, s in judged.items() if s <= 0)
        slots.append(Slot(qid, QUERY, group, 0))
        if positives:
            slots += [Slot(d, POSITIVE, group, judged[d]) for d in rng.choice(positives, size=k_pos, replace=True)]
        take_hard = min(k_hardneg, len(hard))
        if take_hard:
            slots += [Slot(d, NEGATIVE, group, 0) for d in rng.choice(hard, size=take_hard, replace=False)]
        shortfall = (0 if positives else k_pos) + (k_hardneg - take_hard)
        slots += [Slot(d, NEGATIVE, group, 0) for d in rng.choice(negatives, size=k_randneg + shortfall, replace=True)]
    return slots


def training_queries(qrels: Qrels) -> list[str]:
    """Queries with at least one positive judgement, sorted for reproducible epochs."""
    return sorted(q for q, judged in qrels.items() if any(s > 0 for s in judged.values()))


def validation_batches(
    qrels: Qrels,
    doc_ids: list[str],
    rng: np.random.Generator,
    *,
    batches: int,
    queries_per_batch: int,
    k_pos: int,
    k_hardneg: int,
    k_randneg: int,
) -> list[list[Slot]]:
    """``batches`` fixed composite batches of a held-out split, drawn once from ``rng``: distinct queries
    with a positive judgement (fewer batches when the split runs out), texts drawn as in training."""
    queries = training_queries(qrels)
    wanted = min(batches * queries_per_batch, len(queries) - len(queries) % queries_per_batch)
    if wanted < queries_per_batch:
        raise CoaugError(
            f"validation: {len(queries)} queries with a positive judgement, a batch needs {queries_per_batch}"
        )
    chosen = [queries[i] for i in rng.choice(len(queries), size=wanted, replace=False)]
    negatives = negative_pool(qrels, doc_ids)
    return [
        sample_composite_batch(
            chosen[start : start + queries_per_batch],
            qrels,
            negatives,
            rng,
            k_pos=k_pos,
            k_hardneg=k_hardneg,
            k_randneg=k_randneg,
        )
        for start in range(0, wanted, queries_per_batch)
    ]
