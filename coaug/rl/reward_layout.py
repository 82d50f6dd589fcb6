"""Who is who in a reward batch: query groups, keys and gains (METHOD §3, §5).

Rows are query rollouts, columns document rollouts. A *group* is one training query with its texts; a
*key* is one (query group, document) pair and owns that document's rollouts. A positive drawn twice for
the same query is ONE key with 2n rollouts, as in the reference (its columns are grouped by ``(qid, cid)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coaug.errors import CoaugError


@dataclass(frozen=True)
class SamplingLayout:
    """Index arrays the reward sampler needs; build it with ``sampling_layout``.

    Keys are numbered in the reference's sub-list order: groups by first appearance among the columns,
    then keys by first appearance within their group. That order breaks score ties in NDCG.
    """

    row_group: np.ndarray  # (rows,) group of each query rollout, numbered 0..groups-1
    column_group: np.ndarray  # (columns,) group of each document rollout
    column_key: np.ndarray  # (columns,) key of each document rollout
    column_relevance: np.ndarray  # (columns,) relevance of each document rollout for its own query
    columns_by_key: np.ndarray  # (columns,) column indices grouped by key, keys in order
    key_start: np.ndarray  # (keys,) where each key's columns start in columns_by_key
    key_size: np.ndarray  # (keys,) rollouts of each key
    key_group: np.ndarray  # (keys,) group of each key
    group_keys: np.ndarray  # (groups, most keys in a group) keys of each group in order, -1 padded
    gain: np.ndarray  # (rows, columns) relevance of doc(c) for query(r) if same group, else 0
    key_gain: np.ndarray  # (rows, keys) the same per key

    @property
    def num_rows(self) -> int:
        return len(self.row_group)

    @property
    def num_columns(self) -> int:
        return len(self.column_key)

    @property
    def num_keys(self) -> int:
        return len(self.key_size)

    @property
    def num_groups(self) -> int:
        return len(self.group_keys)


def _first_index(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Smallest position of each label (``len(labels)`` for a label that never occurs)."""
    first = np.full(num_labels, len(labels))
    np.minimum.at(first, labels, np.arange(len(labels)))
    return first


def sampling_layout(
    row_group: np.ndarray,
    column_group: np.ndarray,
    column_doc: np.ndarray,
    column_relevance: np.ndarray,
) -> SamplingLayout:
    """Layout of one batch from per-rollout labels.

    ``row_group`` / ``column_group``: any integer labels of the training query each rollout belongs to;
    ``column_doc``: any integer label of the document; ``column_relevance``: qrels score of the document
    for its own query (0 for negatives). Rollouts of one key must share their relevance.
    """
    row_group = np.asarray(row_group)
    column_group = np.asarray(column_group)
    column_doc = np.asarray(column_doc)
    relevance = np.asarray(column_relevance, dtype=np.float64)
    num_columns = len(column_group)
    if len(row_group) == 0 or num_columns == 0:
        raise CoaugError("reward batch: needs at least one query rollout and one document rollout")
    if not len(column_doc) == len(relevance) == num_columns:
        raise CoaugError("reward batch: column_group, column_doc and column_relevance differ in length")

    group_labels, group_ids = np.unique(np.concatenate([column_group, row_group]), return_inverse=True)
    column_group_ids, row_group_ids = group_ids[:num_columns], group_ids[num_columns:]
    doc_ids = np.unique(column_doc, return_inverse=True)[1]
    _, raw_first, raw_key = np.unique(
        np.stack([column_group_ids, doc_ids], axis=1), axis=0, return_index=True, return_inverse=True
    )
    raw_key = raw_key.ravel()
    raw_key_group = column_group_ids[raw_first]
    group_first = _first_index(column_group_ids, len(group_labels))
    key_order = np.lexsort((raw_first, group_first[raw_key_group]))
    key_rank = np.empty_like(key_order)
    key_rank[key_order] = np.arange(len(key_order))
    column_key = key_rank[raw_key]
    key_group = raw_key_group[key_order]

    columns_by_key = np.argsort(column_key, kind="stable")
    key_size = np.bincount(column_key)
    key_start = np.concatenate([[0], np.cumsum(key_size)[:-1]])
    relevance_by_key = relevance[columns_by_key]
    key_relevance = np.maximum.reduceat(relevance_by_key, key_start)
    if np.any(np.minimum.reduceat(relevance_by_key, key_start) != key_relevance):
        raise CoaugError("reward batch: rollouts of one (query, document) pair differ in relevance")

    # Keys are sorted by their group's first appearance, so each group's keys are contiguous.
    group_key_count = np.bincount(key_group, minlength=len(group_labels))
    group_key_first = _first_index(key_group, len(group_labels))
    slots = np.arange(group_key_count.max())
    group_keys = np.where(slots < group_key_count[:, None], group_key_first[:, None] + slots, -1)

    same_group = row_group_ids[:, None] == column_group_ids[None, :]
    return SamplingLayout(
        row_group=row_group_ids,
        column_group=column_group_ids,
        column_key=column_key,
        column_relevance=relevance,
        columns_by_key=columns_by_key,
        key_start=key_start,
        key_size=key_size,
        key_group=key_group,
        group_keys=group_keys,
        gain=np.where(same_group, relevance[None, :], 0.0),
        key_gain=np.where(row_group_ids[:, None] == key_group[None, :], key_relevance[None, :], 0.0),
    )
