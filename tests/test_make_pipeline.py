"""The README's main command, `make pipeline`, from a clean shell: no venv on PATH, every stage of the main job
completes, and with a DVC remote its results travel to a fresh clone; `make experiments` then runs the rest.

DVC runs each stage's ``coaug ...`` command through the caller's PATH, so a shell without the venv
activated used to fail at the first stage (``coaug: command not found``). The Makefile of this checkout
runs the pipeline of a tiny project copy (tests/tiny_project.py) with a minimal PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, TINY_BEIR
from .flows.test_pipeline import EXPECTED_ORDER
from .tiny_project import make_project

pytestmark = pytest.mark.long

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
UP_TO_DATE = "make pipeline: every stage is up to date, nothing to run\n"
# No system of the tiny project uses these passes, so the main job leaves them to `make experiments`.
EXPERIMENTS_ONLY = ["augment@doc2query", "augment@query2doc"]
MAIN_JOB = [stage for stage in EXPECTED_ORDER if stage not in EXPERIMENTS_ONLY]
# What a user keeps out of git: caches, the MLflow store, training checkpoints.
GITIGNORE = ".cache/\nmlruns/\nprefect-home/\ncheckpoints/\nlogs/\ntiny-policy/\n"


def clean_environment(home: Path) -> dict[str, str]:
    return {"HOME": os.environ.get("HOME", str(home)), "PATH": CLEAN_PATH, "LANG": "C.UTF-8"}


def make_pipeline(project: Path, environment: dict[str, str], target: str = "pipeline") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-f", str(REPO / "Makefile"), target],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
    )


def git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@localhost", "-c", "user.name=t", *args],
        cwd=project,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A tiny project with a local-directory DVC remote, after one `make pipeline` in a clean shell."""
    root = tmp_path_factory.mktemp("make_pipeline")
    project = make_project(root / "project", TINY_BEIR)
    (project / ".gitignore").write_text(GITIGNORE)
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "-q", "-d", "shared", str(root / "remote")],
        cwd=project,
        check=True,
    )
    environment = clean_environment(root)
    assert subprocess.run(["bash", "-c", "command -v coaug dvc"], env=environment, capture_output=True).returncode != 0
    done = make_pipeline(project, environment)
    return root, project, environment, done


def coaug_plan(project: Path, *options: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "coaug.cli", "plan", *options], cwd=project, capture_output=True, text=True
    ).stdout


def test_make_pipeline_runs_the_main_job_without_an_activated_venv(pushed):
    _, project, _, done = pushed

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # `coaug plan --main` said up front what would run (no durations recorded in the tiny project).
    assert f"make pipeline will run {len(MAIN_JOB)} stage(s); durations as recorded on no machine yet" in done.stdout
    rest = "make experiments would then run 2 more stage(s), outside main_job: ~0 s + 2 stage(s) never recorded\n"
    assert rest in done.stdout
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert sorted(locked) == sorted(MAIN_JOB)
    assert coaug_plan(project, "--main") == UP_TO_DATE + rest
    # The report, run after the rest of the main job, takes every system's metrics as current by dvc.lock.
    reported = json.loads((project / "reports" / "summary.json").read_text())
    assert sorted(reported) == sorted(s.split("@")[1] for s in MAIN_JOB if s.startswith("evaluate"))


def test_a_fresh_clone_pulls_the_results_and_reproduces_nothing(pushed):
    root, project, environment, done = pushed
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "tiny pipeline run")
    git(root, "clone", "-q", str(project), "clone")
    clone = root / "clone"
    assert not (clone / "models" / "coaug").exists()

    again = make_pipeline(clone, environment)

    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert UP_TO_DATE in again.stdout
    assert "Running stage" not in again.stdout
    # The trained policy and the served bundle arrived with the pull, byte for byte.
    for folder in ("models/coaug", "serving", "data/tiny", "metrics"):
        assert tree(clone / folder) == tree(project / folder), folder


def test_make_experiments_then_runs_the_rest(pushed):
    _, project, environment, _ = pushed

    done = make_pipeline(project, environment, "experiments")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "dvc repro will run 2 stage(s)" in done.stdout
    assert sorted(yaml.safe_load((project / "dvc.lock").read_text())["stages"]) == sorted(EXPECTED_ORDER)
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=project, capture_output=True, text=True)
    assert "up to date" in status.stdout
    assert coaug_plan(project) == "dvc repro: every stage is up to date, nothing to run\n"
    assert coaug_plan(project, "--main") == UP_TO_DATE + "make experiments: nothing more to run\n"


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
