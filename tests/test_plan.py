"""`coaug plan`: what `make pipeline` will run and how long each stage took on the recorded machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from coaug.errors import CoaugError
from coaug.params import load_params
from coaug.plan import estimate, format_duration, main_job_stages, main_targets, plan_text, rest_text, stage_graph

from .conftest import REPO, TINY_BEIR

# What `make experiments` adds to `make pipeline` with this repo's params: the three ablations and the dense
# setting (its untrained pass and its dense-reward policy), each trained, augmenting, indexed and evaluated.
EXPERIMENTS = {
    "train@qonly": "qonly_sparse",
    "train@donly": "donly_sparse",
    "train@group_std": "groupstd_sparse",
    "train@dense_reward": "densereward_dense",
}


def dvc_project(root: Path, params: dict) -> Path:
    """A git + DVC project with this repo's dvc.yaml and ``params``, its dataset.source the tiny BEIR copy
    ``root/beir``."""
    params["dataset"]["source"] = "beir"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def test_a_stage_without_a_record_takes_the_median_of_its_foreach_siblings():
    recorded = {"prepare": 12.0, "evaluate@a": 10.0, "evaluate@b": 30.0, "evaluate@c": 40.0, "train": 700.0}
    assert estimate(["prepare", "evaluate@b", "evaluate@new", "train@coaug"], recorded) == [
        ("prepare", 12.0),
        ("evaluate@b", 30.0),
        ("evaluate@new", 30.0),
        ("train@coaug", None),
    ]


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


def test_the_main_job_plan_names_its_command_and_then_what_make_experiments_adds():
    assert plan_text([("train@coaug", 60.0)], "x", "make pipeline").startswith("make pipeline will run 1 stage(s);")
    assert plan_text([], "x", "make pipeline") == "make pipeline: every stage is up to date, nothing to run\n"
    assert rest_text([("train@qonly", 3000.0), ("evaluate_aug@query_qonly_flat", None)]) == (
        "make experiments would then run 2 more stage(s), outside main_job: ~50 min 00 s + 1 stage(s) never recorded\n"
    )
    assert rest_text([]) == "make experiments: nothing more to run\n"


def test_the_main_job_evaluates_every_plain_system_and_those_its_passes_and_policies_make_then_promotes():
    params = load_params(REPO / "params.yaml")
    targets = main_targets(params)
    assert targets[: len(params.systems)] == [f"evaluate@{name}" for name in params.systems]
    assert targets[-1] == "promote"
    evaluated = {target.removeprefix("evaluate_aug@") for target in targets[len(params.systems) : -1]}
    made = {params.augmented_systems[name].augmentation for name in evaluated}
    assert made == {"untrained", "query2doc", "doc2query", "trained_sparse", "control_sparse"}
    assert evaluated == {name for name, entry in params.augmented_systems.items() if entry.augmentation in made}


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("augmentations", ["untrained", "untrianed"], "main_job.augmentations: unknown untrianed (defined in "),
        ("train_variants", ["coaug", "qonly", "cotnrol"], "main_job.train_variants: unknown cotnrol (defined in "),
        ("train_variants", ["control"], "promotion names both_coaug_flat, both_coaug_dense, outside the "),
    ],
    ids=["augmentation", "variant", "no-promotion"],
)
def test_a_main_job_naming_nothing_or_without_the_promoted_system_is_one_line(key, value, error, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["main_job"][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(CoaugError) as raised:
        main_targets(load_params(tmp_path / "params.yaml"))
    assert str(raised.value).startswith(f"params: {error}")


def test_make_pipeline_runs_the_main_job_then_the_report_and_leaves_the_rest_to_make_experiments(tmp_path):
    shutil.copytree(TINY_BEIR, tmp_path / "beir")
    project = dvc_project(tmp_path, yaml.safe_load((REPO / "params.yaml").read_text()))
    params = load_params(project / "params.yaml")

    main, rest = main_job_stages(project, main_targets(params))

    # A fresh project: every stage runs, once, in one of the two commands.
    with stage_graph(project) as (_, _, names):
        assert sorted(main + rest) == sorted(names.values())
    assert main[0] == "prepare" and main[-1] == "report"
    assert {"train@coaug", "train@control", "augment@untrained", "augment@doc2query", "promote"} <= set(main)
    trainings = {stage for stage in rest if stage.startswith("train@")}
    assert trainings == set(EXPERIMENTS)
    passes = {stage.split("@")[1] for stage in rest if stage.startswith("augment")}
    assert passes == {*EXPERIMENTS.values(), "untrained_denseprompt"}
    systems = {stage.split("@")[1] for stage in rest if stage.startswith("evaluate")}
    assert systems == {name for name, entry in params.augmented_systems.items() if entry.augmentation in passes}


def test_a_source_holding_a_fifo_or_a_link_loop_is_refused_in_under_a_second(tmp_path):
    # A git + DVC project whose dataset.source holds a FIFO: `dvc status` would block on it for good.
    source = shutil.copytree(TINY_BEIR, tmp_path / "beir")
    (source / "corpus.jsonl").unlink()
    os.mkfifo(source / "corpus.jsonl")
    dvc_project(tmp_path, yaml.safe_load((REPO / "params.yaml").read_text()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def plan() -> tuple[int, str, float]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "coaug.cli", "plan"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stderr, time.monotonic() - started

    code, err, seconds = plan()
    assert (code, err) == (
        2,
        "coaug plan: error: beir/corpus.jsonl: a FIFO, not a regular file: a dataset folder "
        "holds regular files only\n",
    )
    assert seconds < 1
    (source / "corpus.jsonl").unlink()
    shutil.copy(TINY_BEIR / "corpus.jsonl", source / "corpus.jsonl")
    (source / "loop").symlink_to("loop")  # beside the data
    code, err, _ = plan()
    assert (code, err) == (
        2,
        "coaug plan: error: beir/loop: cannot be read (Too many levels of symbolic links): a "
        "dataset folder holds regular files only\n",
    )
