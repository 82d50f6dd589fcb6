"""How an augmentation joins its original text for each retriever (METHOD §7, §10).

Sparse queries repeat the original ``query_repeat`` times before the augmentation: 1 is the paper,
5 is Query2doc's weighting (the sign of the effect on NFCorpus depends on it), 0 searches the augmentation alone
(a reward that gives nothing to an augmentation that matches nothing). Documents get the
augmentation appended to ``contents`` (flat), in the ``title`` field (multifield, the paper's sparse eval),
or in front of the text (dense).
"""

from __future__ import annotations


def join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def sparse_query(query: str, augmentation: str, query_repeat: int) -> str:
    return join(*([query] * query_repeat), augmentation)


def dense_query(query: str, augmentation: str) -> str:
    return join(query, augmentation)


def augmented_doc(doc: dict[str, str], augmentation: str, retriever: str) -> dict[str, str]:
    """The ``{"title", "text"}`` a retriever indexes for an augmented document."""
    if retriever == "bm25_multifield":
        return {"title": join(doc["title"], augmentation), "text": doc["text"]}
    if retriever == "bm25_flat":
        return {"title": doc["title"], "text": join(doc["text"], augmentation)}
    # dense: the augmentation (an abstract) leads, as the paper's dense prompt says.
    return {"title": join(augmentation, doc["title"]), "text": doc["text"]}


def augmented_query(query: str, augmentation: str, retriever: str, query_repeat: int) -> str:
    if retriever == "dense":
        return dense_query(query, augmentation)
    return sparse_query(query, augmentation, query_repeat)
