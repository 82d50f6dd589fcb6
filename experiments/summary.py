"""Summarise the runs of experiments/learning.yaml: one plot of their real-index dev curves and a table.

``python experiments/summary.py`` reads ``experiments/reports/<run>/experiment.{json,dev_curve.csv,curves.csv}``
of every run that finished and writes ``experiments/reports/dev_curves.png`` and ``experiments/reports/table.md``
(the table docs/training.md shows): dev NDCG@10 at step 0 and at the end with the paired p-value, the
training's CPU seconds and the gain per CPU hour, and the mean in-batch-vs-index Spearman of the query and
document rollouts (the proxy check).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORTS = Path(__file__).resolve().parent / "reports"
SECONDS_PER_HOUR = 3600
CORES = 2  # the machines these runs are sized for


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def mean_of(rows: list[dict[str, str]], column: str) -> float:
    values = [float(r[column]) for r in rows if r.get(column) not in (None, "", "nan")]
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    runs = sorted(p for p in REPORTS.iterdir() if (p / "experiment.json").is_file())
    fig, axis = plt.subplots(figsize=(7, 4))
    lines = [
        "| run | steps | dev NDCG@10 step 0 | final | Δ | p (final vs step 0) | core-hours | Δ per core-hour | "
        "proxy ρ queries | proxy ρ documents |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        summary = json.loads((run / "experiment.json").read_text())
        curve = rows_of(run / "experiment.dev_curve.csv")
        history = rows_of(run / "experiment.curves.csv")
        system = next(c for c in curve[0] if c != "step") if curve else None
        if system:
            axis.plot([int(r["step"]) for r in curve], [float(r[system]) for r in curve], marker="o", label=run.name)
            before, after = summary[f"dev_ndcg_step0.{system}"], summary[f"dev_ndcg_final.{system}"]
            p_value = summary[f"dev_p_final_vs_step0.{system}"]
        else:
            before = after = p_value = float("nan")
        # Core-hours: the training steps' wall seconds times the 2 cores the run had (the dev-curve points,
        # a measurement, are not counted).
        hours = CORES * sum(float(r["step_seconds"]) for r in history if r.get("step_seconds")) / SECONDS_PER_HOUR
        cells = [before, after, after - before, p_value, hours, (after - before) / hours if hours else math.nan,
                 mean_of(history, "proxy_spearman_query"), mean_of(history, "proxy_spearman_doc")]  # fmt: skip
        formats = [".4f", ".4f", "+.4f", ".2f", ".2f", "+.4f", "+.2f", "+.2f"]
        shown = ["—" if math.isnan(v) else format(v, f) for v, f in zip(cells, formats)]
        lines.append(f"| `{run.name}` | {summary['steps']} | " + " | ".join(shown) + " |")
    axis.set_title("real-index dev NDCG@10 (BM25 flat, greedy query augmentations)")
    axis.set_xlabel("training step")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(REPORTS / "dev_curves.png", dpi=110)
    (REPORTS / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
