"""Apply the deployments declared in prefect.yaml to a Prefect server, and trigger them.

    python -m flows.deploy apply
    python -m flows.deploy run coaug-pipeline/weekly-retrain --param 'targets=["report"]'

Both need ``PREFECT_API_URL`` (e.g. http://127.0.0.1:4200/api) pointing at a running server; a missing or
unreachable server is one clear error, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

HEALTH_TIMEOUT_SECONDS = 5.0
COMPLETED = "COMPLETED"


class DeployError(RuntimeError):
    pass


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set: start `prefect server start --host 127.0.0.1` and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url.rstrip("/")


def check_server() -> str:
    url = api_url()
    try:
        httpx.get(f"{url}/health", timeout=HEALTH_TIMEOUT_SECONDS).raise_for_status()
    except httpx.HTTPError as exc:
        raise DeployError(
            f"Prefect server at {url} is unreachable ({type(exc).__name__}: {exc}); "
            "start it with `prefect server start --host 127.0.0.1` or fix PREFECT_API_URL"
        ) from None
    return url


def work_pools(prefect_file: Path) -> set[str]:
    config = yaml.safe_load(prefect_file.read_text())
    return {deployment["work_pool"]["name"] for deployment in config["deployments"]}


def apply(repo: Path) -> None:
    """Create the work pools prefect.yaml names (type process) if missing, then deploy everything in it."""
    check_server()
    prefect = [sys.executable, "-m", "prefect"]
    for pool in sorted(work_pools(repo / "prefect.yaml")):
        exists = (
            subprocess.run([*prefect, "work-pool", "inspect", pool], cwd=repo, capture_output=True).returncode == 0
        )
        if not exists:
            subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], cwd=repo, check=True)
    subprocess.run([*prefect, "--no-prompt", "deploy", "--all"], cwd=repo, check=True)


def trigger(name: str, parameters: dict, timeout: float | None) -> str:
    """Run deployment ``name`` (``flow-name/deployment-name``), wait for it, return its final state name."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    check_server()
    try:
        flow_run = run_deployment(name, parameters=parameters, timeout=timeout, as_subflow=False)
    except ObjectNotFound:
        raise DeployError(
            f"no deployment named '{name}' on {api_url()}: run `python -m flows.deploy apply` first"
        ) from None
    return flow_run.state.type.value if flow_run.state else "UNKNOWN"


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` where value is JSON when it parses as JSON, else a plain string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise DeployError(f"--param {text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    apply_cmd = sub.add_parser("apply", help="create the work pool and every deployment of prefect.yaml")
    apply_cmd.add_argument("--repo", default=".", help="project root holding prefect.yaml (default: .)")
    run_cmd = sub.add_parser("run", help="trigger a deployment and wait for its final state")
    run_cmd.add_argument("name", help="flow-name/deployment-name, e.g. coaug-pipeline/weekly-retrain")
    run_cmd.add_argument("--param", action="append", default=[], help="key=value (JSON values allowed), repeatable")
    run_cmd.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: until it ends)")
    args = parser.parse_args(argv)
    try:
        if args.command == "apply":
            apply(Path(args.repo).resolve())
            return 0
        state = trigger(args.name, dict(map(parse_param, args.param)), args.timeout)
    except DeployError as exc:
        print(f"flows.deploy: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: {state}")
    return 0 if state == COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
