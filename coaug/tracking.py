"""MLflow wiring shared by every stage: sqlite store under mlruns/, one experiment per dataset.

Each stage run carries tags for the git commit, the prepared dataset's checksum and the DVC stage
(``DVC_STAGE`` is set by ``dvc repro``), logs the prepared collection as its input (MLflow's Dataset column)
and, run by DVC, ends with the md5 that dvc.lock records for each output of its stage. A flow may pass
``COAUG_MLFLOW_PARENT_RUN_ID`` so stage runs nest under its run. The experiment is a classic ML one
(``mlflow.experimentKind``), not a GenAI one.

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
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from coaug import params as P, runtime_env
from coaug.locks import pid_alive
from coaug.params_schema import Dataset, Mlflow, Params

logger = logging.getLogger(__name__)

PARENT_RUN_ENV = "COAUG_MLFLOW_PARENT_RUN_ID"
DVC_STAGE_ENV = "DVC_STAGE"  # set by `dvc repro` for the stage's command: `evaluate@bm25_flat`
HOST_TAG, PID_TAG = "host", "pid"
DVC_OUTS_TAG = "dvc_outs_md5"
EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI shows every experiment as its GenAI or its "Model training" switch says (GenAI until the browser
# picks the other), whatever the kind tag; a link with this query opens the runs table, and the browser keeps it.
ML_WORKFLOW_QUERY = "?workflowType=machine_learning"
UNPREPARED = "unprepared"
# The dataset input's digest: the checksum's first characters, as many as in MLflow's own dataset digests (it
# caps them at 36), so that the runs table shows it whole beside the split; the dataset_checksum tag holds all.
DATASET_DIGEST_CHARS = 8
# MLflow caps a param value at 6000 characters; longer values (lists of systems) are truncated.
MAX_PARAM_CHARS = 6000


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dataset_checksum(dataset: Dataset) -> str:
    stats = Path(dataset.prepared_dir) / "stats.json"
    return json.loads(stats.read_text())["checksum"] if stats.is_file() else UNPREPARED


def params_hash(params: Params) -> str:
    """A digest of every knob, tagged on registered policies: bookkeeping, like the other tags of this module."""
    text = json.dumps(dataclasses.asdict(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    experiment = mlflow.get_experiment_by_name(name)
    # The kind tells MLflow's clients and UIs that read it that this is no GenAI experiment (3.17's UI goes by its
    # own switch instead: ML_WORKFLOW_QUERY).
    if experiment is None:
        artifacts = Path(store.artifact_root).resolve() / name
        tags = {EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT}
        mlflow.create_experiment(name, artifact_location=artifacts.as_uri(), tags=tags)
    elif EXPERIMENT_KIND_TAG not in experiment.tags:  # made before coaug set the kind; a kind chosen in the UI stays
        client = mlflow.MlflowClient()
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT)
    mlflow.set_experiment(name)
    return mlflow


@contextlib.contextmanager
def stage_run(
    params: Params,
    stage: str,
    logged_sections: list[str],
    extra_params: dict[str, Any] | None = None,
    split: str | None = None,
) -> Iterator[Any]:
    """An MLflow run for one stage, with its params sections (and ``extra_params``) logged, the standard tags
    set and the prepared collection logged as its input, in the context ``split`` (default: the eval split).
    Runs of the experiment left RUNNING by a dead process are marked KILLED first, and SIGTERM or Ctrl-C ends
    this one KILLED. Run by ``dvc repro``, a run that ends well is tagged with its stage's outputs' md5s."""
    mlflow = configure_mlflow(params.mlflow, params.dataset)
    dvc_stage = os.environ.get(DVC_STAGE_ENV, stage)
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
            log_dataset(mlflow, params.dataset, split or params.dataset.eval_split)
            yield mlflow
            if DVC_STAGE_ENV in os.environ:
                # DVC writes dvc.lock after the command exits, so the run computes the md5s DVC is about to record.
                outs = {path: dvc_md5(Path(path)) for path in dvc_outs(Path("dvc.yaml"), dvc_stage, params)}
                mlflow.set_tag(DVC_OUTS_TAG, json.dumps(outs, sort_keys=True))
        except (Terminated, KeyboardInterrupt):
            mlflow.end_run("KILLED")  # not FAILED: nothing went wrong in the stage, it was stopped
            raise


def log_dataset(mlflow, dataset: Dataset, split: str) -> None:
    """Log the prepared collection as the run's input, by name, digest and split (as its context), without
    reading it: the Dataset column of MLflow's runs table. Nothing is logged before ``coaug prepare`` made it."""
    checksum = dataset_checksum(dataset)
    if checksum == UNPREPARED:
        return
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.meta_dataset import MetaDataset

    # Named by its type: resolving a bare path finds two equal local sources and warns.
    source = get_dataset_source_from_json(json.dumps({"uri": dataset.prepared_dir}), "local")
    digest = checksum[:DATASET_DIGEST_CHARS]
    mlflow.log_input(MetaDataset(source, name=dataset.name, digest=digest), context=split)


def dvc_outs(dvc_yaml: Path, dvc_stage: str, params: Params) -> list[str]:
    """The paths DVC records in dvc.lock for ``dvc_stage`` (``name`` or ``name@key`` of a foreach): its outs,
    metrics and plots, with ``${...}`` filled from ``params`` and the foreach ``key``/``item``."""
    name, _, key = dvc_stage.partition("@")
    stage = yaml.safe_load(dvc_yaml.read_text())["stages"][name]
    context = dataclasses.asdict(params)
    if key:
        context.update(key=key, item=_interpolate_value(stage["foreach"], context)[key])
        stage = stage["do"]
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return [_interpolate(next(iter(entry)) if isinstance(entry, dict) else entry, context) for entry in entries]


_REFERENCE = re.compile(r"\$\{([^}]+)\}")


def _lookup(reference: str, context: dict[str, Any]) -> Any:
    """``outputs.indexes_dir`` or ``train.curve_systems[1]`` in ``context``."""
    value: Any = context
    for part in re.findall(r"[^.\[\]]+", reference.strip()):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _interpolate_value(text: str, context: dict[str, Any]) -> Any:
    """A string that is one ``${...}`` is the value itself (a dict to loop over), as in DVC."""
    whole = _REFERENCE.fullmatch(text)
    return _lookup(whole.group(1), context) if whole else _interpolate(text, context)


def _interpolate(text: str, context: dict[str, Any]) -> str:
    return _REFERENCE.sub(lambda match: str(_lookup(match.group(1), context)), text)


def dvc_md5(path: Path) -> str:
    """The md5 dvc.lock records for an output: a file's md5, or for a folder the md5 of DVC's listing of its
    files (sorted ``{"md5", "relpath"}`` entries as JSON) with ``.dir`` appended (dvc_data's ``Tree.digest``)."""
    if not path.is_dir():
        return _file_md5(path)
    files = [f for f in path.rglob("*") if f.is_file()]
    entries = [{"md5": _file_md5(f), "relpath": f.relative_to(path).as_posix()} for f in files]
    listing = json.dumps(sorted(entries, key=lambda entry: entry["relpath"]), sort_keys=True)
    return hashlib.md5(listing.encode()).hexdigest() + ".dir"


def _file_md5(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


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
            logger.warning(
                "MLflow run %s (%s) was left RUNNING by pid %s, which is gone: marking it KILLED",
                run.info.run_id,
                run.info.run_name,
                tags[PID_TAG],
            )
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
