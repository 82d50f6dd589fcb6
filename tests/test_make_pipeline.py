"""The README's main command, `make pipeline`, from a clean shell: no venv on PATH, every stage completes.

DVC runs each stage's ``coaug ...`` command through the caller's PATH, so a shell without the venv
activated used to fail at the first stage (``coaug: command not found``). The Makefile of this checkout
runs the pipeline of a tiny project copy (tests/tiny_project.py) with a minimal PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from .conftest import REPO, TINY_BEIR
from .test_flow import EXPECTED_ORDER
from .tiny_project import make_project

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


def test_make_pipeline_runs_every_stage_without_an_activated_venv(tmp_path):
    project = make_project(tmp_path / "project", TINY_BEIR)
    environment = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
    assert subprocess.run(["bash", "-c", "command -v coaug dvc"], env=environment, capture_output=True).returncode != 0

    done = subprocess.run(["make", "-f", str(REPO / "Makefile"), "pipeline"], cwd=project, env=environment,
                          capture_output=True, text=True)  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # `coaug plan` said up front what would run (no durations recorded in the tiny project).
    assert f"dvc repro will run {len(EXPECTED_ORDER)} stage(s); durations as recorded on no machine yet" in done.stdout
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert sorted(locked) == sorted(EXPECTED_ORDER)
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=project, capture_output=True, text=True)
    assert "up to date" in status.stdout
    plan = subprocess.run([sys.executable, "-m", "coaug.cli", "plan"], cwd=project, capture_output=True, text=True)
    assert plan.stdout == "dvc repro: every stage is up to date, nothing to run\n"
