"""Reruns of a train variant on a tiny local model: a checkpoint is resumed only into the run params describe,
and two runs of one variant take turns, from the first step to the registration."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading

import pytest
import torch

from coaug.params import load_params
from coaug.registry.register import DIGEST_TAG, folder_sha256
from coaug.rl import trainer as trainer_module
from coaug.rl.checkpoint import all_checkpoints, load_state
from coaug.rl.config import train_config
from coaug.rl.run import resume_refusal

from ..conftest import REPO
from .test_run import mlflow_client, params, rerun_warnings, run_training, tiny_project, weights  # noqa: F401

SETTINGS = {"learning_rate": 0.01, "code": "c0ffee"}


def test_a_shorter_rerun_trains_afresh_instead_of_resuming_a_longer_run(params, tmp_path, caplog):
    params["train"]["steps"] = 3
    run_training(params, lambda *_: None, lambda *_: None)
    checkpoints = tmp_path / "ckpt" / "coaug"
    after_two_steps = weights(checkpoints / "step-000002" / "model")  # kept: keep_checkpoints is 2

    params["train"]["steps"] = 2
    rerun_steps = []
    with caplog.at_level(logging.WARNING, logger="coaug.rl.run"):
        summary = run_training(params, lambda step, _: rerun_steps.append(step), lambda *_: None)
    assert rerun_warnings(caplog) == [
        f"{checkpoints / 'step-000003'} is at step 3, past the 2 steps of this run (train.steps 2): starting from "
        "step 0; its checkpoints are deleted"
    ]
    assert rerun_steps == [0, 1] and summary["steps"] == 2
    assert json.loads((tmp_path / "reports" / "coaug.json").read_text())["steps"] == 2
    assert [load_state(checkpoint)["step"] for checkpoint in all_checkpoints(checkpoints)] == [1, 2]
    # The saved policy is the one two steps train (training is deterministic), not the 3-step one.
    saved = weights(tmp_path / "models" / "coaug")
    assert saved.keys() == after_two_steps.keys() and all(torch.equal(saved[k], after_two_steps[k]) for k in saved)


@pytest.mark.parametrize(
    ("checkpoint_step", "steps", "epochs", "refusal"),
    [
        (3, 2, 5, "is at step 3, past the 2 steps of this run (train.steps 2)"),
        (4, 30, 1, "is at step 4, past the 3 steps of this run (train.epochs 1 x 3 steps per epoch)"),
        (3, 3, 5, None),  # the run's last step: resumed, nothing left to train
        (1, 3, 5, None),  # a longer run continues a shorter one
    ],
)
def test_a_checkpoint_past_the_runs_steps_is_refused_naming_the_setting(checkpoint_step, steps, epochs, refusal):
    committed = REPO / "params.yaml"
    config = dataclasses.replace(train_config(load_params(committed), "coaug", committed), steps=steps, epochs=epochs)
    state = {"step": checkpoint_step, "settings": SETTINGS}
    assert resume_refusal(state, SETTINGS, config, steps_per_epoch=3) == refusal
    other = {**SETTINGS, "learning_rate": 0.001}
    assert (
        resume_refusal(state, other, config, steps_per_epoch=3)
        == "was trained with other settings (learning_rate 0.01 -> 0.001)"
    )


def test_two_runs_of_a_variant_take_turns_and_register_one_version(params, tmp_path, monkeypatch, lock_waits, caplog):
    """The second run waits for the first's lock, then resumes its last checkpoint, trains no step and finds the
    policy registered: one version, not two of the same weights."""
    from coaug.cli import main

    tiny_project(params, tmp_path, monkeypatch)
    trained: list[tuple[str, int]] = []  # (thread, step) of every step either run trains
    second_exit: list[int] = []
    second = threading.Thread(target=lambda: second_exit.append(main(["train"])), name="second")
    real_step = trainer_module.CoaugTrainer.step

    def step(self, number: int):
        if second.ident is None:  # the first run, before its first step: start the second and let it block
            second.start()
            assert lock_waits.wait(timeout=120), "the second run did not wait for the first"
        trained.append((threading.current_thread().name, number))
        return real_step(self, number)

    monkeypatch.setattr(trainer_module.CoaugTrainer, "step", step)
    caplog.set_level(logging.INFO, logger="coaug")
    assert main(["train"]) == 0
    second.join(timeout=600)

    assert second_exit == [0]
    assert trained == [("MainThread", 0), ("MainThread", 1)]
    messages = [(r.threadName, r.getMessage()) for r in caplog.records]
    lock = tmp_path / "ckpt" / ".coaug.lock"
    assert [m for m in messages if m[1].startswith("waiting for")] == [
        ("second", f"waiting for {lock}: held by another run (pid {os.getpid()})")
    ]
    last = tmp_path / "ckpt" / "coaug" / "step-000002"
    assert ("second", f"resumed from {last} at step 2") in messages
    versions = mlflow_client(params).search_model_versions("name='coaug-policy'")
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].tags[DIGEST_TAG] == folder_sha256(tmp_path / "models" / "coaug")
    assert ("second", "registered coaug-policy version 1 as @challenger") in messages
    assert not lock.exists()
