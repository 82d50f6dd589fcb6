"""A report row counts only if dvc.lock records its metrics as current: the file itself, made after every input
upstream of it (coaug.evaluation.freshness); a stale or missing row names the command that makes it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from coaug.errors import CoaugError
from coaug.evaluation import report
from coaug.evaluation.freshness import outdated_reason, read_lock
from coaug.params_schema import typed_params

from .test_report import report_params, scores, write_metrics


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def record(deps: dict[str, str], outs: dict[str, str]) -> dict:
    """One stage as dvc.lock records it: path and md5 of each dep and output."""
    return {
        "cmd": "coaug ...",
        "deps": [{"path": path, "hash": "md5", "md5": value} for path, value in deps.items()],
        "outs": [{"path": path, "hash": "md5", "md5": value} for path, value in outs.items()],
    }


def lock_of(metrics: Path, *names: str) -> dict[str, dict]:
    """The lock of a run in which ``names`` were evaluated with the files now in ``metrics``: the untrained pass
    was then remade (a second `make pipeline`) after train@qonly had used the index built on its first version."""
    stages = {
        "prepare": record({"beir": "b.dir"}, {"data/tiny": "d.dir"}),
        "augment@untrained": record({"data/tiny": "d.dir"}, {"augmented/untrained": "u2.dir"}),
        "index_aug@both_untrained_flat": record(
            {"augmented/untrained": "u2.dir", "data/tiny/corpus.jsonl": "not-compared"},
            {"indexes/both_untrained_flat": "i2.dir"},
        ),
        "train@qonly": record({"indexes/both_untrained_flat": "i1.dir"}, {"models/qonly": "q.dir"}),
        "augment_trained@qonly_sparse": record({"models/qonly": "q.dir"}, {"augmented/qonly_sparse": "a.dir"}),
        "index_aug@query_qonly_flat": record(
            {"augmented/qonly_sparse": "a.dir"}, {"indexes/query_qonly_flat": "x.dir"}
        ),
    }
    upstream = {
        "bm25_flat": {"data/tiny/queries.jsonl": "not-compared"},
        "both_untrained_flat": {"indexes/both_untrained_flat": "i2.dir"},
        "both_coaug_flat": {},
        "query_qonly_flat": {"indexes/query_qonly_flat": "x.dir", "augmented/qonly_sparse": "a.dir"},
    }
    for name in names:
        files = [metrics / f"{name}.json", metrics / f"{name}.perquery.tsv"]
        stage = f"{'evaluate' if name == 'bm25_flat' else 'evaluate_aug'}@{name}"
        stages[stage] = record(upstream[name], {f"metrics/{path.name}": md5(path) for path in files})
    return stages


@pytest.fixture
def evaluated(tmp_path):
    """Params of a report in ``tmp_path`` and its metrics folder, holding the four systems of :func:`lock_of`."""
    params = report_params(tmp_path)
    for name, values in {
        "bm25_flat": scores(0.5, 0.1, 0.3),
        "both_untrained_flat": scores(0.6, 0.1, 0.2),
        "both_coaug_flat": scores(0.7, 0.3, 0.2),
        "query_qonly_flat": scores(0.4, 0.2, 0.5),
    }.items():
        write_metrics(params, name, values)
    return params, Path(params["outputs"]["metrics_dir"])


def reason(stages: dict, metrics: Path, name: str, stage: str) -> str | None:
    return outdated_reason(stages, stage, [metrics / f"{name}.json", metrics / f"{name}.perquery.tsv"])


def test_metrics_are_current_when_dvc_lock_records_them_and_everything_upstream(evaluated):
    _, metrics = evaluated
    stages = lock_of(metrics, "bm25_flat", "both_untrained_flat")
    # A dep inside a folder another stage makes is not compared (the dataset checksum covers the prepared files).
    assert reason(stages, metrics, "bm25_flat", "evaluate@bm25_flat") is None
    assert reason(stages, metrics, "both_untrained_flat", "evaluate_aug@both_untrained_flat") is None


def test_a_metrics_file_dvc_lock_does_not_record_is_stale(evaluated):
    _, metrics = evaluated
    stages = lock_of(metrics, "both_untrained_flat")
    (metrics / "both_untrained_flat.perquery.tsv").write_text("query_id\tNDCG@10\nq0\t0.9\n")  # by hand
    assert reason(stages, metrics, "both_untrained_flat", "evaluate_aug@both_untrained_flat") == (
        f"{metrics}/both_untrained_flat.perquery.tsv is not the file dvc.lock records for "
        "evaluate_aug@both_untrained_flat"
    )
    assert reason(stages, metrics, "bm25_flat", "evaluate@bm25_flat") == "dvc.lock has no record of evaluate@bm25_flat"


def test_metrics_made_before_an_input_upstream_was_remade_are_stale(evaluated):
    _, metrics = evaluated
    stages = lock_of(metrics, "query_qonly_flat")
    assert reason(stages, metrics, "query_qonly_flat", "evaluate_aug@query_qonly_flat") == (
        "index_aug@both_untrained_flat remade indexes/both_untrained_flat after train@qonly ran"
    )


def test_read_lock_gives_the_stage_records_or_none_without_a_lock(tmp_path):
    stages = {"prepare": record({"beir": "b.dir"}, {"data/tiny": "d.dir"})}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    assert read_lock(tmp_path / "dvc.lock") == stages
    assert read_lock(tmp_path / "absent.lock") is None


def test_the_report_shows_current_rows_only_and_names_the_command_of_every_other(evaluated):
    params, metrics = evaluated
    stages = lock_of(metrics, "bm25_flat", "both_untrained_flat", "query_qonly_flat")  # both_coaug_flat unrecorded
    systems = [
        *("bm25_flat", "both_untrained_flat", "both_coaug_flat", "query_qonly_flat"),
        *("both_control_flat", "doc_donly_flat"),  # never evaluated
    ]
    typed = typed_params(params)
    sections = (typed.evaluation, typed.outputs, typed.dataset, typed.systems, typed.augmented_systems)

    experiments = ["query_qonly_flat", "doc_donly_flat"]  # outside the main job
    summary, paths = report.write_report(systems, *sections, lock=stages, experiments=experiments)

    assert list(summary) == ["bm25_flat", "both_untrained_flat"]
    page = paths["page"].read_text()
    cells = {
        "both_coaug_flat": "stale (not current by dvc.lock): `dvc repro evaluate_aug@both_coaug_flat`",
        "query_qonly_flat": "stale (not current by dvc.lock): `make experiments`",
        "both_control_flat": "not run: `dvc repro evaluate_aug@both_control_flat`",
        "doc_donly_flat": "not run: `make experiments`",
    }
    for name, cell in cells.items():
        assert f"| {name} | {cell} |" in page
    table = paths["table"].read_text()
    assert table.endswith(
        "\nLeft out, their metrics are not current by dvc.lock's records:\n\n"
        "- both_coaug_flat: dvc.lock has no record of evaluate_aug@both_coaug_flat\n"
        "- query_qonly_flat: index_aug@both_untrained_flat remade indexes/both_untrained_flat after "
        "train@qonly ran\n"
    )
    # Without a lock (stages run by hand) nothing is checked: every file counts.
    summary, _ = report.write_report(systems, *sections)
    assert list(summary) == ["bm25_flat", "both_untrained_flat", "both_coaug_flat", "query_qonly_flat"]


def test_a_stale_baseline_fails_the_report_naming_its_command(evaluated):
    params, metrics = evaluated
    stages = lock_of(metrics, "both_untrained_flat")
    typed = typed_params(params)
    sections = (typed.evaluation, typed.outputs, typed.dataset, typed.systems, typed.augmented_systems)
    with pytest.raises(CoaugError) as raised:
        report.write_report(["bm25_flat", "both_untrained_flat"], *sections, lock=stages)
    assert str(raised.value) == (
        "baseline 'bm25_flat' cannot be reported: dvc.lock has no record of evaluate@bm25_flat — run "
        "`dvc repro evaluate@bm25_flat`"
    )
