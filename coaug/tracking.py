"""MLflow wiring shared by every stage: sqlite store under mlruns/, one experiment per dataset.

Each stage run carries tags for the git commit, the prepared dataset's checksum and the DVC stage
(``DVC_STAGE`` is set by ``dvc repro``). A flow may pass ``COAUG_MLFLOW_PARENT_RUN_ID`` so stage runs
nest under its run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coaug import params as P, runtime_env

PARENT_RUN_ENV = "COAUG_MLFLOW_PARENT_RUN_ID"
# MLflow caps a param value at 6000 characters; longer values (lists of systems) are truncated.
MAX_PARAM_CHARS = 6000


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dataset_checksum(params: dict[str, Any]) -> str:
    stats = Path(P.get(params, "dataset.prepared_dir")) / "stats.json"
    return json.loads(stats.read_text())["checksum"] if stats.is_file() else "unprepared"


def configure_mlflow(params: dict[str, Any]):
    """Point MLflow at the project's store and select the dataset's experiment."""
    runtime_env.configure()
    import mlflow

    uri = P.get(params, "mlflow.tracking_uri")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    name = P.get(params, "dataset.name")
    if mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(P.get(params, "mlflow.artifact_root")).resolve() / name
        mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)
    return mlflow


@contextlib.contextmanager
def stage_run(
    params: dict[str, Any], stage: str, logged_sections: list[str], extra_params: dict[str, Any] | None = None
) -> Iterator[Any]:
    """An MLflow run for one stage, with its params sections (and ``extra_params``) logged and the
    standard tags set."""
    mlflow = configure_mlflow(params)
    dvc_stage = os.environ.get("DVC_STAGE", stage)
    parent = os.environ.get(PARENT_RUN_ENV)
    tags = {
        "git_commit": git_commit(),
        "dataset_checksum": dataset_checksum(params),
        "dvc_stage": dvc_stage,
        "coaug_stage": stage,
    }
    if parent:
        tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(run_name=dvc_stage, tags=tags):
        logged = {}
        for section in logged_sections:
            logged.update(P.flatten({section: P.get(params, section)}))
        logged.update(extra_params or {})
        mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in logged.items()})
        yield mlflow
