"""Latency of ``coaug search`` on the real project: the warm-up once, then each query.

Warm-up is everything ``coaug search`` loads before the first query: the serving manifest, the registry
check, the policy (downloaded from the registry on first use, then cached), the served index and the corpus
titles. A query costs its augmentation (the policy generates up to ``generation.max_new_tokens`` tokens)
plus one retrieval. Queries are the first ``--queries`` of the eval split. Run from the project root once
``dvc repro promote`` serves a champion:

    .venv/bin/python benchmarks/search_latency.py --queries 20 [--dense] [--alias champion]

Measured on the shared 2-core AMD EPYC at nice 19 while an RL training run kept the load average at 3-5
(figures scale with the cores left over), served policy SmolLM2-135M fp32 (the untrained policy registered
and promoted with min_delta 0, max_p_value 1 into a scratch project: no trained champion exists yet),
NFCorpus, 24 new tokens, greedy, the first 20 test queries, k 10:
- BM25 (coaug_untrained_flat): warm-up 14-17 s (imports, MLflow store, policy from the download cache, JVM,
  titles); per query mean 1.73 s, median 1.69 s, p90 2.12 s with OMP_WAIT_POLICY=PASSIVE, of which Lucene
  search 0.03 s (median 0.016 s) and the rest generating the augmentation. OMP_NUM_THREADS=1: 1.91 s mean.
  With torch's default spin-waiting OpenMP threads on the busy machine: 9.05 s mean (see
  benchmarks/augment_throughput.py), so set OMP_WAIT_POLICY=PASSIVE (or one thread) on a shared machine.
- dense (coaug_untrained_dense), PASSIVE: warm-up 10.8 s; per query mean 1.56 s, retrieval 0.006 s with the
  query embeddings already cached, 0.41 s mean when they are encoded (first run, default OpenMP).
Retrieval is tens of milliseconds; the policy's 24 decoding steps (~70 ms each on the loaded machine) are
the per-query cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from coaug import params as P
from coaug.beir import read_qrels, read_queries
from coaug.search import ServedSearch


def main() -> None:
    args = parse_args()
    params = P.load_params(args.params)
    started = time.perf_counter()
    engine = ServedSearch(params, args.alias or P.get(params, "search.alias"), args.dense)
    warm_up = time.perf_counter() - started
    k = args.k if args.k is not None else P.get(params, "search.k")
    results = [engine.search(query, k) for query in eval_queries(params, args.queries)]
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


def eval_queries(params: dict, count: int) -> list[str]:
    prepared = Path(P.get(params, "dataset.prepared_dir"))
    qrels = read_qrels(prepared / "qrels" / f"{P.get(params, 'dataset.eval_split')}.tsv")
    queries = read_queries(prepared / "queries.jsonl")
    return [queries[qid] for qid in qrels if qid in queries][:count]


def figures(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"{label:>12}: mean {statistics.mean(seconds):.3f} s, median {statistics.median(seconds):.3f} s, "
        f"p90 {p90:.3f} s, max {ordered[-1]:.3f} s"
    )


def load() -> str:
    """The machine is shared: say how busy it was, since figures scale with the cores left to us."""
    return "(load average %.1f)" % os.getloadavg()[0]


if __name__ == "__main__":
    main()
