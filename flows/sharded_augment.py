"""Corpus augmentation sharded across Prefect tasks, before the DVC ``augment`` stage runs.

Each task runs ``coaug augment --name N --shard I/K`` as a subprocess in the project, so the generation
work happens in the worker's own process (and on its GPU); the task runner decides where tasks run:
threads here (``local``), a Dask cluster (``dask``) or a Ray cluster (``ray``). The shards only fill the
augmentation cache; the DVC stage that follows absorbs them and writes the outputs (coaug.augment.shards).
Workers of a remote cluster must see the project at the same path (a shared volume), since the shard
cache files are where the stage looks for them.

    python -m flows.sharded_augment --repo . --name untrained --shards 4 --task-runner dask
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from coaug import params as P
from coaug.errors import CoaugError

TASK_RUNNERS = ("local", "dask", "ray")
# Stages whose command is `coaug augment --name <key>` (dvc.yaml foreach over augmentations).
AUGMENT_STAGES = ("augment", "augment_trained")
LOG_TAIL_LINES = 20
LOOPBACK = "127.0.0.1"
DASK_DASHBOARD_PORT = 8787


class ShardFailed(RuntimeError):
    pass


def make_task_runner(kind: str, address: str | None, shards: int):
    """The Prefect task runner for ``augment.task_runner``; ``address`` names a running cluster (None
    starts a local one)."""
    if kind == "local":
        return ThreadPoolTaskRunner(max_workers=shards)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(shards))
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise CoaugError("task_runner 'ray' needs `pip install prefect-ray`") from None
        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise CoaugError(f"task_runner must be one of {', '.join(TASK_RUNNERS)}, got '{kind}'")


def local_cluster_kwargs(shards: int) -> dict:
    """The ``LocalCluster`` arguments of a cluster started for ``shards`` tasks, reachable from this machine only."""
    return {
        # Tasks only wait on their subprocess: in-process worker threads are enough (they talk inproc://).
        "n_workers": shards,
        "threads_per_worker": 1,
        "processes": False,
        # What still opens TCP ports, the dashboard (Dask's usual port) and each worker's HTTP server, is
        # unauthenticated: loopback only, not Dask's default of every interface.
        "dashboard_address": f"{LOOPBACK}:{DASK_DASHBOARD_PORT}",
        "worker_dashboard_address": f"{LOOPBACK}:0",
    }


def shard_command(python: str, params_file: str, name: str, index: int, shards: int) -> list[str]:
    return [
        python,
        "-m",
        "coaug.cli",
        "--params",
        params_file,
        "augment",
        "--name",
        name,
        "--shard",
        f"{index}/{shards}",
    ]


def augmentation_name(stage: str) -> str | None:
    """``augment@untrained`` -> ``untrained``; None for a stage that is no augmentation."""
    kind, _, name = stage.partition("@")
    return name if kind in AUGMENT_STAGES and name else None


# The cache of coaug.augment.run decides what is left to generate; Prefect must run the task every time.
@task(cache_policy=NO_CACHE, task_run_name="augment-{name}-shard-{index}-of-{shards}")
def augment_shard(repo: str, params_file: str, name: str, index: int, shards: int, log_dir: str) -> str:
    """Generate one shard in a subprocess, its output in ``log_dir``; returns the log's path."""
    log_path = Path(repo, log_dir, f"augment-{name}-shard-{index}-of-{shards}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = shard_command(sys.executable, params_file, name, index, shards)
    with log_path.open("w", encoding="utf-8") as log:
        code = subprocess.run(command, cwd=repo, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    logger = get_run_logger()
    if code != 0:
        with log_path.open(encoding="utf-8") as log:
            logger.error("".join(deque(log, maxlen=LOG_TAIL_LINES)))
        raise ShardFailed(f"shard {index}/{shards} of {name} failed with exit code {code}; log: {log_path}")
    logger.info("shard %d/%d of %s done; log: %s", index, shards, name, log_path)
    return str(log_path)


@flow(name="coaug-sharded-augment")
def augment_shards(
    repo: str, name: str, shards: int, params_file: str = "params.yaml", log_dir: str = "logs"
) -> list[str]:
    """Submit one task per shard to the flow's task runner and wait for all of them."""
    futures = [augment_shard.submit(repo, params_file, name, index, shards, log_dir) for index in range(shards)]
    return [future.result() for future in futures]


def sharded_augment(
    repo: str,
    name: str,
    shards: int,
    task_runner: str = "local",
    address: str | None = None,
    params_file: str = "params.yaml",
    log_dir: str = "logs",
) -> list[str]:
    """Run the ``shards`` shards of augmentation ``name`` on the chosen task runner (a sub-flow when called
    from a flow); returns the shard logs."""
    runner = make_task_runner(task_runner, address, shards)
    # Absolute, so that a worker of a remote cluster finds the project on its shared volume.
    root = str(Path(repo).resolve())
    return augment_shards.with_options(task_runner=runner)(root, name, shards, params_file, log_dir)


def augment_stage_shards(repo: str, stage: str, params_file: str = "params.yaml", log_dir: str = "logs") -> list[str]:
    """Before ``dvc repro <stage>``: shard its augmentation when ``augment.shards`` > 1 (else do nothing);
    returns the shard logs."""
    name = augmentation_name(stage)
    if name is None:
        return []
    augment = P.load_params(Path(repo) / params_file).augment
    if augment.shards <= 1:
        return []
    return sharded_augment(
        repo, name, augment.shards, augment.task_runner, augment.runner_address, params_file, log_dir
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate an augmentation's shards as parallel Prefect tasks.")
    parser.add_argument("--repo", default=".", help="project root (default: .)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    parser.add_argument("--name", required=True, help="a key of `augmentations` in params.yaml")
    parser.add_argument("--shards", type=int, help="shard count (default: augment.shards)")
    parser.add_argument("--task-runner", choices=TASK_RUNNERS, help="default: augment.task_runner")
    parser.add_argument("--address", help="Dask scheduler or Ray address (default: augment.runner_address)")
    args = parser.parse_args()
    augment = P.load_params(Path(args.repo) / args.params).augment
    sharded_augment(
        args.repo,
        args.name,
        args.shards or augment.shards,
        args.task_runner or augment.task_runner,
        args.address or augment.runner_address,
        args.params,
    )


if __name__ == "__main__":
    main()
