"""No MLflow run stays RUNNING once its process is gone: SIGTERM ends it KILLED, and after kill -9 the next
stage start marks it KILLED (only runs of this host whose pid is dead)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coaug.params import load_params
from coaug.params_schema import Params
from coaug.tracking import configure_mlflow, stage_run

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
    params["mlflow"].update(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    previous = mlflow.get_tracking_uri()
    yield load_params(tmp_path / "params.yaml")
    mlflow.set_tracking_uri(previous)


def stage_process(params_file: Path) -> tuple[subprocess.Popen, str]:
    """A process inside a stage run; returns it and the run's id."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's coaug, whatever the venv has installed
    process = subprocess.Popen(
        [sys.executable, "-c", STAGE_PROCESS, str(params_file)], cwd=REPO, env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
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
