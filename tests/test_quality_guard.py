"""benchmarks/quality_guard.py: committed per-query files against the working tree's, one verdict a system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coaug.evaluation.per_query_file import write_per_query

GUARD = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_guard.py"
BEFORE = {"q1": 0.5, "q2": 0.5, "q3": 0.5, "q4": 0.5}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True)


def test_the_guard_marks_a_rebuilt_identical_file_and_a_significant_drop(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for system in ("same", "dropped", "small_drop"):
        write_per_query(metrics / f"{system}.perquery.tsv", {"NDCG@10": BEFORE})
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "metrics")
    git(tmp_path, "commit", "-q", "-m", "before")
    # Drops of 0.1..0.4: mean -0.25, t = -3.87 on 3 degrees of freedom, p 0.03.
    write_per_query(metrics / "dropped.perquery.tsv", {"NDCG@10": {"q1": 0.4, "q2": 0.3, "q3": 0.2, "q4": 0.1}})
    # Significant too, but within the tolerance (-0.002): it passes.
    write_per_query(metrics / "small_drop.perquery.tsv", {"NDCG@10": {"q1": 0.4999, "q2": 0.4998, "q3": 0.4997, "q4": 0.4996}})
    shown = subprocess.run([sys.executable, str(GUARD), "--samples", "200"], cwd=tmp_path, capture_output=True, text=True, check=True)
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in shown.stdout.splitlines()[3:]}
    assert rows["same"] == "| same | 0.5000 | 0.5000 | +0.0000 | 1 | 1 | 4 | identical |"
    assert rows["dropped"].startswith("| dropped | 0.5000 | 0.2500 | -0.2500 | 0.03 |")
    assert rows["dropped"].endswith("| 4 | WORSE |")
    assert rows["small_drop"].startswith("| small_drop | 0.5000 | 0.4998 | -0.0003 |")
    assert rows["small_drop"].endswith("| 4 | ok |")
