"""The coaug pipeline as a Prefect flow: every DVC stage in DAG order, one task each, one at a time.

Run it without a server (Prefect starts a temporary local one) or against ``PREFECT_API_URL``::

    python -m flows.pipeline --repo . --retries 1
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.dvc_stages import run_stage, stage_order

LOG_TAIL_LINES = 40


def artifact_key(prefix: str, stage: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")


class StageFailed(RuntimeError):
    pass


# DVC is the cache: Prefect must run the task every time and let `dvc repro` decide what to skip.
@task(cache_policy=NO_CACHE, task_run_name="dvc-{stage}")
def dvc_stage(repo: str, stage: str, log_dir: str) -> str:
    logger = get_run_logger()
    log_path = Path(log_dir) / f"{stage.replace('@', '-')}.log"
    code, tail = run_stage(repo, stage, log_path, LOG_TAIL_LINES, logger.info)
    create_markdown_artifact(
        key=artifact_key("log", stage),
        markdown=f"### `dvc repro {stage}` (exit {code})\n\nFull log: `{log_path}`\n\n```\n{tail}\n```\n",
        description=f"last {LOG_TAIL_LINES} log lines of {stage}",
    )
    if code != 0:
        raise StageFailed(f"stage {stage} failed with exit code {code}; log: {log_path}")
    return tail


@flow(name="coaug-pipeline", log_prints=True)
def pipeline(repo: str = ".", retries: int = 1, retry_delay_seconds: float = 10.0, log_dir: str = "logs") -> list[str]:
    """Reproduce every DVC stage of ``repo`` in dependency order and publish the results table."""
    logger = get_run_logger()
    log_dir_path = Path(log_dir) if Path(log_dir).is_absolute() else Path(repo) / log_dir
    stages = stage_order(repo)
    logger.info("stages in order: %s", ", ".join(stages))
    for stage in stages:
        # Calling tasks one after another (not .submit) keeps exactly one DVC command running.
        dvc_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)(repo, stage, str(log_dir_path))
    publish_results(repo)
    return stages


def publish_results(repo: str) -> None:
    import yaml

    params = yaml.safe_load((Path(repo) / "params.yaml").read_text())
    table = Path(repo) / params["outputs"]["reports_dir"] / "results.md"
    if table.is_file():
        create_markdown_artifact(key="coaug-results", markdown=table.read_text(), description="retrieval results")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the coaug DVC pipeline as a Prefect flow.")
    parser.add_argument("--repo", default=".", help="DVC project root (default: .)")
    parser.add_argument("--retries", type=int, default=1, help="retries per stage (default: 1)")
    parser.add_argument("--retry-delay", type=float, default=10.0, help="seconds between retries")
    parser.add_argument("--log-dir", default="logs", help="stage logs, relative to --repo (default: logs)")
    args = parser.parse_args()
    pipeline(repo=args.repo, retries=args.retries, retry_delay_seconds=args.retry_delay, log_dir=args.log_dir)


if __name__ == "__main__":
    main()
