"""The ``report`` stage: every evaluated system side by side, tested against the baseline."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from coaug import params as P
from coaug.atomic_io import write_json, write_text
from coaug.errors import CoaugError
from coaug.evaluation import read_per_query
from coaug.plots import comparison_bars
from coaug.significance import compare


def output_paths(params: dict[str, Any], system_name: str) -> dict[str, Path]:
    """Where the index/evaluate stages put a system's outputs (dvc.yaml names the same paths)."""
    metrics_dir = Path(P.get(params, "outputs.metrics_dir"))
    return {
        "index": Path(P.get(params, "outputs.indexes_dir")) / system_name,
        "run": Path(P.get(params, "outputs.runs_dir")) / f"{system_name}.trec",
        "metrics": metrics_dir / f"{system_name}.json",
        "per_query": metrics_dir / f"{system_name}.perquery.tsv",
    }


def evaluated(params: dict[str, Any], systems: list[str]) -> tuple[list[str], list[str]]:
    """Split ``systems`` into those with metrics and those not evaluated yet (a partial ``dvc repro``)."""
    done = [s for s in systems if output_paths(params, s)["metrics"].is_file()]
    return done, [s for s in systems if s not in done]


def build_report(params: dict[str, Any], systems: list[str]) -> dict[str, Any]:
    metrics = P.get(params, "evaluation.metrics")
    baseline = P.get(params, "evaluation.baseline")
    key_metric = P.get(params, "evaluation.significance_metric")
    if baseline not in systems:
        systems = [baseline, *systems]
    if not output_paths(params, baseline)["metrics"].is_file():
        raise CoaugError(f"baseline '{baseline}' has no metrics yet: run its evaluate stage first")
    scores = {s: json.loads(output_paths(params, s)["metrics"].read_text()) for s in systems}
    per_query = {s: read_per_query(output_paths(params, s)["per_query"])[key_metric] for s in systems}
    summary: dict[str, Any] = {}
    for name in systems:
        entry = {m: scores[name][m] for m in metrics}
        if name != baseline:
            tests = compare(
                per_query[name], per_query[baseline], P.get(params, "evaluation.bootstrap_samples"),
                P.get(params, "evaluation.seed"),
            )  # fmt: skip
            entry[f"vs_{baseline}"] = {"metric": key_metric, **tests}
        summary[name] = entry
    for name, reference in P.get(params, "evaluation.comparisons").items():
        if name in summary and output_paths(params, reference)["per_query"].is_file():
            reference_scores = read_per_query(output_paths(params, reference)["per_query"])[key_metric]
            tests = compare(
                per_query[name], reference_scores, P.get(params, "evaluation.bootstrap_samples"),
                P.get(params, "evaluation.seed"),
            )  # fmt: skip
            summary[name][f"vs_{reference}"] = {"metric": key_metric, **tests}
    return summary


def markdown_table(summary: dict[str, Any], metrics: list[str], baseline: str, alpha: float) -> str:
    """Systems x metrics, plus the paired tests on the significance metric (``*`` marks p < alpha)."""
    header = ["system", *metrics, f"Δ vs {baseline}", "p (t-test)", "p (bootstrap)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in summary.items():
        cells = [name, *(f"{entry[m]:.4f}" for m in metrics)]
        test = entry.get(f"vs_{baseline}")
        if test:
            mark = "*" if max(test["p_ttest"], test["p_bootstrap"]) < alpha else ""
            cells += [f"{test['mean_diff']:+.4f}{mark}", f"{test['p_ttest']:.2g}", f"{test['p_bootstrap']:.2g}"]
        else:
            cells += ["—", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparisons_table(summary: dict[str, Any], comparisons: dict[str, str], metric: str, alpha: float) -> str:
    """The ``evaluation.comparisons`` pairs that were both evaluated (e.g. trained vs untrained policy)."""
    rows = [(name, reference, summary[name][f"vs_{reference}"]) for name, reference in comparisons.items()
            if name in summary and f"vs_{reference}" in summary[name]]  # fmt: skip
    if not rows:
        return ""
    lines = [f"| system | against | Δ {metric} | p (t-test) | p (bootstrap) |", "|---|---|---|---|---|"]
    for name, reference, test in rows:
        mark = "*" if max(test["p_ttest"], test["p_bootstrap"]) < alpha else ""
        lines.append(f"| {name} | {reference} | {test['mean_diff']:+.4f}{mark} | {test['p_ttest']:.2g} | {test['p_bootstrap']:.2g} |")
    return "\n".join(lines) + "\n"


def write_report(params: dict[str, Any], systems: list[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write summary.json, results.md, comparison.png and headline.csv; return the summary and paths.

    Systems without metrics yet are named in results.md as not evaluated, never silently dropped."""
    systems, missing = evaluated(params, systems)
    summary = build_report(params, systems)
    metrics = P.get(params, "evaluation.metrics")
    baseline = P.get(params, "evaluation.baseline")
    alpha = P.get(params, "evaluation.alpha")
    key_metric = P.get(params, "evaluation.significance_metric")
    reports = Path(P.get(params, "outputs.reports_dir"))
    paths = {
        "summary": reports / "summary.json",
        "table": reports / "results.md",
        "plot": reports / "comparison.png",
        "headline": reports / "headline.csv",
    }
    write_json(paths["summary"], summary)
    split = P.get(params, "dataset.eval_split")
    title = f"{P.get(params, 'dataset.name')} ({split})"
    note = (
        f"{title}. Paired tests on {P.get(params, 'evaluation.significance_metric')} "
        f"against {baseline}; * = both p < {alpha}.\n\n"
    )
    pending = f"\nNot evaluated yet: {', '.join(missing)}.\n" if missing else ""
    pairs = comparisons_table(summary, P.get(params, "evaluation.comparisons"), key_metric, alpha)
    pairs = f"\nPaired tests between systems (evaluation.comparisons):\n\n{pairs}" if pairs else ""
    write_text(paths["table"], note + markdown_table(summary, metrics, baseline, alpha) + pairs + pending)
    comparison_bars({s: {m: e[m] for m in metrics} for s, e in summary.items()}, metrics, title, paths["plot"])
    # The headline metric per system, for `dvc plots show` (a sorted horizontal bar chart).
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["system", key_metric])
    writer.writerows([name, f"{entry[key_metric]:.4f}"] for name, entry in summary.items())
    write_text(paths["headline"], buffer.getvalue())
    return summary, paths
