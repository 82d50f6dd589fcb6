"""Did a change of engine or defaults make any system worse? Per-query NDCG@10 before vs after, paired.

"Before" is each ``metrics/<system>.perquery.tsv`` as committed at a git revision (default HEAD), "after" is
the working tree's file (after ``dvc repro``). For every system present in both it prints the mean of
each, the difference, the paired t-test and the paired bootstrap p-value (coaug.evaluation.significance) over the
eval split's queries, and whether the after-system passes the guard: not significantly worse (p > alpha) or
Δ >= -tolerance; a file equal byte for byte to the committed one (not rebuilt, or rebuilt identically) reads
"identical".

    .venv/bin/python benchmarks/quality_guard.py --before HEAD
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from coaug.evaluation.per_query_file import read_per_query
from coaug.evaluation.significance import compare


def main() -> None:
    args = parse_args()
    metrics_dir = Path(args.metrics_dir)
    print(f"{args.metric} before ({args.before}) vs after (working tree); guard: p > {args.alpha} or Δ >= -{args.tolerance}")
    print("| system | before | after | Δ | p (t-test) | p (bootstrap) | queries | guard |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(metrics_dir.glob("*.perquery.tsv")):
        before_text = committed(args.before, path)
        if before_text is None:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            committed_copy = Path(scratch) / path.name
            committed_copy.write_text(before_text, encoding="utf-8")
            before = read_per_query(committed_copy)[args.metric]
        after = read_per_query(path)[args.metric]
        system = path.name.removesuffix(".perquery.tsv")
        result = compare(after, before, args.samples, args.seed, (system, f"{system} at {args.before}"))
        passed = result["p_ttest"] > args.alpha or result["mean_diff"] >= -args.tolerance
        # A file DVC did not rebuild (or rebuilt byte for byte) says so, rather than a vacuous "ok".
        verdict = "identical" if path.read_text(encoding="utf-8") == before_text else "ok" if passed else "WORSE"
        print(
            f"| {system} | {statistics.mean(before.values()):.4f} | {statistics.mean(after.values()):.4f} | {result['mean_diff']:+.4f} "
            f"| {result['p_ttest']:.2g} | {result['p_bootstrap']:.2g} | {result['queries']} | {verdict} |"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD", help="git revision holding the 'before' metrics")
    parser.add_argument("--metrics-dir", default="metrics")
    parser.add_argument("--metric", default="NDCG@10")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tolerance", type=float, default=0.002, help="a drop this small passes even if significant")
    parser.add_argument("--samples", type=int, default=10000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def committed(revision: str, path: Path) -> str | None:
    shown = subprocess.run(["git", "show", f"{revision}:{path.as_posix()}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


if __name__ == "__main__":
    main()
