"""One MLflow parent run per flow run; every stage run (a separate ``coaug`` process) nests under it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coaug import params as P
from coaug.params_schema import Params
from coaug.tracking import ML_WORKFLOW_QUERY, PARENT_RUN_ENV, configure_mlflow, git_commit, process_tags

SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    url: str  # the run's page in the MLflow UI

    def stage_env(self) -> dict[str, str]:
        """What a stage process needs to nest its run under this one."""
        return {PARENT_RUN_ENV: self.run_id}


def repo_params(repo: str | Path) -> Params:
    """The project's params with its MLflow store paths made absolute: the flow process does not run from
    the project root, the stage processes do, and both must open the same store."""
    root = Path(repo).resolve()
    params = P.load_params(root / "params.yaml")
    uri = params.mlflow.tracking_uri
    if uri.startswith(SQLITE_PREFIX) and not Path(uri.removeprefix(SQLITE_PREFIX)).is_absolute():
        uri = SQLITE_PREFIX + str(root / uri.removeprefix(SQLITE_PREFIX))
    store = dataclasses.replace(params.mlflow, tracking_uri=uri, artifact_root=str(root / params.mlflow.artifact_root))
    return dataclasses.replace(params, mlflow=store)


@contextlib.contextmanager
def parent_run(repo: str | Path, run_name: str, tags: dict[str, str]) -> Iterator[ParentRun]:
    """Open the parent run; it ends FINISHED when the block completes and FAILED when it raises."""
    params = repo_params(repo)
    with contextlib.chdir(repo):  # git_commit() describes the project, not the flow's working directory
        commit = git_commit()
    mlflow = configure_mlflow(params.mlflow, params.dataset)
    experiment = mlflow.get_experiment_by_name(params.dataset.name)
    client = mlflow.MlflowClient()
    # Host and pid: a flow killed with -9 leaves its run RUNNING until the next stage start sees the pid gone.
    tags = {**tags, "git_commit": commit, **process_tags()}
    run = client.create_run(experiment.experiment_id, run_name=run_name, tags=tags)
    ui = params.mlflow.ui_url.rstrip("/")
    status = "FAILED"
    try:
        url = f"{ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}{ML_WORKFLOW_QUERY}"
        yield ParentRun(run.info.run_id, url)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
