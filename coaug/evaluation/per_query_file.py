"""The per-query score file the evaluate stage writes (``<system>.perquery.tsv``: one row per query, one
column per metric) and the report and promotion read for their paired tests."""

from __future__ import annotations

from pathlib import Path

from coaug.atomic_io import atomic_open
from coaug.evaluation.metrics import PerQuery


def write_per_query(path: str | Path, values: PerQuery) -> None:
    names = list(values)
    qids = sorted(next(iter(values.values())))
    with atomic_open(path) as handle:
        handle.write("\t".join(["query_id", *names]) + "\n")
        for qid in qids:
            handle.write("\t".join([qid, *(f"{values[n][qid]:.6f}" for n in names)]) + "\n")


def read_per_query(path: str | Path) -> PerQuery:
    with open(path, encoding="utf-8") as handle:
        names = handle.readline().rstrip("\n").split("\t")[1:]
        values: PerQuery = {name: {} for name in names}
        for line in handle:
            qid, *cells = line.rstrip("\n").split("\t")
            for name, cell in zip(names, cells):
                values[name][qid] = float(cell)
    return values
