"""The ``report`` stage: every evaluated system side by side, tested against the baseline; the markdown is
rendered by coaug.evaluation.rendering."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from coaug.atomic_io import write_json, write_text
from coaug.errors import CoaugError
from coaug.evaluation.freshness import evaluate_stage, outdated_reason
from coaug.evaluation.outputs import output_paths
from coaug.evaluation.per_query_file import read_per_query
from coaug.evaluation.plots import comparison_bars
from coaug.evaluation.rendering import (
    LEFT_OUT,
    NOT_RUN,
    STALE,
    comparisons_table,
    make_command,
    markdown_table,
    policy_block,
    readme_block,
    relative_link,
    results_page,
    with_block,
)
from coaug.evaluation.significance import compare, holm_adjust
from coaug.params_schema import AugmentedSystem, Dataset, Evaluation, Outputs, System
from coaug.tracking import dataset_checksum

logger = logging.getLogger(__name__)


def evaluated(outputs: Outputs, systems: list[str]) -> tuple[list[str], list[str]]:
    """Split ``systems`` into those with metrics and those not evaluated yet (a partial ``dvc repro``)."""
    done = [s for s in systems if output_paths(outputs, s)["metrics"].is_file()]
    return done, [s for s in systems if s not in done]


def stale_reason(outputs: Outputs, dataset: Dataset, system: str) -> str | None:
    """Why ``system``'s metrics file does not belong to the prepared dataset and ``dataset.eval_split``, or None.

    A file without a dataset checksum (written before evaluate recorded one) counts as not belonging: nothing
    shows it is of this dataset, and the metrics committed for one dataset are exactly what a report of
    another would pick up.
    """
    path = output_paths(outputs, system)["metrics"]
    written = json.loads(path.read_text())
    checksum, split = dataset_checksum(dataset), dataset.eval_split
    if "dataset_checksum" not in written:
        problem = "is unlabelled (no dataset checksum)"
    elif written["dataset_checksum"] != checksum:
        problem = f"is from dataset {written['dataset_checksum'][:12]}, not the prepared {checksum[:12]}"
    elif written.get("split") != split:
        problem = f"is from split '{written.get('split')}', not dataset.eval_split '{split}'"
    else:
        return None
    return f"{path} {problem} — rerun `coaug evaluate --system {system}`"


def require_baseline(evaluation: Evaluation, outputs: Outputs, dataset: Dataset) -> None:
    """Every test is against the baseline: without its metrics of this dataset there is no report."""
    baseline = evaluation.baseline
    if not output_paths(outputs, baseline)["metrics"].is_file():
        raise CoaugError(f"baseline '{baseline}' has no metrics yet: run its evaluate stage first")
    reason = stale_reason(outputs, dataset, baseline)
    if reason:
        raise CoaugError(f"baseline '{baseline}' cannot be reported: {reason}")


def build_report(systems: list[str], evaluation: Evaluation, outputs: Outputs, dataset: Dataset) -> dict[str, Any]:
    """Metrics per system, a paired test of each against the baseline and of each evaluated
    ``evaluation.comparisons`` pair, all Holm-adjusted together (:func:`adjust_for_multiplicity`).

    Every system's metrics must belong to the prepared dataset and eval split (:func:`stale_reason`)."""
    metrics = evaluation.metrics
    baseline = evaluation.baseline
    key_metric = evaluation.significance_metric
    if baseline not in systems:
        systems = [baseline, *systems]
    require_baseline(evaluation, outputs, dataset)
    for name in systems:
        reason = stale_reason(outputs, dataset, name)
        if reason:
            raise CoaugError(f"'{name}' cannot be reported: {reason}")
    scores = {s: json.loads(output_paths(outputs, s)["metrics"].read_text()) for s in systems}
    per_query = {s: read_per_query(output_paths(outputs, s)["per_query"])[key_metric] for s in systems}

    def test(name: str, reference: str) -> dict[str, Any]:
        samples, seed = evaluation.bootstrap_samples, evaluation.seed
        return {
            "metric": key_metric,
            **compare(per_query[name], per_query[reference], samples, seed, (name, reference)),
        }

    summary: dict[str, Any] = {name: {m: scores[name][m] for m in metrics} for name in systems}
    for name in systems:
        if name != baseline:
            summary[name][f"vs_{baseline}"] = test(name, baseline)
    for name, reference in evaluation.comparisons:
        if name in per_query and reference in per_query:
            summary[name][f"vs_{reference}"] = test(name, reference)
    adjust_for_multiplicity(summary)
    return summary


def adjust_for_multiplicity(summary: dict[str, Any]) -> None:
    """Add Holm–Bonferroni adjusted p-values (``p_ttest_holm``, ``p_bootstrap_holm``) to every test in
    ``summary``, over the family of all tests the report makes (each kind of test adjusted apart)."""
    tests = [entry[key] for entry in summary.values() for key in entry if key.startswith("vs_")]
    for kind in ("p_ttest", "p_bootstrap"):
        for test, adjusted in zip(tests, holm_adjust([t[kind] for t in tests])):
            test[f"{kind}_holm"] = adjusted


def write_report(
    systems: list[str],
    evaluation: Evaluation,
    outputs: Outputs,
    dataset: Dataset,
    plain: dict[str, System],
    augmented: dict[str, AugmentedSystem],
    lock: dict[str, dict[str, Any]] | None = None,
    experiments: Collection[str] = (),
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write summary.json, results.md, comparison.png and headline.csv, the results page and the README's
    headline table (:func:`publish`); return the summary and the paths written.

    Systems without metrics yet are named in results.md as not evaluated, those whose metrics belong to
    another dataset or split are left out with the reason, and so are those whose metrics are not current by
    ``lock``'s records (dvc.lock's stages, coaug.evaluation.freshness; None: not checked): never silently
    dropped nor mixed in. A table cell names the command that makes a left-out row: ``make experiments`` for
    ``experiments`` (the systems outside params.yaml's main_job), else its ``dvc repro``. ``plain`` and
    ``augmented`` (params.yaml's ``systems`` and ``augmented_systems``) say what each system is."""
    listed = systems
    systems, missing = evaluated(outputs, systems)
    stale = {name: reason for name in systems if (reason := stale_reason(outputs, dataset, name))}
    outdated = {
        name: reason
        for name in systems
        if name not in stale and lock is not None and (reason := lock_reason(lock, outputs, name, plain))
    }
    if evaluation.baseline in outdated:
        raise CoaugError(
            f"baseline '{evaluation.baseline}' cannot be reported: {outdated[evaluation.baseline]} — run "
            f"{make_command(evaluation.baseline, plain)}"
        )
    reported = [name for name in systems if name not in stale and name not in outdated]
    summary = build_report(reported, evaluation, outputs, dataset)  # a baseline of another dataset fails here
    for name, reason in {**stale, **outdated}.items():
        logger.warning("report leaves out %s: %s", name, reason)
    metrics = evaluation.metrics
    baseline = evaluation.baseline
    alpha = evaluation.alpha
    key_metric = evaluation.significance_metric
    reports = Path(outputs.reports_dir)
    paths = {
        "summary": reports / "summary.json",
        "table": reports / "results.md",
        "plot": reports / "comparison.png",
        "headline": reports / "headline.csv",
    }
    write_json(paths["summary"], summary)
    title = f"{dataset.name} ({dataset.eval_split})"
    tests = sum(key.startswith("vs_") for entry in summary.values() for key in entry)
    note = (
        f"{title}. Paired tests (t-test, bootstrap) on {key_metric} against {baseline}; p-values raw and "
        f"Holm–Bonferroni adjusted over all {tests} tests of this report; * = both adjusted p < {alpha}.\n\n"
    )
    block = f"\n{key_metric} by policy (evaluation.policy_block):\n\n" + policy_block(
        summary, evaluation.policy_block, key_metric
    )
    pending = f"\nNot evaluated yet: {', '.join(missing)}.\n" if missing else ""
    if stale:
        reasons = "".join(f"- {name}: {reason}\n" for name, reason in stale.items())
        pending += f"\nLeft out, their metrics do not belong to this dataset and split:\n\n{reasons}"
    if outdated:
        reasons = "".join(f"- {name}: {reason}\n" for name, reason in outdated.items())
        pending += f"\nLeft out, their metrics are not current by dvc.lock's records:\n\n{reasons}"
    pairs = comparisons_table(summary, evaluation.comparisons, key_metric, alpha)
    pairs = f"\nPaired tests between systems (evaluation.comparisons):\n\n{pairs}" if pairs else ""
    write_text(paths["table"], note + markdown_table(summary, metrics, baseline, alpha) + block + pairs + pending)
    comparison_bars({s: {m: e[m] for m in metrics} for s, e in summary.items()}, metrics, title, paths["plot"])
    # The headline metric per system, for `dvc plots show` (a sorted horizontal bar chart).
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["system", key_metric])
    writer.writerows([name, f"{entry[key_metric]:.4f}"] for name, entry in summary.items())
    write_text(paths["headline"], buffer.getvalue())
    labels = {**dict.fromkeys(missing, NOT_RUN), **dict.fromkeys(stale, LEFT_OUT), **dict.fromkeys(outdated, STALE)}
    absent = {
        name: f"{label}: {'`make experiments`' if name in experiments else make_command(name, plain)}"
        for name, label in labels.items()
    }
    queries = json.loads(output_paths(outputs, baseline)["metrics"].read_text()).get("queries")
    caption = f"{dataset.name}, {dataset.eval_split} split" + (f", {queries} queries" if queries else "")
    paths["page"] = Path(outputs.results_page)
    write_text(paths["page"], results_page(summary, listed, evaluation, plain, augmented, absent, caption))
    if outputs.readme:
        publish(
            Path(outputs.readme),
            readme_block(
                summary, evaluation, plain, augmented, absent, caption, relative_link(paths["page"], outputs.readme)
            ),
        )
    return summary, paths


def lock_reason(lock: dict[str, dict[str, Any]], outputs: Outputs, name: str, plain: dict[str, System]) -> str | None:
    """Why the metrics and per-query files of ``name`` are not current by dvc.lock (``lock``), or None."""
    paths = output_paths(outputs, name)
    return outdated_reason(lock, evaluate_stage(name, plain), [paths["metrics"], paths["per_query"]])


def publish(readme: Path, block: str) -> None:
    """Rewrite the README's headline table between its markers; a project without a README has none to keep."""
    if not readme.is_file():
        logger.info("no %s: its headline table is not rendered", readme)
        return
    text = readme.read_text()
    updated = with_block(text, block, str(readme))
    if updated != text:
        write_text(readme, updated)
