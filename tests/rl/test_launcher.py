"""`coaug train` relaunches itself through `accelerate launch` when train.num_processes > 1."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from coaug.errors import CoaugError
from coaug.params_schema import typed_params
from coaug.rl.config import train_config
from coaug.rl.launcher import is_main_process, launch_command, needs_launch

from ..conftest import REPO


def test_launch_command():
    assert launch_command("/venv/bin/python", 4, "exp/params.yaml", False, "coaug") == [
        "/venv/bin/python", "-m", "accelerate.commands.launch", "--num_processes", "4",
        "-m", "coaug.cli", "--params", "exp/params.yaml", "train", "--variant", "coaug",
    ]  # fmt: skip
    assert launch_command("python", 2, "params.yaml", True, "control")[-6:] == [
        "--params", "params.yaml", "--verbose", "train", "--variant", "control",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("processes", "environ", "expected"),
    [
        (1, {}, False),
        (2, {}, True),
        (8, {"PATH": "/bin", "ACCELERATE_LOG_LEVEL": "info"}, True),
        (2, {"ACCELERATE_MIXED_PRECISION": "no"}, False),
        (2, {"LOCAL_RANK": "1"}, False),
        (2, {"WORLD_SIZE": "2"}, False),
    ],
)
def test_relaunch_only_when_asked_and_not_yet_launched(processes, environ, expected):
    assert needs_launch(processes, environ) is expected


@pytest.mark.parametrize("processes", [0, -1, "2", 1.5, None])
def test_bad_process_count_is_one_line(processes):
    with pytest.raises(CoaugError) as error:
        needs_launch(processes, {})
    assert str(error.value) == f"params: train.num_processes must be an integer >= 1, got {processes!r}"


def test_num_processes_is_a_train_param():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(params["train"])[-1] == "num_processes"
    assert train_config(typed_params(params), "coaug", REPO / "params.yaml").num_processes == 1


def test_train_relaunches_once_and_a_failed_launch_is_one_line(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["num_processes"] = 2
    params["dataset"]["prepared_dir"] = str(tmp_path / "unprepared")
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "coaug.cli", "train"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    # The launched process trains (and fails on the missing data) instead of relaunching again.
    assert result.stderr.count("relaunching: ") == 1
    assert f"coaug train: error: {tmp_path}/unprepared/corpus.jsonl: file not found" in result.stderr
    assert (
        result.stderr.splitlines()[-1]
        == "coaug train: error: accelerate launch of 2 training processes exited with code 1"
    )


@pytest.mark.parametrize(("environ", "expected"), [({}, True), ({"RANK": "0"}, True), ({"RANK": "1"}, False)])
def test_only_rank_zero_logs_and_registers(environ, expected):
    assert is_main_process(environ) is expected
