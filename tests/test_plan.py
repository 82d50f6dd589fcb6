"""`coaug plan`: what `make pipeline` will run and how long each stage took on the recorded machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import yaml

from coaug.plan import estimate, format_duration, plan_text

from .conftest import REPO, TINY_BEIR


def test_a_stage_without_a_record_takes_the_median_of_its_foreach_siblings():
    recorded = {"prepare": 12.0, "evaluate@a": 10.0, "evaluate@b": 30.0, "evaluate@c": 40.0, "train": 700.0}
    assert estimate(["prepare", "evaluate@b", "evaluate@new", "train@coaug"], recorded) == [
        ("prepare", 12.0), ("evaluate@b", 30.0), ("evaluate@new", 30.0), ("train@coaug", None),
    ]  # fmt: skip


def test_plan_text_counts_lists_and_totals_the_stages():
    text = plan_text([("prepare", 12.4), ("train@coaug", 3725.0), ("report", None)], "Intel Xeon, 2 cores")
    assert text == (
        "dvc repro will run 3 stage(s); durations as recorded on Intel Xeon, 2 cores:\n"
        "  prepare                                          12 s\n"
        "  train@coaug                                  62 min 05 s\n"
        "  report                                              ?\n"
        "  total ~62 min 17 s + 1 stage(s) never recorded\n"
    )
    assert plan_text([], "x") == "dvc repro: every stage is up to date, nothing to run\n"
    assert format_duration(59.6) == "1 min 00 s"


def test_a_source_holding_a_fifo_or_a_link_loop_is_refused_in_under_a_second(tmp_path):
    # A git + DVC project whose dataset.source holds a FIFO: `dvc status` would block on it for good.
    source = shutil.copytree(TINY_BEIR, tmp_path / "beir")
    (source / "corpus.jsonl").unlink()
    os.mkfifo(source / "corpus.jsonl")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["source"] = "beir"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def plan() -> tuple[int, str, float]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "coaug.cli", "plan"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        return done.returncode, done.stderr, time.monotonic() - started

    code, err, seconds = plan()
    assert (code, err) == (2, "coaug plan: error: beir/corpus.jsonl: a FIFO, not a regular file: a dataset folder "
                              "holds regular files only\n")  # fmt: skip
    assert seconds < 1
    (source / "corpus.jsonl").unlink()
    shutil.copy(TINY_BEIR / "corpus.jsonl", source / "corpus.jsonl")
    (source / "loop").symlink_to("loop")  # beside the data
    code, err, _ = plan()
    assert (code, err) == (2, "coaug plan: error: beir/loop: cannot be read (Too many levels of symbolic links): a "
                              "dataset folder holds regular files only\n")  # fmt: skip
