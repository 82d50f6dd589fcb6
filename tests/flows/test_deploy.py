"""The deployments of prefect.yaml on a real local Prefect server: a worker picks up a triggered run and
completes it; background processes are stopped by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from ..conftest import REPO, TINY_BEIR
from ..tiny_project import make_project

SERVER_START_SECONDS = 120
STOP_SECONDS = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def background(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group and stop the whole group afterwards (a Prefect worker may
    ignore the first SIGTERM, and the server spawns children)."""
    with log.open("w") as handle:
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(STOP_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue


def wait_healthy(api: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prefect server exited:\n{log.read_text()}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise AssertionError(f"prefect server not healthy after {SERVER_START_SECONDS} s:\n{log.read_text()}")


def deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python -m flows.deploy ARGS``, as a user runs it (Prefect reads its settings at start-up)."""
    return subprocess.run(
        [sys.executable, "-m", "flows.deploy", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


@pytest.fixture
def prefect_env(tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }


def test_triggered_deployment_runs_on_a_worker(prefect_env, tmp_path):
    project = make_project(tmp_path / "project", TINY_BEIR)
    api = prefect_env["PREFECT_API_URL"]
    prefect = [sys.executable, "-m", "prefect"]
    server_cmd = [*prefect, "server", "start", "--host", "127.0.0.1", "--port", api.split(":")[-1].split("/")[0]]
    with background(server_cmd, prefect_env, tmp_path / "server.log") as server:
        wait_healthy(api, server, tmp_path / "server.log")
        applied = deploy(prefect_env, "apply", "--repo", str(REPO))
        assert applied.returncode == 0, applied.stderr
        unknown = deploy(prefect_env, "run", "coaug-pipeline/nope")
        assert (unknown.returncode, unknown.stderr.strip()) == (
            2,
            f"flows.deploy: error: no deployment named 'coaug-pipeline/nope' on {api}: run `python -m flows.deploy apply` first",
        )
        worker_cmd = [*prefect, "worker", "start", "--pool", "coaug-process", "--type", "process"]
        with background(worker_cmd, prefect_env, tmp_path / "worker.log"):
            ran = deploy(prefect_env, "run", "coaug-pipeline/weekly-retrain", "--param", f"repo={project}",
                         "--param", 'targets=["prepare"]', "--timeout", "600")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr + (tmp_path / "worker.log").read_text()
    assert ran.stdout.strip().endswith("coaug-pipeline/weekly-retrain: COMPLETED")
    assert (project / "data" / "tiny" / "stats.json").is_file()
    # The flow's MLflow parent run holds the stage's run.
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["tiny"], output_format="list")
    parents = [r for r in runs if r.info.run_name.startswith("flow-")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    stages = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert [r.data.tags["dvc_stage"] for r in stages] == ["prepare"]


def test_unreachable_server_is_one_clear_error(prefect_env):
    dead = prefect_env["PREFECT_API_URL"]  # nothing listens on this fresh port
    result = deploy(prefect_env, "run", "coaug-pipeline/weekly-retrain")
    assert result.returncode == 2
    assert result.stderr.startswith(f"flows.deploy: error: Prefect server at {dead} is unreachable (ConnectError")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_api_url_is_one_clear_error(prefect_env):
    result = deploy({**prefect_env, "PREFECT_API_URL": ""}, "apply")
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "flows.deploy: error: PREFECT_API_URL is not set: start `prefect server start --host 127.0.0.1` and "
        "export PREFECT_API_URL=http://127.0.0.1:4200/api",
    )
