"""The Prefect flow runs the real DVC pipeline of a tiny project copy, stage by stage, in DAG order."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import mlflow
import pytest
from prefect.artifacts import Artifact
from prefect.testing.utilities import prefect_test_harness

from coaug.tracking import ML_WORKFLOW_QUERY
from flows.pipeline import StageFailed, artifact_key, pipeline

from ..conftest import TINY_BEIR
from ..tiny_project import make_project

EXPECTED_ORDER = [
    "prepare",
    "augment@doc2query",
    "augment@query2doc",
    "augment@untrained",
    "index@bm25_flat",
    "evaluate@bm25_flat",
    "index@bm25_multifield",
    "evaluate@bm25_multifield",
    "index@dense",
    "evaluate@dense",
    "index_aug@both_untrained_flat",
    "evaluate_aug@both_untrained_flat",
    "index_aug@both_untrained_multifield",
    "evaluate_aug@both_untrained_multifield",
    "train@coaug",
    "augment_trained@trained_sparse",
    "index_aug@both_coaug_dense",
    "evaluate_aug@both_coaug_dense",
    "index_aug@both_coaug_flat",
    "evaluate_aug@both_coaug_flat",
    "promote",
    "report",
]


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness():
        yield


@pytest.mark.long
def test_flow_runs_every_stage_in_order_then_skips_them(prefect_server, tmp_path):
    project = make_project(tmp_path / "project", TINY_BEIR)
    assert pipeline(repo=str(project), retries=0) == EXPECTED_ORDER
    assert (project / "dvc.lock").is_file()
    assert "| bm25_flat |" in (project / "reports" / "results.md").read_text()
    assert "| bm25_flat |" in Artifact.get("coaug-results").data
    assert "exit 0" in Artifact.get(artifact_key("log", "evaluate@dense")).data
    # One MLflow parent run per flow run; every stage's run nests under it.
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["tiny"], output_format="list")
    (parent,) = [r for r in runs if r.info.run_name.startswith("flow-")]
    assert parent.info.status == "FINISHED"
    # [text](url), the url opening MLflow's runs view (not its GenAI overview)
    assert f"/runs/{parent.info.run_id}{ML_WORKFLOW_QUERY})" in Artifact.get("mlflow-run").data
    nested = {r.data.tags["dvc_stage"] for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert nested == set(EXPECTED_ORDER)
    # The trained policy is registered, promoted (no champion yet, it does not lose to BM25) and served.
    client = mlflow.MlflowClient()
    (listed,) = client.search_model_versions("name='coaug-policy'")
    version = client.get_model_version("coaug-policy", listed.version)  # search results carry no aliases
    assert sorted(version.aliases) == ["challenger", "champion"]
    assert version.tags["promotion.decision"] == "promoted"
    assert version.tags["promotion.compared_against"] == "baseline bm25_flat"
    assert json.loads((project / "reports" / "promotion.json").read_text())["promote"] is True
    found = subprocess.run(
        [sys.executable, "-m", "coaug.cli", "search", "--json", "--k", "2", "breast cancer cholesterol"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    (answer,) = map(json.loads, found.stdout.splitlines())
    assert answer["query"] == "breast cancer cholesterol" and len(answer["hits"]) == 2

    assert pipeline(repo=str(project), retries=0) == EXPECTED_ORDER
    for stage in EXPECTED_ORDER:
        log = (project / "logs" / f"{stage.replace('@', '-')}.log").read_text()
        assert log.count(f"Stage '{stage}' didn't change, skipping") == 1, stage
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=project, capture_output=True, text=True)
    assert "up to date" in status.stdout


def test_failing_stage_is_retried_then_fails_the_flow(prefect_server, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(TINY_BEIR, broken)
    (broken / "corpus.jsonl").write_text("{oops\n")
    project = make_project(tmp_path / "project", broken)
    with pytest.raises(StageFailed, match="stage prepare failed"):
        pipeline(repo=str(project), retries=1, retry_delay_seconds=0)
    log = (project / "logs" / "prepare.log").read_text()
    assert log.count("corpus.jsonl:1: invalid JSON") == 2  # first try + one retry
