"""No MLflow run stays RUNNING once its process is gone: SIGTERM ends it KILLED, and after kill -9 the next
stage start marks it KILLED (only runs of this host whose pid is dead)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coaug.params import load_params
from coaug.params_schema import Params
from coaug.tracking import DVC_OUTS_TAG, EXPERIMENT_KIND_TAG, configure_mlflow, dvc_outs, stage_run

from .conftest import REPO

# Opens a stage run from the params file argv[1], prints its id and blocks until it is signalled.
STAGE_PROCESS = """
import sys
from coaug.params import load_params
from coaug.tracking import stage_run

with stage_run(load_params(sys.argv[1]), "augment", []) as mlflow:
    print(mlflow.active_run().info.run_id, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def params(tmp_path) -> Params:
    """Params with a private MLflow store; the process-wide tracking URI is restored afterwards."""
    import mlflow

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="tiny", prepared_dir=str(tmp_path / "data"))
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    previous = mlflow.get_tracking_uri()
    yield load_params(tmp_path / "params.yaml")
    mlflow.set_tracking_uri(previous)


def stage_process(params_file: Path) -> tuple[subprocess.Popen, str]:
    """A process inside a stage run; returns it and the run's id."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's coaug, whatever the venv has installed
    process = subprocess.Popen(
        [sys.executable, "-c", STAGE_PROCESS, str(params_file)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def status(params: Params, run_id: str) -> str:
    return configure_mlflow(params.mlflow, params.dataset).MlflowClient().get_run(run_id).info.status


def test_a_run_killed_with_9_is_marked_killed_at_the_next_stage_start(params, tmp_path):
    process, killed = stage_process(tmp_path / "params.yaml")
    process.kill()
    assert process.wait() == -signal.SIGKILL
    assert status(params, killed) == "RUNNING"  # kill -9 ends nothing

    # Runs still RUNNING that must be left so: a live process here, and a process on another machine.
    client = configure_mlflow(params.mlflow, params.dataset).MlflowClient()
    experiment = client.get_experiment_by_name("tiny").experiment_id
    alive = client.create_run(experiment, tags={"host": socket.gethostname(), "pid": str(os.getppid())}).info.run_id
    elsewhere = client.create_run(experiment, tags={"host": "another-host", "pid": "999999999"}).info.run_id

    with stage_run(params, "evaluate", []) as mlflow:
        current = mlflow.active_run().info.run_id
    assert status(params, killed) == "KILLED"
    assert [status(params, run) for run in (alive, elsewhere, current)] == ["RUNNING", "RUNNING", "FINISHED"]


def test_sigterm_ends_the_run_killed(params, tmp_path):
    process, run_id = stage_process(tmp_path / "params.yaml")
    process.terminate()
    assert process.wait() == 128 + signal.SIGTERM
    assert status(params, run_id) == "KILLED"


def run_of(params: Params, run_id: str):
    return configure_mlflow(params.mlflow, params.dataset).MlflowClient().get_run(run_id)


def test_the_experiment_is_a_classic_ml_one_and_a_kind_set_since_stays(params):
    client = configure_mlflow(params.mlflow, params.dataset).MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"

    # An experiment made before the kind was set gets it; one whose kind was chosen since keeps it.
    client.delete_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG)
    configure_mlflow(params.mlflow, params.dataset)
    assert client.get_experiment(experiment.experiment_id).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, "genai_development")
    configure_mlflow(params.mlflow, params.dataset)
    assert client.get_experiment(experiment.experiment_id).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_a_stage_run_logs_the_prepared_collection_as_its_input(params):
    with stage_run(params, "evaluate", []) as mlflow:  # not prepared yet: no dataset to name
        unprepared = mlflow.active_run().info.run_id
    assert run_of(params, unprepared).inputs.dataset_inputs == []

    checksum = hashlib.sha256(b"tiny").hexdigest()
    Path(params.dataset.prepared_dir).mkdir()
    (Path(params.dataset.prepared_dir) / "stats.json").write_text(json.dumps({"checksum": checksum}))
    contexts = {}
    for split in (None, "corpus"):
        with stage_run(params, "index", [], split=split) as mlflow:
            contexts[split] = mlflow.active_run().info.run_id
    for split, run_id in contexts.items():
        (logged,) = run_of(params, run_id).inputs.dataset_inputs
        assert (logged.dataset.name, logged.dataset.digest) == ("tiny", checksum[:8])
        assert (logged.dataset.source_type, json.loads(logged.dataset.source)) == (
            "local", {"uri": params.dataset.prepared_dir}
        )  # fmt: skip
        context = split or params.dataset.eval_split
        assert {tag.key: tag.value for tag in logged.tags} == {"mlflow.data.context": context}


DVC_YAML = """
stages:
  evaluate:
    foreach: ${systems}
    do:
      cmd: coaug evaluate --system ${key}
      outs:
        - ${outputs.indexes_dir}/${key}
      metrics:
        - ${outputs.metrics_dir}/${key}.json:
            cache: false
"""


def dvc_build_md5(path: Path, odb_dir: Path) -> str:
    """The md5 DVC's own code (dvc_data) computes for ``path`` when it commits a stage's outputs."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    _, _, obj = build(HashFileDB(fs, str(odb_dir)), str(path), fs, "md5", dry_run=True)
    return obj.hash_info.value


def test_a_stage_run_by_dvc_ends_tagged_with_the_md5s_dvc_lock_records(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    system = next(iter(params.systems))
    index, metrics = Path(params.outputs.indexes_dir) / system, Path(params.outputs.metrics_dir) / f"{system}.json"

    with stage_run(params, "evaluate", []) as mlflow:  # not run by DVC: nothing goes to dvc.lock
        outside_dvc = mlflow.active_run().info.run_id
    assert DVC_OUTS_TAG not in run_of(params, outside_dvc).data.tags

    monkeypatch.setenv("DVC_STAGE", f"evaluate@{system}")
    with stage_run(params, "evaluate", []) as mlflow:
        (index / "segments").mkdir(parents=True)
        (index / "segments" / "_0.cfs").write_bytes(b"\x00\x01postings")
        (index / "meta.json").write_text('{"docs": 5}\n')
        metrics.parent.mkdir()
        metrics.write_text('{"NDCG@10": 0.5}\n')
        run_id = mlflow.active_run().info.run_id
    tags = run_of(params, run_id).data.tags
    assert tags["dvc_stage"] == f"evaluate@{system}"
    assert json.loads(tags[DVC_OUTS_TAG]) == {
        str(index): dvc_build_md5(index, tmp_path / "odb"),
        str(metrics): hashlib.md5(metrics.read_bytes()).hexdigest(),
    }


def test_the_outputs_of_every_stage_are_those_dvc_resolves(tmp_path):
    from dvc.repo import Repo

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    repo = Repo.init(str(tmp_path), no_scm=True)
    resolved = {stage.name: [str(out.def_path) for out in stage.outs] for stage in repo.index.stages}
    params = load_params(tmp_path / "params.yaml")
    assert resolved
    assert {stage: dvc_outs(tmp_path / "dvc.yaml", stage, params) for stage in resolved} == resolved
