"""Summarise the runs of experiments/learning.yaml: one plot of their real-index dev curves and a table.

``python experiments/summary.py`` reads ``experiments/reports/<run>/experiment.{json,dev_curve.csv,curves.csv}``
of every run that finished and writes ``experiments/reports/dev_curves.png``, ``experiments/reports/table.md``
and the same table into docs/training.md between its ``experiments`` markers: dev NDCG@10 at step 0 and at the
end with the paired p-value (and the change on the run's other curve systems), the training's CPU time and the
gain per core-hour, and the mean in-batch-vs-index Spearman of the query and document rollouts (the proxy
check).
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
TRAINING_DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
BLOCK = ("<!-- experiments:begin -->\n", "<!-- experiments:end -->")
SECONDS_PER_HOUR = 3600
CORES = 2  # the machines these runs are sized for


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def mean_of(rows: list[dict[str, str]], column: str) -> float:
    values = [float(r[column]) for r in rows if r.get(column) not in (None, "", "nan")]
    return sum(values) / len(values) if values else float("nan")


def core_hours(history: list[dict[str, str]]) -> tuple[float, str]:
    """The training steps' CPU time in core-hours (the dev-curve points, a measurement, are not counted), and a
    footnote mark: runs from before ``step_cpu_seconds`` was recorded count their wall time on both cores."""
    if history and history[0].get("step_cpu_seconds") not in (None, "", "nan"):
        return sum(float(r["step_cpu_seconds"]) for r in history) / SECONDS_PER_HOUR, ""
    return CORES * sum(float(r["step_seconds"]) for r in history if r.get("step_seconds")) / SECONDS_PER_HOUR, "*"


def main() -> None:
    runs = sorted(p for p in REPORTS.iterdir() if (p / "experiment.json").is_file())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    lines = [
        "| run | steps | dev NDCG@10 step 0 | final | Δ | p (final vs step 0) | other curves: Δ (p) | core-hours | "
        "Δ per core-hour | proxy ρ queries | proxy ρ documents |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, run in enumerate(runs):
        summary = json.loads((run / "experiment.json").read_text())
        curve = rows_of(run / "experiment.dev_curve.csv")
        history = rows_of(run / "experiment.curves.csv")
        systems = [c for c in curve[0] if c != "step"] if curve else []
        for axis, system in zip(axes, systems):
            steps = [int(r["step"]) for r in curve]
            axis.plot(steps, [float(r[system]) for r in curve], marker="o", label=run.name, color=f"C{number % 10}")
            axis.set_title(f"{system}: real-index dev NDCG@10", fontsize=9)
        delta = {s: summary[f"dev_ndcg_final.{s}"] - summary[f"dev_ndcg_step0.{s}"] for s in systems}
        if systems:
            first = systems[0]
            before, after = summary[f"dev_ndcg_step0.{first}"], summary[f"dev_ndcg_final.{first}"]
            p_value = summary[f"dev_p_final_vs_step0.{first}"]
        else:
            before = after = p_value = float("nan")
        others = "; ".join(f"`{s}` {delta[s]:+.4f} ({summary[f'dev_p_final_vs_step0.{s}']:.2g})" for s in systems[1:])
        hours, mark = core_hours(history)
        cells = [before, after, after - before, p_value]
        formats = [".4f", ".4f", "+.4f", ".2g"]
        shown = ["—" if math.isnan(v) else format(v, f) for v, f in zip(cells, formats)]
        per_hour = (after - before) / hours if hours else math.nan
        proxy = [mean_of(history, "proxy_spearman_query"), mean_of(history, "proxy_spearman_doc")]
        rest = [f"{hours:.2f}{mark}", "—" if math.isnan(per_hour) else f"{per_hour:+.4f}"]
        rest += ["—" if math.isnan(v) else f"{v:+.2f}" for v in proxy]
        lines.append(f"| `{run.name}` | {summary['steps']} | " + " | ".join([*shown, others or "—", *rest]) + " |")
    lines.append("")
    lines.append("\\* wall seconds × 2 cores (a run from before CPU seconds were recorded).")
    for axis in axes:
        axis.set_xlabel("training step")
        if axis.lines:
            axis.legend(fontsize=7)
    fig.suptitle("real-index dev NDCG@10 (BM25 flat, greedy query augmentations, NFCorpus dev)", fontsize=10)
    fig.tight_layout()
    fig.savefig(REPORTS / "dev_curves.png", dpi=110)
    table = "\n".join(lines) + "\n"
    (REPORTS / "table.md").write_text(table, encoding="utf-8")
    doc = TRAINING_DOC.read_text(encoding="utf-8")
    start, end = doc.index(BLOCK[0]) + len(BLOCK[0]), doc.index(BLOCK[1])
    TRAINING_DOC.write_text(doc[:start] + table + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
