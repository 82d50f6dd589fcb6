"""Latency of ``coaug search`` on the real project: the warm-up once, then each query.

Warm-up is everything ``coaug search`` loads before the first query: the serving manifest, the registry
check, the policy (downloaded from the registry on first use, then cached), the served index and the corpus
titles. A query costs its augmentation (the policy generates up to ``generation.max_new_tokens`` tokens)
plus one retrieval. Queries are the first ``--queries`` of the eval split. Run from the project root once
``dvc repro promote`` serves a champion:

    .venv/bin/python benchmarks/search_latency.py --queries 20 [--dense] [--alias champion]

The first line names the CPU and the flags that decide ``policy.dtype: auto``; then p50/p95 per query for
the whole answer, the augmentation and the retrieval. Since the fast-inference change the query prompt's
template + system prompt is prefilled once at warm-up (coaug.policy.generation.PromptPrefix) and the policy runs
in the resolved dtype (bf16 on CPUs with native bf16).

Earlier (shared 2-core AMD EPYC, AVX2, fp32, load 3-5): 1.7 s mean per query, Lucene 0.03 s of it; spin-
waiting OpenMP threads on a busy machine made it 9 s (OMP_WAIT_POLICY=PASSIVE avoids that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from coaug import params as P
from coaug.params_schema import Dataset
from coaug.data.beir import read_qrels, read_queries
from coaug.policy.precision import describe_machine, machine_dtype
from coaug.registry.search import ServedSearch


def main() -> None:
    args = parse_args()
    params = P.load_params(args.params)
    started = time.perf_counter()
    engine = ServedSearch(params, args.alias or params.search.alias, args.dense)
    warm_up = time.perf_counter() - started
    k = args.k if args.k is not None else params.search.k
    results = [engine.search(query, k) for query in eval_queries(params.dataset, args.queries)]
    print(f"CPU: {describe_machine()} | policy.dtype {params.policy.dtype} -> {machine_dtype(params.policy.dtype)}")
    print(f"system {engine.system} | {len(results)} queries, k {k} | warm-up {warm_up:.2f} s {load()}")
    print(figures("total", [r.seconds for r in results]))
    print(figures("augmentation", [r.augment_seconds for r in results]))
    print(figures("retrieval", [r.seconds - r.augment_seconds for r in results]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--queries", type=int, default=20, help="eval-split queries to time (default 20)")
    parser.add_argument("--alias", help="registry alias (default: search.alias)")
    parser.add_argument("--k", type=int, help="hits per query (default: search.k)")
    parser.add_argument("--dense", action="store_true", help="time the served dense system instead of BM25")
    return parser.parse_args()


def eval_queries(dataset: Dataset, count: int) -> list[str]:
    prepared = Path(dataset.prepared_dir)
    qrels = read_qrels(prepared / "qrels" / f"{dataset.eval_split}.tsv")
    queries = read_queries(prepared / "queries.jsonl")
    return [queries[qid] for qid in qrels if qid in queries][:count]


def figures(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{label:>12}: p50 {statistics.median(seconds):.3f} s, p95 {p95:.3f} s, mean {statistics.mean(seconds):.3f} s, "
        f"max {ordered[-1]:.3f} s"
    )


def load() -> str:
    """The machine is shared: say how busy it was, since figures scale with the cores left to us."""
    return "(load average %.1f)" % os.getloadavg()[0]


if __name__ == "__main__":
    main()
