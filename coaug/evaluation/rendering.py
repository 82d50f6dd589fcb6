"""Markdown rendered from a report summary (coaug.evaluation.report): the tables of reports/results.md, the
results page ``outputs.results_page`` (docs/results.md) and the README's headline table.

Published results are rendered, never copied: ``coaug report`` rewrites the page whole and the README
(``outputs.readme``) only between :data:`BEGIN` and :data:`END`; tests/evaluation/test_rendering.py renders both
from the committed metrics and fails when a committed copy differs. A system without current metrics (none
yet, another dataset's, or stale by dvc.lock) is a row that names the command making them, never an old value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coaug.errors import CoaugError
from coaug.evaluation.freshness import evaluate_stage
from coaug.params_schema import AugmentedSystem, Evaluation, System

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
NOTICE = "<!-- Rendered by `coaug report` from metrics/ and params.yaml: edit those and rerun it, not this text. -->"
TEST_HEADER = ["p (t-test)", "p (t, Holm)", "p (bootstrap)", "p (boot., Holm)"]
RETRIEVERS = {
    "bm25_flat": "BM25, title + text",
    "bm25_multifield": "BM25, title and text fields",
    "dense": "dense encoder",
}
NOT_RUN = "not run"
LEFT_OUT = "left out (metrics of another dataset or split)"
STALE = "stale (not current by dvc.lock)"


def significance_mark(test: dict[str, Any], alpha: float) -> str:
    """``*`` when both Holm-adjusted p-values are below ``alpha``."""
    return "*" if max(test["p_ttest_holm"], test["p_bootstrap_holm"]) < alpha else ""


def test_cells(test: dict[str, Any], alpha: float) -> list[str]:
    return [
        f"{test['mean_diff']:+.4f}{significance_mark(test, alpha)}",
        f"{test['p_ttest']:.2g}",
        f"{test['p_ttest_holm']:.2g}",
        f"{test['p_bootstrap']:.2g}",
        f"{test['p_bootstrap_holm']:.2g}",
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def system_cells(name: str, entry: dict[str, Any], metrics: list[str], baseline: str, alpha: float) -> list[str]:
    test = entry.get(f"vs_{baseline}")
    cells = [name, *(f"{entry[m]:.4f}" for m in metrics)]
    return cells + (test_cells(test, alpha) if test else ["—"] * (1 + len(TEST_HEADER)))


def markdown_table(summary: dict[str, Any], metrics: list[str], baseline: str, alpha: float) -> str:
    """Systems x metrics, plus the paired tests on the significance metric (``*``: Holm-adjusted p < alpha)."""
    header = ["system", *metrics, f"Δ vs {baseline}", *TEST_HEADER]
    return table(header, [system_cells(name, entry, metrics, baseline, alpha) for name, entry in summary.items()])


def comparisons_table(summary: dict[str, Any], comparisons: list[list[str]], metric: str, alpha: float) -> str:
    """The ``evaluation.comparisons`` pairs that were both evaluated (e.g. trained vs untrained policy)."""
    rows = [
        (name, reference, summary[name][f"vs_{reference}"])
        for name, reference in comparisons
        if name in summary and f"vs_{reference}" in summary[name]
    ]
    if not rows:
        return ""
    header = ["system", "against", f"Δ {metric}", *TEST_HEADER]
    return table(header, [[name, reference, *test_cells(test, alpha)] for name, reference, test in rows])


def policy_block(summary: dict[str, Any], block: dict[str, dict[str, str]], metric: str, missing: str = "") -> str:
    """One row per retriever, one column per policy (``evaluation.policy_block``): the metric of each
    evaluated system, ``missing`` where it was not evaluated, blank where none is configured."""
    columns = list(dict.fromkeys(column for row in block.values() for column in row))

    def cell(system: str | None) -> str:
        return "" if system is None else f"{summary[system][metric]:.4f}" if system in summary else missing

    rows = [[retriever, *(cell(row.get(column)) for column in columns)] for retriever, row in block.items()]
    return table(["retriever", *columns], rows)


def describe(name: str, plain: dict[str, System], augmented: dict[str, AugmentedSystem]) -> tuple[str, str]:
    """A system's retriever and its augmentation (``—`` for none), in words, from params.yaml."""
    if name in plain:
        return RETRIEVERS[plain[name].retriever], "—"
    if name not in augmented:
        raise CoaugError(f"params: unknown system '{name}' (not in systems or augmented_systems)")
    entry = augmented[name]
    repeat = {0: " (augmentation alone)", 1: ""}.get(entry.query_repeat, f" (original ×{entry.query_repeat})")
    queries = "queries" + repeat
    sides = " + ".join(
        side for side, on in ((queries, entry.augment_queries), ("documents", entry.augment_docs)) if on
    )
    return RETRIEVERS[entry.retriever], f"`{entry.augmentation}`: {sides or 'neither side'}"


def make_command(name: str, plain: dict[str, System]) -> str:
    """The command that makes (or remakes) a system's metrics, with everything upstream of them."""
    return f"`dvc repro {evaluate_stage(name, plain)}`"


def absent_cell(name: str, absent: dict[str, str], plain: dict[str, System]) -> str:
    """A system without a reported row: why, and the command that makes it (``absent``, from the report)."""
    return absent.get(name) or f"{NOT_RUN}: {make_command(name, plain)}"


def verdict(test: dict[str, Any], alpha: float) -> str:
    """``level with`` unless both Holm-adjusted p-values are below ``alpha``; then above or below."""
    if not significance_mark(test, alpha):
        return "is level with"
    return "is above" if test["mean_diff"] > 0 else "is below"


def pair_lines(summary: dict[str, Any], pairs: list[list[str]], metric: str, alpha: float) -> list[str]:
    """One bullet per evaluated pair: the reading, then its numbers."""
    lines = []
    for name, reference in pairs:
        test = summary.get(name, {}).get(f"vs_{reference}")
        if test:
            lines.append(
                f"- `{name}` {verdict(test, alpha)} `{reference}`: Δ {metric} {test['mean_diff']:+.4f}, "
                f"paired t-test p {test['p_ttest']:.2g} (Holm {test['p_ttest_holm']:.2g})"
            )
    return lines


def pairs_sentence(summary: dict[str, Any], pairs: list[list[str]], alpha: float) -> str:
    """How many of the evaluated pairs differ significantly after the Holm adjustment, and which."""
    tested = [
        (name, reference, summary[name][f"vs_{reference}"])
        for name, reference in pairs
        if f"vs_{reference}" in summary.get(name, {})
    ]
    differing = [
        f"`{name}` {verdict(test, alpha)} `{reference}`"
        for name, reference, test in tested
        if significance_mark(test, alpha)
    ]
    if not differing:
        return f"None of the {len(tested)} pairs differs significantly after the Holm adjustment.\n"
    return (
        f"{len(differing)} of the {len(tested)} pairs differ significantly after the Holm adjustment: "
        f"{'; '.join(differing)}.\n"
    )


def count_tests(summary: dict[str, Any]) -> int:
    return sum(key.startswith("vs_") for entry in summary.values() for key in entry)


def readme_block(
    summary: dict[str, Any],
    evaluation: Evaluation,
    plain: dict[str, System],
    augmented: dict[str, AugmentedSystem],
    absent: dict[str, str],
    caption: str,
    page_link: str,
) -> str:
    """The README's headline: the ``evaluation.headline`` systems, and the ``evaluation.comparisons`` pairs
    among them read out (level with / above / below, on the Holm-adjusted p-values)."""
    metric, baseline, alpha = evaluation.significance_metric, evaluation.baseline, evaluation.alpha
    rows = []
    for name in evaluation.headline:
        retriever, augmentation = describe(name, plain, augmented)
        entry = summary.get(name)
        if entry is None:
            rows.append([f"`{name}`", retriever, augmentation, absent_cell(name, absent, plain), "", ""])
            continue
        test = entry.get(f"vs_{baseline}")
        delta = f"{test['mean_diff']:+.4f}{significance_mark(test, alpha)}" if test else "—"
        rows.append(
            [
                f"`{name}`",
                retriever,
                augmentation,
                f"{entry[metric]:.4f}",
                delta,
                f"{test['p_ttest_holm']:.2g}" if test else "—",
            ]
        )
    header = ["system", "retriever", "augmentation", metric, f"Δ vs {baseline}", "p (t-test, Holm)"]
    shown = set(evaluation.headline)
    pairs = pair_lines(summary, [p for p in evaluation.comparisons if set(p) <= shown], metric, alpha)
    footer = (
        f"{caption}. p-values Holm–Bonferroni adjusted over all {count_tests(summary)} paired tests of the report; "
        f'`*` = significant after the adjustment (α {alpha}), "level with" = not. Every system, the policy block '
        f"and all paired tests: [{page_link}]({page_link}).\n"
    )
    return NOTICE + "\n\n" + table(header, rows) + "\n" + "".join(line + "\n" for line in pairs) + "\n" + footer


def results_page(
    summary: dict[str, Any],
    systems: list[str],
    evaluation: Evaluation,
    plain: dict[str, System],
    augmented: dict[str, AugmentedSystem],
    absent: dict[str, str],
    caption: str,
) -> str:
    """docs/results.md: every system, the policy block, the paired comparisons and what each system is."""
    metrics, metric = evaluation.metrics, evaluation.significance_metric
    baseline, alpha = evaluation.baseline, evaluation.alpha
    order = [baseline, *(name for name in systems if name != baseline)]
    blank = [""] * (len(metrics) + len(TEST_HEADER))
    rows = [
        system_cells(name, summary[name], metrics, baseline, alpha)
        if name in summary
        else [name, absent_cell(name, absent, plain), *blank]
        for name in order
    ]
    every = table(["system", *metrics, f"Δ vs {baseline}", *TEST_HEADER], rows)
    pairs = comparisons_table(summary, evaluation.comparisons, metric, alpha) or "No pair evaluated yet.\n"
    pending = [
        (name, reference)
        for name, reference in evaluation.comparisons
        if f"vs_{reference}" not in summary.get(name, {})
    ]
    if pending:
        pairs += "\nNot tested yet (a system without metrics):\n\n" + "".join(
            f"- `{name}` against `{reference}`: "
            + ", ".join(make_command(s, plain) for s in (name, reference) if s not in summary)
            + "\n"
            for name, reference in pending
        )
    what = [[f"`{name}`", *describe(name, plain, augmented), make_command(name, plain)] for name in order]
    return "\n".join([
        "# Results", "", NOTICE, "",
        f"{caption}: every system of params.yaml (`systems`, `augmented_systems`) with its metrics, and paired "
        f"tests (t-test, bootstrap) on {metric} against `{baseline}` and between the `evaluation.comparisons` "
        f"pairs. p-values are raw and Holm–Bonferroni adjusted over all {count_tests(summary)} tests of this page; "
        f"`*` = both adjusted p < {alpha}. What the training does and what its control shows: "
        "[training.md](training.md).", "",
        "## Every system", "", every,
        f"## {metric} by policy", "",
        "`evaluation.policy_block`: one row per retriever, one column per policy; blank where no system is "
        "configured.", "",
        policy_block(summary, evaluation.policy_block, metric, missing=NOT_RUN),
        "## Paired tests between systems", "", pairs_sentence(summary, evaluation.comparisons, alpha), pairs,
        "## What each system is", "",
        "Defined in params.yaml; each command also runs everything upstream of the system (augmentations, "
        "training, indexes).", "",
        table(["system", "retriever", "augmentation", "made by"], what),
        "## Reproduce", "",
        "`dvc repro` runs whatever changed and `coaug report` renders this page, the README's headline table "
        "and reports/ (summary.json, results.md, comparison.png, headline.csv) from metrics/.", "",
    ])  # fmt: skip


def with_block(text: str, block: str, source: str) -> str:
    """``text`` with what lies between its :data:`BEGIN` and :data:`END` lines replaced by ``block``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise CoaugError(
            f"{source}: needs one '{BEGIN}' line and, after it, one '{END}' line around the results table"
        )
    head, rest = text.split(BEGIN)
    return f"{head}{BEGIN}\n{block}{END}{rest.split(END)[1]}"


def relative_link(page: str | Path, readme: str | Path) -> str:
    """The page's path as a link from the README's folder."""
    return Path(os.path.relpath(page, Path(readme).parent)).as_posix()
