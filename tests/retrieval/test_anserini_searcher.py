"""The Anserini searcher opened directly gives pyserini's LuceneSearcher's hits and scores, flat and multifield."""

from __future__ import annotations

import pytest

from coaug.retrieval import lucene
from coaug.retrieval.anserini_searcher import AnseriniSearcher

DOCS = {
    "D1": {
        "title": "Statins and breast cancer",
        "text": "Statin use was associated with lower breast cancer mortality.",
    },
    "D2": {"title": "Vitamin D", "text": "Vitamin D supplements improve bone density in older adults."},
    "D3": {"title": "Green tea", "text": "Green tea catechins may lower cholesterol and blood pressure."},
    "D4": {"title": "Cancer", "text": "Breast feeding, vitamin intake and cancer risk in cholesterol studies."},
}
QUERIES = ["breast cancer statin", "vitamin cholesterol", "tea", "zorblax", ""]


@pytest.mark.parametrize(("layout", "fields"), [("flat", None), ("multifield", {"contents": 1.0, "title": 2.5})])
def test_hits_and_scores_are_pyserinis(tmp_path, layout, fields):
    from pyserini.search.lucene import LuceneSearcher

    lucene.build_index(DOCS.items(), layout, tmp_path / "index", threads=1)
    labels = [f"q{i}" for i in range(len(QUERIES))]
    reference = LuceneSearcher(str(tmp_path / "index"))
    reference.set_bm25(k1=0.9, b=0.4)
    expected = reference.batch_search(QUERIES, labels, k=3, threads=2, fields=fields or {})

    found = AnseriniSearcher(tmp_path / "index", 0.9, 0.4).batch_search(QUERIES, labels, 3, 2, fields)

    assert found == {label: [(hit.docid, float(hit.score)) for hit in hits] for label, hits in expected.items()}
    assert [len(found.get(label, [])) for label in labels] == [2, 3, 1, 0, 0]
