"""The coaug pipeline as Prefect flows: DVC stages in DAG order, one task each, one at a time.

``pipeline`` reproduces every stage (or only ``targets`` and what they depend on); ``evaluate_and_promote``
is the on-demand path up to the ``promote`` stage. Each flow run opens one MLflow parent run and every
stage's MLflow run nests under it. Run without a server (Prefect starts a temporary local one) or against
``PREFECT_API_URL``::

    python -m flows.pipeline --repo . --retries 1
    python -m flows.pipeline --target promote
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from coaug.params import load_params
from flows.dvc_stages import run_stage, stage_order
from flows.mlflow_parent import ParentRun, parent_run
from flows.sharded_augment import augment_stage_shards

LOG_TAIL_LINES = 40
PROMOTE_STAGE = "promote"


def artifact_key(prefix: str, stage: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")


class StageFailed(RuntimeError):
    pass


# DVC is the cache: Prefect must run the task every time and let `dvc repro` decide what to skip.
@task(cache_policy=NO_CACHE, task_run_name="dvc-{stage}")
def dvc_stage(repo: str, stage: str, log_dir: str, env: dict[str, str]) -> str:
    logger = get_run_logger()
    log_path = Path(log_dir) / f"{stage.replace('@', '-')}.log"
    code, tail = run_stage(repo, stage, log_path, LOG_TAIL_LINES, logger.info, env)
    create_markdown_artifact(
        key=artifact_key("log", stage),
        markdown=f"### `dvc repro {stage}` (exit {code})\n\nFull log: `{log_path}`\n\n```\n{tail}\n```\n",
        description=f"last {LOG_TAIL_LINES} log lines of {stage}",
    )
    if code != 0:
        raise StageFailed(f"stage {stage} failed with exit code {code}; log: {log_path}")
    return tail


@flow(name="coaug-pipeline", log_prints=True)
def pipeline(
    repo: str = ".",
    retries: int = 1,
    retry_delay_seconds: float = 10.0,
    log_dir: str = "logs",
    targets: list[str] | None = None,
) -> list[str]:
    """Reproduce the DVC stages of ``repo`` (all, or ``targets`` and their upstream) in dependency order and
    publish the results table."""
    logger = get_run_logger()
    log_dir_path = Path(log_dir) if Path(log_dir).is_absolute() else Path(repo) / log_dir
    stages = stage_order(repo, targets)
    logger.info("stages in order: %s", ", ".join(stages))
    tags = {"prefect_flow_run_id": str(runtime.flow_run.id), "prefect_flow": runtime.flow_run.flow_name}
    with parent_run(repo, f"flow-{runtime.flow_run.name}", tags) as parent:
        create_link_artifact(
            key="mlflow-run",
            link=parent.url,
            link_text="MLflow parent run",
            description="this flow run's MLflow run; stage runs nest under it",
        )
        logger.info("MLflow parent run %s: %s", parent.run_id, parent.url)
        for stage in stages:
            # augment.shards > 1: the augmentation's shards run first as parallel tasks; the stage then only merges.
            augment_stage_shards(repo, stage, log_dir=str(log_dir_path))
            # Calling tasks one after another (not .submit) keeps exactly one DVC command running.
            dvc_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)(
                repo, stage, str(log_dir_path), parent.stage_env()
            )
        publish_results(repo, parent)
    return stages


@flow(name="coaug-evaluate-promote", log_prints=True)
def evaluate_and_promote(
    repo: str = ".", retries: int = 1, retry_delay_seconds: float = 10.0, log_dir: str = "logs"
) -> list[str]:
    """On demand: bring the ``promote`` stage and everything it depends on up to date (DVC skips what is
    unchanged), i.e. evaluate @challenger and move @champion if it wins."""
    return pipeline(repo, retries, retry_delay_seconds, log_dir, targets=[PROMOTE_STAGE])


def publish_results(repo: str, parent: ParentRun) -> None:
    reports = Path(repo) / load_params(Path(repo) / "params.yaml").outputs.reports_dir
    sections = [f"MLflow run: [{parent.run_id}]({parent.url})"]
    if (reports / "promotion.json").is_file():
        sections.append(f"**Promotion:** {json.loads((reports / 'promotion.json').read_text())['reason']}")
    if (reports / "results.md").is_file():
        sections.append((reports / "results.md").read_text())
    create_markdown_artifact(key="coaug-results", markdown="\n\n".join(sections), description="retrieval results")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the coaug DVC pipeline as a Prefect flow.")
    parser.add_argument("--repo", default=".", help="DVC project root (default: .)")
    parser.add_argument("--retries", type=int, default=1, help="retries per stage (default: 1)")
    parser.add_argument("--retry-delay", type=float, default=10.0, help="seconds between retries")
    parser.add_argument("--log-dir", default="logs", help="stage logs, relative to --repo (default: logs)")
    parser.add_argument(
        "--target",
        action="append",
        dest="targets",
        help="run only this stage and its upstream (repeatable; default: every stage)",
    )
    args = parser.parse_args()
    pipeline(
        repo=args.repo,
        retries=args.retries,
        retry_delay_seconds=args.retry_delay,
        log_dir=args.log_dir,
        targets=args.targets,
    )


if __name__ == "__main__":
    main()
