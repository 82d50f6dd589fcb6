"""Anserini's BM25 searcher, the Java class that pyserini's ``LuceneSearcher`` wraps, opened directly.

Importing ``pyserini.search.lucene`` also imports pyserini's dense and impact encoders (torch, transformers):
about 5 s of every process that only searches BM25 (each evaluate stage, the training's index reward, `coaug
search`). This class makes the calls ``LuceneSearcher`` makes (``SimpleSearcher.set_bm25``, ``batch_search``,
``batch_search_fields``), so hits and scores are the same (tests/retrieval/test_anserini_searcher.py).
"""

from __future__ import annotations

from pathlib import Path

from coaug import runtime_env

Hit = tuple[str, float]  # (doc_id, BM25 score)


class AnseriniSearcher:
    """BM25 (``k1``, ``b``) over the Lucene index in ``index_dir``."""

    def __init__(self, index_dir: str | Path, k1: float, b: float):
        runtime_env.configure()
        from pyserini.pyclass import JArrayList, JFloat, JHashMap, autoclass

        self._list, self._float, self._map = JArrayList, JFloat, JHashMap
        # Absolute: the JVM resolves a relative path against ITS working directory, the one of the process
        # when the JVM started, not the current one.
        self._searcher = autoclass("io.anserini.search.SimpleSearcher")(str(Path(index_dir).resolve()))
        self._searcher.set_bm25(float(k1), float(b))

    def batch_search(
        self, texts: list[str], labels: list[str], hits: int, threads: int, fields: dict[str, float] | None = None
    ) -> dict[str, list[Hit]]:
        """The top ``hits`` of each text, by its label; ``fields`` (name -> boost) searches those fields."""
        queries, qids = self._list(), self._list()
        for text, label in zip(texts, labels, strict=True):
            queries.add(text)
            qids.add(label)
        if fields:
            boosts = self._map()
            for field, boost in fields.items():
                boosts.put(field, self._float(boost))
            found = self._searcher.batch_search_fields(queries, qids, int(hits), int(threads), boosts)
        else:
            found = self._searcher.batch_search(queries, qids, int(hits), int(threads))
        return {
            entry.getKey(): [(hit.docid, float(hit.score)) for hit in entry.getValue()]
            for entry in found.entrySet().toArray()
        }
