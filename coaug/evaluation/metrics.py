"""IR metrics with trec_eval semantics (ir-measures over pytrec_eval); no metric is hand-written.

Names follow BEIR (``NDCG@10``, ``Recall@100``, ``MAP@100``, ``P@10``). Like ``trec_eval -c``, every
judged query counts: a query the run does not answer scores 0.
"""

from __future__ import annotations

import ir_measures

from coaug.data.beir import Qrels
from coaug.errors import CoaugError
from coaug.retrieval.trec_run import Run

# BEIR metric family -> ir-measures family.
FAMILIES = {"NDCG": "nDCG", "Recall": "R", "MAP": "AP", "P": "P"}

PerQuery = dict[str, dict[str, float]]  # metric -> qid -> value


def to_ir_measure(name: str):
    family, sep, cutoff = name.partition("@")
    if family not in FAMILIES or not sep or not cutoff.isdigit():
        raise CoaugError(f"unknown metric '{name}' (use e.g. {', '.join(f + '@10' for f in FAMILIES)})")
    return ir_measures.parse_measure(f"{FAMILIES[family]}@{cutoff}")


def per_query(qrels: Qrels, run: Run, metric_names: list[str]) -> PerQuery:
    """Per-query values for every judged query (0 where the run has no result)."""
    measures = {to_ir_measure(name): name for name in metric_names}
    run_scores = {qid: {doc_id: score for doc_id, score in ranked} for qid, ranked in run.items() if qid in qrels}
    values: PerQuery = {name: dict.fromkeys(qrels, 0.0) for name in metric_names}
    for result in ir_measures.pytrec_eval.iter_calc(list(measures), qrels, run_scores):
        values[measures[result.measure]][result.query_id] = float(result.value)
    return values


def aggregate(values: PerQuery) -> dict[str, float]:
    return {name: sum(by_query.values()) / len(by_query) for name, by_query in values.items()}
