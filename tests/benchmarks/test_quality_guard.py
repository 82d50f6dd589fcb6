"""benchmarks/quality_guard.py: committed per-query files against the working tree's, one verdict a system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coaug.evaluation.per_query_file import write_per_query

from ..conftest import REPO

GUARD = REPO / "benchmarks" / "quality_guard.py"
BEFORE = {"q1": 0.5, "q2": 0.5, "q3": 0.5, "q4": 0.5}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True
    )


def test_the_guard_marks_a_rebuilt_identical_file_and_significant_drops_before_and_after_holm(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for system in ("same", "dropped", "small_drop", "big_drop"):
        write_per_query(metrics / f"{system}.perquery.tsv", {"NDCG@10": BEFORE})
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "metrics")
    git(tmp_path, "commit", "-q", "-m", "before")
    # Drops of 0.1..0.4: mean -0.25, t = -3.87 on 3 degrees of freedom, p 0.03.
    write_per_query(metrics / "dropped.perquery.tsv", {"NDCG@10": {"q1": 0.4, "q2": 0.3, "q3": 0.2, "q4": 0.1}})
    # Significant too, but within the tolerance (-0.002): it passes.
    write_per_query(
        metrics / "small_drop.perquery.tsv", {"NDCG@10": {"q1": 0.4999, "q2": 0.4998, "q3": 0.4997, "q4": 0.4996}}
    )
    # Drops of 0.29..0.31: t = -73.5, p 5.6e-06, significant after any adjustment over three systems.
    write_per_query(metrics / "big_drop.perquery.tsv", {"NDCG@10": {"q1": 0.2, "q2": 0.19, "q3": 0.21, "q4": 0.2}})
    shown = subprocess.run(
        [sys.executable, str(GUARD), "--samples", "200"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    *table, summary = shown.stdout.splitlines()[3:]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table}
    assert rows["same"] == "| same | 0.5000 | 0.5000 | +0.0000 | 1 | - | 1 | 4 | identical |"
    # Holm over the three rebuilt systems: 5.6e-06 x 3, then 0.0305 x 2 = 0.061 for both p-values of 0.0305.
    assert rows["big_drop"].startswith("| big_drop | 0.5000 | 0.2000 | -0.3000 | 5.6e-06 | 1.7e-05 |")
    assert rows["big_drop"].endswith("| 4 | WORSE |")
    assert rows["dropped"].startswith("| dropped | 0.5000 | 0.2500 | -0.2500 | 0.03 | 0.061 |")
    assert rows["dropped"].endswith("| 4 | WORSE uncorrected; ok after Holm |")
    assert rows["small_drop"].startswith("| small_drop | 0.5000 | 0.4998 | -0.0003 | 0.03 | 0.061 |")
    assert rows["small_drop"].endswith("| 4 | ok |")  # significant, but within the tolerance
    assert summary == "3 of 4 systems rebuilt; worse: 2 uncorrected, 1 after Holm"
