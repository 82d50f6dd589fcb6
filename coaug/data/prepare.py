"""The ``prepare`` stage: validate a BEIR collection and write a normalised copy plus statistics."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from coaug.atomic_io import atomic_directory, atomic_open, write_json
from coaug.data.beir import BeirDataset, load_dataset
from coaug.data.fetch import resolve_source

logger = logging.getLogger(__name__)

LENGTH_PERCENTILES = (50, 90, 99, 100)
DOWNLOADS = ".downloads"  # beside the prepared folder: the BEIR zips of URL sources, and their extraction


def prepare(source: str, sha256: str | None, splits: list[str], max_unknown_qrels: int, out_dir: str | Path) -> dict:
    """Validate ``source`` and write ``out_dir/{corpus.jsonl,queries.jsonl,qrels/*.tsv,stats.json}``."""
    out_dir = Path(out_dir)
    folder = resolve_source(source, sha256, out_dir.parent / DOWNLOADS)
    dataset = load_dataset(folder, splits, max_unknown_qrels)
    with atomic_directory(out_dir) as staging:
        write_normalised(dataset, staging)
        stats = dataset_stats(dataset)
        stats["checksum"] = folder_checksum(staging)
        stats["source"] = source
        write_json(staging / "stats.json", stats)
    logger.info("prepared %d docs, %d queries into %s", stats["docs"], stats["queries"], out_dir)
    return stats


def write_normalised(dataset: BeirDataset, folder: Path) -> None:
    with atomic_open(folder / "corpus.jsonl") as handle:
        for doc_id, doc in dataset.corpus.items():
            handle.write(
                json.dumps({"_id": doc_id, "title": doc["title"], "text": doc["text"]}, ensure_ascii=False) + "\n"
            )
    with atomic_open(folder / "queries.jsonl") as handle:
        for qid, text in dataset.queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    for split, qrels in dataset.qrels.items():
        with atomic_open(folder / "qrels" / f"{split}.tsv") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for qid, judged in qrels.items():
                for doc_id, score in judged.items():
                    handle.write(f"{qid}\t{doc_id}\t{score}\n")


def length_percentiles(lengths: list[int]) -> dict[str, float]:
    """Whitespace-token length percentiles, keyed ``p50``..``p100``."""
    values = np.percentile(np.asarray(lengths, dtype=float), LENGTH_PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(LENGTH_PERCENTILES, values)}


def dataset_stats(dataset: BeirDataset) -> dict:
    doc_lengths = [len(f"{d['title']} {d['text']}".split()) for d in dataset.corpus.values()]
    query_lengths = [len(text.split()) for text in dataset.queries.values()]
    splits = {}
    for split, qrels in dataset.qrels.items():
        scores = [score for judged in qrels.values() for score in judged.values()]
        splits[split] = {
            "queries": len(qrels),
            "judgements": len(scores),
            "relevant": sum(score > 0 for score in scores),
            "judged_docs": len({doc_id for judged in qrels.values() for doc_id in judged}),
            "score_counts": {str(s): scores.count(s) for s in sorted(set(scores))},
            "dropped_unknown": dataset.dropped_qrels.get(split, 0),
        }
    return {
        "docs": len(dataset.corpus),
        "queries": len(dataset.queries),
        "splits": splits,
        "doc_length_words": length_percentiles(doc_lengths),
        "query_length_words": length_percentiles(query_lengths),
    }


def folder_checksum(folder: Path) -> str:
    """sha256 over the sorted relative paths and contents of every file in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
