"""Did a change of engine or defaults make any system worse? Per-query NDCG@10 before vs after, paired.

"Before" is each ``metrics/<system>.perquery.tsv`` as committed at a git revision (default HEAD), "after" is
the working tree's file (after ``dvc repro``). For every system present in both it prints the mean of
each, the difference, the paired t-test and the paired bootstrap p-value (coaug.evaluation.significance) over the
eval split's queries, and whether the after-system passes the guard: not significantly worse (p > alpha) or
Δ >= -tolerance; a file equal byte for byte to the committed one (not rebuilt, or rebuilt identically) reads
"identical".

A rebuild tests every rebuilt system at once, and at alpha 0.05 one in twenty unchanged systems reads "worse"
by chance; so the t-test p-values of the rebuilt systems are also Holm–Bonferroni adjusted over them
(identical files test nothing and are left out), and a system worse at its own p but not after the adjustment
says so. The last line counts both.

    .venv/bin/python benchmarks/quality_guard.py --before HEAD
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from coaug.evaluation.per_query_file import read_per_query
from coaug.evaluation.significance import compare, holm_adjust


class Row(NamedTuple):
    system: str
    before: float  # mean of the metric
    after: float
    result: dict[str, float]  # coaug.evaluation.significance.compare
    identical: bool  # the per-query file equals the committed one byte for byte


def main() -> None:
    args = parse_args()
    metrics_dir = Path(args.metrics_dir)
    print(
        f"{args.metric} before ({args.before}) vs after (working tree); guard: p > {args.alpha} or Δ >= -{args.tolerance}"
    )
    print("| system | before | after | Δ | p (t-test) | p (Holm) | p (bootstrap) | queries | guard |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
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
        # A file DVC did not rebuild (or rebuilt byte for byte) says so, rather than a vacuous "ok".
        identical = path.read_text(encoding="utf-8") == before_text
        rows.append(Row(system, statistics.mean(before.values()), statistics.mean(after.values()), result, identical))
    rebuilt = [row for row in rows if not row.identical]
    holm = dict(zip((row.system for row in rebuilt), holm_adjust([row.result["p_ttest"] for row in rebuilt])))
    worse = {"uncorrected": 0, "after Holm": 0}
    for row in rows:
        result = row.result
        worse_raw = not row.identical and result["mean_diff"] < -args.tolerance and result["p_ttest"] <= args.alpha
        worse_holm = worse_raw and holm[row.system] <= args.alpha
        worse["uncorrected"] += worse_raw
        worse["after Holm"] += worse_holm
        verdict = (
            "identical"
            if row.identical
            else "WORSE"
            if worse_holm
            else "WORSE uncorrected; ok after Holm"
            if worse_raw
            else "ok"
        )
        print(
            f"| {row.system} | {row.before:.4f} | {row.after:.4f} | {result['mean_diff']:+.4f} | {result['p_ttest']:.2g} "
            f"| {'-' if row.identical else f'{holm[row.system]:.2g}'} | {result['p_bootstrap']:.2g} | {result['queries']} | {verdict} |"
        )
    print(
        f"{len(rebuilt)} of {len(rows)} systems rebuilt; worse: {worse['uncorrected']} uncorrected, {worse['after Holm']} after Holm"
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
