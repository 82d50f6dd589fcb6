"""The ``evaluate`` stage: retrieve for the evaluation split, write the run, score it per query."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from coaug import params as P
from coaug.atomic_io import write_json
from coaug.data.beir import read_qrels
from coaug.evaluation.metrics import aggregate, per_query
from coaug.evaluation.per_query_file import write_per_query
from coaug.params import SystemRecipe
from coaug.params_schema import Bm25, Dataset, Dense, Evaluation, Retrieval
from coaug.retrieval.retrievers import retrieve, system_queries
from coaug.retrieval.trec_run import read_run, write_run
from coaug.tracking import dataset_checksum

logger = logging.getLogger(__name__)


def evaluate_system(
    system_name: str,
    system: SystemRecipe,
    index_dir: str | Path,
    run_path: str | Path,
    metrics_path: str | Path,
    per_query_path: str | Path,
    dataset: Dataset,
    evaluation: Evaluation,
    retrieval: Retrieval,
    bm25: Bm25,
    dense_params: Dense,
) -> dict[str, Any]:
    split = dataset.eval_split
    qrels = read_qrels(P.eval_qrels_path(dataset))
    queries = system_queries(system, list(qrels))
    run = retrieve(system, index_dir, queries, retrieval, bm25, dense_params)
    write_run(run_path, run, tag=system_name)
    # Score the file as written: its rounded scores decide trec_eval's tie order.
    values = per_query(qrels, read_run(run_path), evaluation.metrics)
    write_per_query(per_query_path, values)
    # The identity the report checks, so that it never mixes metrics of two datasets or splits.
    identity = {"system": system_name, "split": split, "dataset_checksum": dataset_checksum(dataset)}
    summary = {**identity, "queries": len(queries), **aggregate(values)}
    write_json(metrics_path, summary)
    logger.info("%s: %s", system_name, {k: round(v, 4) for k, v in aggregate(values).items()})
    return summary
