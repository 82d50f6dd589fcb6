"""Did a change of engine or defaults make any system worse? Per-query NDCG@10 before vs after, paired.

"Before" is each ``metrics/<system>.perquery.tsv`` as committed at a git revision (default HEAD), "after" is
the working tree's file (after ``dvc repro``). For every system present in both it prints the mean of
each, the difference, the paired t-test and the paired bootstrap p-value (coaug.evaluation.significance) over the
queries both share, and whether the after-system passes the guard: not significantly worse (p > alpha) or
Δ >= -tolerance.

    .venv/bin/python benchmarks/quality_guard.py --before HEAD
"""

from __future__ import annotations

import argparse
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
        result = compare(after, before, args.samples, args.seed)
        shared = sorted(set(before) & set(after))
        mean_before = sum(before[q] for q in shared) / len(shared)
        mean_after = sum(after[q] for q in shared) / len(shared)
        passed = result["p_ttest"] > args.alpha or result["mean_diff"] >= -args.tolerance
        print(
            f"| {path.name.removesuffix('.perquery.tsv')} | {mean_before:.4f} | {mean_after:.4f} | {result['mean_diff']:+.4f} "
            f"| {result['p_ttest']:.2g} | {result['p_bootstrap']:.2g} | {result['queries']} | {'ok' if passed else 'WORSE'} |"
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
