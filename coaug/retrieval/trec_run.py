"""TREC run files: ``qid Q0 docid rank score tag``, one ranked list per query."""

from __future__ import annotations

from pathlib import Path

from coaug.atomic_io import atomic_open
from coaug.errors import DataError

Run = dict[str, list[tuple[str, float]]]

# trec_eval breaks score ties by docid, so the run file's precision is part of the result;
# pyserini writes six decimals and its published regressions are scored from those files.
SCORE_DECIMALS = 6


def remove_self_hits(run: Run, hits: int) -> Run:
    """Drop a document whose id equals its query's id (BEIR convention), then cut to ``hits``."""
    return {qid: [(d, s) for d, s in ranked if d != qid][:hits] for qid, ranked in run.items()}


def write_run(path: str | Path, run: Run, tag: str) -> None:
    with atomic_open(path) as handle:
        for qid, ranked in run.items():
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {score:.{SCORE_DECIMALS}f} {tag}\n")


def read_run(path: str | Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if len(parts) != 6:
                raise DataError(str(path), f"expected 6 fields, got {len(parts)}", line_no)
            try:
                score = float(parts[4])
            except ValueError:
                raise DataError(str(path), f"not a number: {parts[4]!r}", line_no, "score") from None
            run.setdefault(parts[0], []).append((parts[2], score))
    return run
