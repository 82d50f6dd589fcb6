"""Lucene's BM25 reproduced outside Lucene: scores of a real index's hits, and of a document whose text is
replaced, against a real re-index with the same collection statistics."""

from __future__ import annotations

import numpy as np
import pytest

from coaug.retrieval import lucene
from coaug.retrieval.lucene_bm25 import CollectionStats, LuceneIndex, bm25_scores, quantised_length

# Long enough that lengths past SmallFloat's exact range (24) are quantised.
DOCS = {
    "D1": {
        "title": "Statins and breast cancer",
        "text": "Statin use was associated with lower breast cancer mortality. " * 4,
    },
    "D2": {"title": "Vitamin D", "text": "Vitamin D supplements improve bone density in older adults."},
    "D3": {"title": "Green tea", "text": "Green tea catechins may lower cholesterol and blood pressure. " * 9},
    "D4": {"title": "Asthma", "text": "Childhood asthma and air pollution in cities, breast feeding and cancer risk."},
}
QUERIES = ["breast cancer statin", "cholesterol cholesterol tea", "vitamin bone asthma cancer"]
K1, B = 0.9, 0.4
# Anserini rounds hit scores to 4 decimals (ScoreTiesAdjusterReranker); the replica is float32 before that.
HIT_DECIMALS = 4


def test_quantised_length_matches_lucene_smallfloat():
    # Exact below 24; then 4-bit mantissas: values from org.apache.lucene.util.SmallFloat.byte4ToInt(intToByte4(n)).
    assert [quantised_length(n) for n in (0, 1, 23, 24, 25, 31, 32, 40, 41, 100, 1000)] == [
        0,
        1,
        23,
        24,
        25,
        31,
        32,
        40,
        40,
        96,
        984,
    ]


def test_scores_follow_the_formula_by_hand():
    stats = CollectionStats(documents=10, average_length=4.0, document_frequency={"a": 2})
    (score,) = bm25_scores([["a", "a", "z"]], [["a", "b", "c", "d", "a", "e"]], stats, K1, B)[0]
    idf = np.log(1 + (10 - 2 + 0.5) / (2 + 0.5))
    norm = 1 / (K1 * (1 - B + B * 6 / 4.0))
    assert score == pytest.approx(2 * idf * (1 - 1 / (1 + 2 * norm)), rel=1e-6)  # "z" is unseen: weight 0


@pytest.fixture
def index(tmp_path):
    lucene.build_index(DOCS.items(), "flat", tmp_path / "index", threads=1)
    return LuceneIndex(tmp_path / "index", K1, B)


def test_replica_scores_every_hit_as_lucene(index):
    texts = [lucene.flat_contents(doc) for doc in DOCS.values()]
    mine = index.scores(QUERIES, texts)
    for row, hits in enumerate(index.search(QUERIES, hits=len(DOCS), threads=1)):
        assert hits, QUERIES[row]
        for doc_id, score in hits:
            assert round(float(mine[row, list(DOCS).index(doc_id)]), HIT_DECIMALS) == pytest.approx(score, abs=1e-6)


def test_a_replaced_text_scores_as_a_reindex_with_the_same_statistics(index, tmp_path):
    """Re-index with D2's text replaced; scored with the RE-INDEX's statistics, the replica gives the
    re-index's scores: with statistics held fixed, the replaced text is scored exactly as Lucene would."""
    replaced = {**DOCS, "D2": {"title": "Vitamin D", "text": "breast cancer statin trial in older adults " * 3}}
    lucene.build_index(replaced.items(), "flat", tmp_path / "reindex", threads=1)
    reindexed = LuceneIndex(tmp_path / "reindex", K1, B)
    mine = reindexed.scores(QUERIES, [lucene.flat_contents(replaced["D2"])])[:, 0]
    for row, hits in enumerate(reindexed.search(QUERIES, hits=len(DOCS), threads=1)):
        theirs = dict(hits).get("D2", 0.0)
        assert round(float(mine[row]), HIT_DECIMALS) == pytest.approx(theirs, abs=1e-6)
    # The original index holds other statistics: the same text scores otherwise there.
    assert not np.allclose(index.scores(QUERIES, [lucene.flat_contents(replaced["D2"])])[:, 0], mine)
