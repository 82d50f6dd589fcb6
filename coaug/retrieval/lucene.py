"""Lucene BM25 through pyserini: build ``flat`` or ``multifield`` indexes and search them.

flat       - one ``contents`` field holding ``title + " " + text`` (pyserini's BEIR "flat" condition);
multifield - ``title`` and ``contents`` (text) as separate fields, searched with per-field weights.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from coaug import runtime_env
from coaug.atomic_io import atomic_directory
from coaug.errors import CoaugError
from coaug.retrieval.anserini_searcher import AnseriniSearcher
from coaug.retrieval.trec_run import Run

logger = logging.getLogger(__name__)

LAYOUTS = ("flat", "multifield")


def flat_contents(doc: dict[str, str]) -> str:
    return f"{doc['title']} {doc['text']}"


def build_index(docs: Iterable[tuple[str, dict[str, str]]], layout: str, index_dir: str | Path, threads: int) -> None:
    """Index ``(doc_id, {"title", "text"})`` pairs into ``index_dir`` (replaced atomically)."""
    if layout not in LAYOUTS:
        raise CoaugError(f"unknown Lucene layout '{layout}' (choose from {', '.join(LAYOUTS)})")
    runtime_env.configure()
    with tempfile.TemporaryDirectory(prefix="coaug-collection-") as collection, atomic_directory(index_dir) as staging:
        count = _write_collection(docs, layout, Path(collection) / "corpus.jsonl")
        if layout == "flat":
            collection_args = ["-collection", "JsonCollection"]
        else:
            collection_args = ["-collection", "BeirMultifieldCollection", "-fields", "title"]
        command = [
            sys.executable, "-m", "pyserini.index.lucene", *collection_args,
            "-input", collection, "-index", str(staging),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
            "-storePositions", "-storeDocvectors", "-storeRaw",
        ]  # fmt: skip
        logger.info("indexing %d docs (%s) into %s", count, layout, index_dir)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise CoaugError(f"pyserini indexing failed ({result.returncode}): {' | '.join(tail)}")


def _write_collection(docs: Iterable[tuple[str, dict[str, str]]], layout: str, path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for doc_id, doc in docs:
            if layout == "flat":
                record = {"id": doc_id, "contents": flat_contents(doc)}
            else:
                record = {"_id": doc_id, "title": doc["title"], "text": doc["text"]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


class Bm25Searcher:
    """BM25 over a Lucene index; ``fields`` (name -> weight) turns on multifield search."""

    def __init__(self, index_dir: str | Path, k1: float, b: float, fields: dict[str, float] | None = None):
        if not any(Path(index_dir).glob("segments_*")):
            raise CoaugError(f"{index_dir}: not a Lucene index (run `coaug index` first)")
        self._searcher = AnseriniSearcher(index_dir, k1, b)
        self._fields = dict(fields or {})

    def search(self, queries: dict[str, str], hits: int, threads: int, batch_size: int) -> Run:
        """Top ``hits`` per query, in batches so the progress bar moves."""
        qids = list(queries)
        run: Run = {}
        with tqdm(total=len(qids), desc="bm25 search", unit="q") as bar:
            for start in range(0, len(qids), batch_size):
                batch = qids[start : start + batch_size]
                results = self._searcher.batch_search([queries[q] for q in batch], batch, hits, threads, self._fields)
                for qid in batch:
                    run[qid] = results.get(qid, [])
                bar.update(len(batch))
        return run
