"""The Prefect flow runs the real DVC pipeline of a tiny project copy, stage by stage, in DAG order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import StageFailed, artifact_key, pipeline

from .conftest import REPO, TINY_BEIR
from .tiny_models import build_tiny_word_llama

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
    "index_aug@coaug_untrained_flat",
    "evaluate_aug@coaug_untrained_flat",
    "train",
    "augment_trained@trained_sparse",
    "index_aug@coaug_trained_dense",
    "evaluate_aug@coaug_trained_dense",
    "index_aug@coaug_trained_flat",
    "evaluate_aug@coaug_trained_flat",
    "promote",
    "report",
]


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness():
        yield


def make_project(root: Path, source: Path) -> Path:
    """A git + DVC project with this repo's dvc.yaml and code, pointed at a tiny dataset."""
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "coaug", root / "coaug", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "prompts", root / "prompts")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="tiny", source=str(source), prepared_dir="data/tiny", splits=["test"])
    for system in params["systems"].values():
        system.update(corpus="data/tiny/corpus.jsonl", queries="data/tiny/queries.jsonl")
    params["dense"]["cache_dir"] = str(root / ".cache" / "embeddings")
    # A tiny local policy keeps the augment and train stages to seconds.
    params["policy"].update(model=str(build_tiny_word_llama(root / "tiny-policy")), cache_dir=str(root / ".cache" / "policies"))
    params["generation"]["max_new_tokens"] = 4
    params["augment"]["doc_max_tokens"] = 16
    params["train"].update(split="test", steps=1, queries_per_step=3, k_pos=1, k_randneg=1, rollouts=2, max_new_tokens=4)
    # The trained systems are the ones `promote` evaluates and serves.
    kept = ("coaug_untrained_flat", "coaug_trained_flat", "coaug_trained_dense")
    params["augmented_systems"] = {name: params["augmented_systems"][name] for name in kept}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def test_flow_runs_every_stage_in_order_then_skips_them(prefect_server, tmp_path):
    project = make_project(tmp_path / "project", TINY_BEIR)
    assert pipeline(repo=str(project), retries=0) == EXPECTED_ORDER
    assert (project / "dvc.lock").is_file()
    assert "| bm25_flat |" in (project / "reports" / "results.md").read_text()
    assert "| bm25_flat |" in Artifact.get("coaug-results").data
    assert "exit 0" in Artifact.get(artifact_key("log", "evaluate@dense")).data

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
