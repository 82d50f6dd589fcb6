"""The index reward (``train.reward: index``): a rollout's reward is NDCG@10 on the real Lucene index.

The paper's reward ranks a batch's texts against each other with its own BM25 (coaug.rl.reward); within a
query that in-batch reward barely predicts a rollout's effect on the real index. Here every query rollout is
searched on the index of ``train.reward_system`` (its query weighting too), and the batch's documents are
ranked as if their indexed text were ``original + rollout augmentation``, scored with the index's own
collection statistics (coaug.retrieval.lucene_bm25), every other document as the index holds it.

The paper's structure stays around it: the composite batch, joint samples of one rollout per (query, document)
key (reward sampling), λ-reweighting of relevant cells and the role-scaled, centred group advantages
downstream. For query rollout r and joint sample m, v[m, r] is NDCG@10 of r's ranking with the sampled
document rollouts in place; a query rollout's reward is its mean over samples, a document rollout's the
weighted mean Σ_r w_rc·v[m, r] / Σ_r w_rc over the samples that chose it, with w_rc = 1 + λ·gain(r, c) and
gain the real qrels relevance of the document for r's query (METHOD §5 with the index in place of the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coaug.data.beir import Qrels
from coaug.retrieval.combine import augmented_doc, sparse_query
from coaug.retrieval.lucene import flat_contents
from coaug.retrieval.lucene_bm25 import LuceneIndex
from coaug.rl.reward_layout import SamplingLayout
from coaug.rl.reward_ndcg import NDCG_CUTOFF, ideal_dcg, rank_discounts
from coaug.rl.reward_sampling import draw_joint_samples

# Anserini rounds hit scores to 4 decimals and breaks the ties by ascending docid (its ScoreTiesAdjuster);
# the replaced documents are ranked the same way among the hits.
RANKING_DECIMALS = 4
# Largest samples × rows × candidates block held at once; bounds memory, does not change results.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class RankedRows:
    """What the index says of each query rollout, before any document is replaced.

    ``fixed_*``: the row's top NDCG_CUTOFF hits that are no batch document (nor the query itself), padded
    with score −inf; ``batch_*``: the row against each batch document key."""

    fixed_score: np.ndarray  # (rows, NDCG_CUTOFF)
    fixed_gain: np.ndarray  # (rows, NDCG_CUTOFF)
    fixed_order: np.ndarray  # (rows, NDCG_CUTOFF) rank of each hit's docid in docid order, for ties
    key_gain: np.ndarray  # (rows, keys) qrels relevance of each key's document for the row's query
    key_order: np.ndarray  # (keys,) rank of each key's docid in docid order
    ideal: np.ndarray  # (rows,) ideal DCG@10 of the row's query from its qrels


def sample_ndcg(
    column_score: np.ndarray, rows: RankedRows, joint_columns: np.ndarray, k: int = NDCG_CUTOFF
) -> np.ndarray:
    """(samples, rows) NDCG@k of each query rollout when each joint sample's document rollouts (one column per
    key, ``joint_columns`` (samples, keys)) stand in for their documents. ``column_score`` (rows, columns):
    each row's score of each document rollout, rounded as the index ranks."""
    num_samples, num_keys = joint_columns.shape
    num_rows = column_score.shape[0]
    values = np.empty((num_samples, num_rows))
    gains = np.concatenate([rows.fixed_gain, rows.key_gain], axis=1)
    order = np.concatenate([rows.fixed_order, np.broadcast_to(rows.key_order, (num_rows, num_keys))], axis=1)
    discounts = rank_discounts(k)
    block = max(1, _BLOCK_ELEMENTS // (num_rows * gains.shape[1]))
    for start in range(0, num_samples, block):
        chosen = joint_columns[start : start + block]  # (block, keys)
        scores = np.concatenate(
            [
                np.broadcast_to(rows.fixed_score, (len(chosen), *rows.fixed_score.shape)),
                column_score[:, chosen].transpose(1, 0, 2),
            ],
            axis=2,
        )
        # Higher score first; equal scores by ascending docid, as the index breaks its ties.
        ranked = np.lexsort((np.broadcast_to(order, scores.shape), -scores), axis=2)[..., :k]
        top_gain = np.take_along_axis(np.broadcast_to(gains, scores.shape), ranked, axis=2)
        top_gain = np.where(np.isneginf(np.take_along_axis(scores, ranked, axis=2)), 0.0, top_gain)
        dcg = top_gain @ discounts[: ranked.shape[2]]
        values[start : start + len(chosen)] = np.divide(dcg, rows.ideal, out=np.zeros_like(dcg), where=rows.ideal != 0)
    return values


def sample_rewards(
    values: np.ndarray, key_gain: np.ndarray, layout: SamplingLayout, joint_columns: np.ndarray, kpos_reweight: float
) -> tuple[np.ndarray, np.ndarray]:
    """(query rollout rewards, document rollout rewards) from ``values`` (samples, rows) = :func:`sample_ndcg`.

    A query rollout: its mean NDCG over the samples (every sample's list weighs the same). A document rollout:
    Σ_r w·v / Σ_r w over the samples that chose it, w = 1 + λ·key_gain[r, its key]."""
    query_rewards = values.mean(axis=0)
    # Σ_r w_rκ·v_mr at every (sample, key), and Σ_r w_rκ per key.
    weighted = values.sum(axis=1, keepdims=True) + kpos_reweight * values @ key_gain
    weight = layout.num_rows + kpos_reweight * key_gain.sum(axis=0)
    per_choice = weighted / np.where(weight == 0, 1.0, weight)
    keys = np.broadcast_to(np.arange(layout.num_keys), joint_columns.shape)
    total = np.bincount(
        joint_columns.ravel(),
        weights=per_choice[np.arange(len(values))[:, None], keys].ravel(),
        minlength=layout.num_columns,
    )
    times_chosen = np.bincount(joint_columns.ravel(), minlength=layout.num_columns)
    doc_rewards = np.divide(total, times_chosen, out=np.zeros_like(total), where=times_chosen != 0)
    return query_rewards, doc_rewards


class IndexReward:
    """Index rewards of one batch: query rollouts as search strings, document rollouts as document texts.

    ``qrels``: the training split's judgements, the gains; ``query_repeat``: the reward system's weighting of
    the original query; ``indexed_augmentation``: the document augmentation the index holds (empty for an
    index of the original texts), which a document that is not trained keeps."""

    def __init__(
        self,
        index: LuceneIndex,
        qrels: Qrels,
        query_repeat: int,
        indexed_augmentation: dict[str, str],
        doc_ids: list[str],
        threads: int,
    ):
        self.index, self.qrels, self.query_repeat, self.threads = index, qrels, query_repeat, threads
        self.indexed_augmentation = indexed_augmentation
        self.doc_order = {doc_id: rank for rank, doc_id in enumerate(sorted(doc_ids))}

    def query_text(self, query: str, augmentation: str) -> str:
        """The search string of a query rollout, weighted as the reward system weighs it."""
        return sparse_query(query, augmentation, self.query_repeat)

    def doc_text(self, doc_id: str, doc: dict[str, str], augmentation: str | None) -> str:
        """The indexed text of a document rollout; ``None``: the document as the index holds it."""
        if augmentation is None:
            augmentation = self.indexed_augmentation.get(doc_id, "")
        return flat_contents(augmented_doc(doc, augmentation, "bm25_flat"))

    def rank_rows(self, row_qids: list[str], row_texts: list[str], key_docs: list[str]) -> RankedRows:
        """Search every distinct row text once; keep the best hits that are not batch documents."""
        batch_docs = set(key_docs)
        distinct = list(dict.fromkeys(row_texts))
        # Enough hits that NDCG_CUTOFF remain after dropping every batch document and a self-hit.
        found = dict(zip(distinct, self.index.search(distinct, NDCG_CUTOFF + len(batch_docs) + 1, self.threads)))
        shape = (len(row_texts), NDCG_CUTOFF)
        fixed_score, fixed_gain, fixed_order = (
            np.full(shape, -np.inf),
            np.zeros(shape),
            np.zeros(shape, dtype=np.int64),
        )
        for row, (qid, text) in enumerate(zip(row_qids, row_texts)):
            kept = [(d, s) for d, s in found[text] if d not in batch_docs and d != qid][:NDCG_CUTOFF]
            for position, (doc, score) in enumerate(kept):
                fixed_score[row, position] = score
                fixed_gain[row, position] = self.qrels.get(qid, {}).get(doc, 0)
                fixed_order[row, position] = self.doc_order[doc]
        key_gain = np.array(
            [[self.qrels.get(qid, {}).get(doc, 0) for doc in key_docs] for qid in row_qids], dtype=float
        )
        ideal = ideal_dcg(np.array([self._judged_gains(qid) for qid in row_qids]), NDCG_CUTOFF)
        return RankedRows(
            fixed_score, fixed_gain, fixed_order, key_gain, np.array([self.doc_order[d] for d in key_docs]), ideal
        )

    def _judged_gains(self, qid: str) -> list[float]:
        gains = sorted((g for g in self.qrels.get(qid, {}).values() if g > 0), reverse=True)[:NDCG_CUTOFF]
        return gains + [0.0] * (NDCG_CUTOFF - len(gains))

    def rewards(
        self,
        row_qids: list[str],
        row_texts: list[str],
        column_texts: list[str],
        layout: SamplingLayout,
        key_docs: list[str],
        num_samples: int,
        rng: np.random.Generator,
        kpos_reweight: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(query rollout rewards, document rollout rewards); ``key_docs``: the document of each layout key."""
        rows = self.rank_rows(row_qids, row_texts, key_docs)
        column_score = np.round(self.index.scores(row_texts, column_texts).astype(np.float64), RANKING_DECIMALS)
        joint_columns = draw_joint_samples(layout, num_samples, rng)
        values = sample_ndcg(column_score, rows, joint_columns)
        return sample_rewards(values, rows.key_gain, layout, joint_columns, kpos_reweight)
