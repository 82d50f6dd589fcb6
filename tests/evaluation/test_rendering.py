"""Published results are rendered by `coaug report`, never copied: the README's headline table and
docs/results.md must be exactly what the committed metrics render, and the README stays user documentation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from coaug import params as P
from coaug.errors import CoaugError
from coaug.evaluation.freshness import read_lock
from coaug.evaluation.rendering import BEGIN, END, describe, policy_block, with_block
from coaug.evaluation.report import write_report
from coaug.params_schema import AugmentedSystem, typed_params

from ..conftest import REPO

README = REPO / "README.md"
PAGE = REPO / "docs" / "results.md"
METRICS = REPO / "metrics"
RERENDER = "differs from what the committed metrics render: run `coaug report` and commit what it writes"


def render(tmp_path: Path, metrics: Path, lock: Path | None = None) -> tuple[str, str]:
    """(README, docs/results.md) as `coaug report` writes them from ``metrics`` with this repo's params,
    into ``tmp_path``; the prepared dataset is the one the baseline's metrics were evaluated on. With ``lock``
    (a dvc.lock), only the metrics it records as current are reported, as `coaug report` does."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    baseline = params["evaluation"]["baseline"]
    prepared = tmp_path / "data"
    prepared.mkdir()
    checksum = json.loads((metrics / f"{baseline}.json").read_text())["dataset_checksum"]
    (prepared / "stats.json").write_text(json.dumps({"checksum": checksum}))
    readme, page = tmp_path / "README.md", tmp_path / "docs" / "results.md"
    shutil.copy(README, readme)
    params["dataset"]["prepared_dir"] = str(prepared)
    params["outputs"].update(
        metrics_dir=str(metrics), reports_dir=str(tmp_path / "reports"), results_page=str(page), readme=str(readme)
    )
    typed = typed_params(params)
    sections = (typed.evaluation, typed.outputs, typed.dataset, typed.systems, typed.augmented_systems)
    records = read_lock(lock) if lock else None
    write_report(P.system_names(typed), *sections, lock=records, experiments=P.experiment_systems(typed))
    return readme.read_text(), page.read_text()


def block(readme: str) -> str:
    return readme.split(BEGIN)[1].split(END)[0]


def row(text: str, system: str) -> str:
    """The first table row of ``system``: its headline row, or its row in the page's table of every system."""
    return next(line for line in text.splitlines() if line.startswith((f"| `{system}` |", f"| {system} |")))


def metrics_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "metrics"
    shutil.copytree(METRICS, copy)
    return copy


def test_the_committed_readme_table_and_results_page_are_what_the_committed_metrics_render(tmp_path):
    readme, page = render(tmp_path, METRICS, REPO / "dvc.lock")
    assert block(readme) == block(README.read_text()), f"README.md's results table {RERENDER}"
    assert page == PAGE.read_text(), f"docs/results.md {RERENDER}"
    # Only the block is the report's: the hand-written rest of the README comes back untouched.
    assert readme == README.read_text()


def test_a_metric_file_changed_without_rerendering_fails_the_comparison(tmp_path):
    metrics = metrics_copy(tmp_path)
    path = metrics / "both_coaug_flat.json"
    changed = json.loads(path.read_text())
    changed["NDCG@10"] += 0.0123
    path.write_text(json.dumps(changed))
    readme, page = render(tmp_path, metrics)
    assert block(readme) != block(README.read_text()) and page != PAGE.read_text()
    value = f"| {changed['NDCG@10']:.4f} |"
    assert value in row(block(readme), "both_coaug_flat") and value in row(page, "both_coaug_flat")


def test_a_system_without_metrics_is_a_row_naming_its_command_never_an_old_value(tmp_path):
    metrics = metrics_copy(tmp_path)
    for suffix in (".json", ".perquery.tsv"):
        (metrics / f"both_control_flat{suffix}").unlink()
    readme, page = render(tmp_path, metrics)
    command = "not run: `dvc repro evaluate_aug@both_control_flat`"
    for text in (block(readme), page):
        line = row(text, "both_control_flat")
        assert command in line and not re.search(r"\d\.\d{4}", line)
    assert row(page, "flat").split(" | ")[4] == "not run"  # the policy block's control column
    assert "- `both_coaug_flat` against `both_control_flat`: `dvc repro evaluate_aug@both_control_flat`" in page


def test_the_readme_is_user_documentation():
    text = README.read_text()
    outside = text.split(BEGIN)[0] + text.split(END)[1]
    assert len(text.splitlines()) <= 250
    assert "session" not in text.lower()
    assert re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", text) == []  # commit hashes
    assert re.findall(r"\b0\.\d{4}\b", outside) == []  # metrics live in the rendered block only


def test_with_block_replaces_only_what_lies_between_the_markers():
    text = f"# Title\n\nintro\n{BEGIN}\nold table\n{END}\n\nrest\n"
    assert with_block(text, "new table\n", "README.md") == f"# Title\n\nintro\n{BEGIN}\nnew table\n{END}\n\nrest\n"


@pytest.mark.parametrize(
    "text", ["no markers\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"], ids=["none", "reversed", "twice"]
)
def test_a_readme_without_one_pair_of_markers_is_one_line(text):
    with pytest.raises(CoaugError, match=r"^README.md: needs one '<!-- results:begin -->' line and, after it, one"):
        with_block(text, "table\n", "README.md")


def test_policy_block_says_not_run_where_a_configured_system_has_no_metrics():
    summary = {"bm25_flat": {"NDCG@10": 0.32181}}
    configured = {"flat": {"baseline": "bm25_flat", "trained": "both_coaug_flat"}, "dense": {"baseline": "absent"}}
    assert policy_block(summary, configured, "NDCG@10", missing="not run") == (
        "| retriever | baseline | trained |\n|---|---|---|\n| flat | 0.3218 | not run |\n| dense | not run |  |\n"
    )


@pytest.mark.parametrize(
    ("repeat", "words"), [(0, "queries (augmentation alone)"), (1, "queries"), (5, "queries (original ×5)")]
)
def test_a_system_says_how_it_weights_the_original_query(repeat, words):
    entry = AugmentedSystem("bm25_flat", "untrained", augment_docs=True, augment_queries=True, query_repeat=repeat)
    assert describe("s", {}, {"s": entry}) == ("BM25, title + text", f"`untrained`: {words} + documents")
