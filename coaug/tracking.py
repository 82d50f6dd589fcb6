"""MLflow wiring shared by every stage: sqlite store under mlruns/, one experiment per dataset.

Each stage run carries tags for the git commit, the prepared dataset's checksum and the DVC stage
(``DVC_STAGE`` is set by ``dvc repro``). A flow may pass ``COAUG_MLFLOW_PARENT_RUN_ID`` so stage runs
nest under its run.

No run stays RUNNING after its process is gone: SIGTERM and Ctrl-C end it KILLED, and since ``kill -9``
ends nothing, each run records its host and pid, and each stage start marks KILLED the runs still RUNNING
whose process on this host has died.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coaug import params as P, runtime_env
from coaug.locks import pid_alive
from coaug.params_schema import Dataset, Mlflow, Params

logger = logging.getLogger(__name__)

PARENT_RUN_ENV = "COAUG_MLFLOW_PARENT_RUN_ID"
HOST_TAG, PID_TAG = "host", "pid"
# MLflow caps a param value at 6000 characters; longer values (lists of systems) are truncated.
MAX_PARAM_CHARS = 6000


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dataset_checksum(dataset: Dataset) -> str:
    stats = Path(dataset.prepared_dir) / "stats.json"
    return json.loads(stats.read_text())["checksum"] if stats.is_file() else "unprepared"


def params_hash(params: Params) -> str:
    """A digest of every knob, tagged on registered policies: bookkeeping, like the other tags of this module."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(params), sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_folders(store: Mlflow) -> list[Path]:
    """The local folders a stage's MLflow run writes: the artifact root and the sqlite store's folder."""
    uri = store.tracking_uri
    database = [Path(uri.removeprefix("sqlite:///")).parent] if uri.startswith("sqlite:///") else []
    return [Path(store.artifact_root), *database]


def configure_mlflow(store: Mlflow, dataset: Dataset):
    """Point MLflow at the project's store and select the dataset's experiment."""
    runtime_env.configure()
    import mlflow

    uri = store.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    name = dataset.name
    if mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(store.artifact_root).resolve() / name
        mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)
    return mlflow


@contextlib.contextmanager
def stage_run(
    params: Params, stage: str, logged_sections: list[str], extra_params: dict[str, Any] | None = None
) -> Iterator[Any]:
    """An MLflow run for one stage, with its params sections (and ``extra_params``) logged and the
    standard tags set. Runs of the experiment left RUNNING by a dead process are marked KILLED first, and
    SIGTERM or Ctrl-C ends this one KILLED."""
    mlflow = configure_mlflow(params.mlflow, params.dataset)
    dvc_stage = os.environ.get("DVC_STAGE", stage)
    parent = os.environ.get(PARENT_RUN_ENV)
    tags = {
        "git_commit": git_commit(),
        "dataset_checksum": dataset_checksum(params.dataset),
        "dvc_stage": dvc_stage,
        "coaug_stage": stage,
        **process_tags(),
    }
    if parent:
        tags["mlflow.parentRunId"] = parent
    end_dead_runs(mlflow.MlflowClient(), mlflow.get_experiment_by_name(params.dataset.name).experiment_id)
    with terminate_raises(), mlflow.start_run(run_name=dvc_stage, tags=tags):
        try:
            sections = dataclasses.asdict(params)
            logged = {}
            for section in logged_sections:
                logged.update(P.flatten({section: sections[section]}))
            logged.update(extra_params or {})
            mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in logged.items()})
            yield mlflow
        except (Terminated, KeyboardInterrupt):
            mlflow.end_run("KILLED")  # not FAILED: nothing went wrong in the stage, it was stopped
            raise


def process_tags() -> dict[str, str]:
    """Where the run's process lives, so that a later start can tell whether it is gone."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def end_dead_runs(client, experiment_id: str) -> list[str]:
    """Mark KILLED the runs of the experiment still RUNNING whose process on this host is gone; returns
    their ids. A run of another host, or without host and pid tags, is left as it is: no way to tell."""
    host = socket.gethostname()
    dead = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get(HOST_TAG) == host and tags.get(PID_TAG, "").isdigit() and not pid_alive(int(tags[PID_TAG])):
            logger.warning("MLflow run %s (%s) was left RUNNING by pid %s, which is gone: marking it KILLED",
                           run.info.run_id, run.info.run_name, tags[PID_TAG])  # fmt: skip
            client.set_terminated(run.info.run_id, "KILLED")
            dead.append(run.info.run_id)
    return dead


class Terminated(SystemExit):
    """SIGTERM, raised where the process is, so that cleanups run; exits with the shell's code 128 + 15."""


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the block (Python lets only the main thread handle signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
