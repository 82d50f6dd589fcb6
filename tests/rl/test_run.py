"""Two RL steps on a tiny local model: every parameter moves, every metric is logged, resume is exact and
only under the settings the checkpoint was trained with."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate import Accelerator
from safetensors.torch import load_file

from coaug import params as P
from coaug.errors import CoaugError
from coaug.params_schema import typed_params
from coaug.retrieval.retrievers import build_index
from coaug.rl import config as train_settings, run as train, trainer as trainer_module
from coaug.rl.checkpoint import all_checkpoints, load_state
from coaug.rl.trainer import shuffled_within_roles

from ..conftest import REPO, TINY_BEIR
from ..tiny_models import build_tiny_word_llama

STEP_METRICS = {
    "reward_query_mean",
    "reward_query_std",
    "reward_positive_doc_mean",
    "reward_positive_doc_std",
    "reward_negative_doc_mean",
    "reward_negative_doc_std",
    "ndcg_in_batch",
    "format_valid_rate",
    "response_tokens",
    "advantage_nonzero",
    "generated_tokens_per_s",
    "generation_seconds",
    "update_seconds",
    "step_seconds",
    "step_cpu_seconds",
    "loss",
    "clip_fraction",
    "grad_norm",
    "entropy",
    "kl_to_initial",
    "skipped_nonfinite",
    "skipped_update",
    "optimizer_steps",
    "reward_seconds",
    "ndcg_index",
}
PROXY_METRICS = {"proxy_spearman_query", "proxy_spearman_doc"}


@pytest.fixture
def params(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(TINY_BEIR, data)
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nQ1\tD5\t1\nQ2\tD2\t1\nQ4\tD3\t1\n")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nQ3\tD4\t1\nQ2\tD1\t1\nQ1\tD5\t2\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["prepared_dir"] = str(data)
    params["policy"].update(model=str(build_tiny_word_llama(tmp_path / "tiny")), cache_dir=str(tmp_path / "policies"))
    params["augment"].update(prompts_dir=str(REPO / "prompts"), doc_max_tokens=16)
    params["train"].update(
        steps=2,
        queries_per_step=3,
        k_pos=1,
        k_randneg=2,
        rollouts=3,
        max_new_tokens=12,
        learning_rate=1e-2,
        checkpoint_every=1,
        sample_every=1,
        generation_batch_size=8,
        mini_batches=2,
        micro_batch_size=4,
        kl_every=2,
        validation_batches=1,
        eval_every=0,
    )
    params["train_outputs"] = {
        "checkpoints_dir": str(tmp_path / "ckpt"),
        "policies_dir": str(tmp_path / "models"),
        "reports_dir": str(tmp_path / "reports"),
    }
    # The real index of the index reward and the dev curve: BM25 flat over the tiny corpus, built for real.
    params["systems"]["bm25_flat"].update(corpus=str(data / "corpus.jsonl"), queries=str(data / "queries.jsonl"))
    params["outputs"]["indexes_dir"] = str(tmp_path / "indexes")
    params["train"].update(reward_system="bm25_flat", curve_systems=["bm25_flat"])
    typed = typed_params(params)
    build_index(P.system(typed, "bm25_flat"), tmp_path / "indexes" / "bm25_flat", typed.bm25, typed.dense)
    return params


def run_training(params, log_step, log_samples, variant="coaug"):
    typed = typed_params(params)
    config, outputs = train_config(params, variant), train_settings.variant_outputs(typed.train_outputs, variant)
    return train.run_training(
        variant,
        config,
        outputs,
        typed.dataset,
        typed.policy,
        typed.augment,
        typed.dense,
        train.real_indexes(typed, config.reward_system, config.curve_systems),
        log_step,
        log_samples,
    )


def run_validation(params, variant, policy):
    typed = typed_params(params)
    config = dataclasses.replace(train_config(params, variant), policy=policy)
    indexes = train.real_indexes(typed, config.reward_system, config.curve_systems)
    return train.run_validation(config, typed.dataset, typed.policy, typed.augment, typed.dense, indexes)


def train_config(params, variant):
    """As `coaug train` builds it: from the params written to a file, whose lines a problem names."""
    source = Path(params["dataset"]["prepared_dir"]).parent / "params.yaml"
    source.write_text(yaml.safe_dump(params, sort_keys=False))
    return train_settings.train_config(P.load_params(source), variant, source)


def mlflow_client(params):
    from coaug.tracking import configure_mlflow

    typed = typed_params(params)
    return configure_mlflow(typed.mlflow, typed.dataset).MlflowClient()


def weights(folder):
    return {k: v for shard in sorted(folder.glob("*.safetensors")) for k, v in load_file(shard).items()}


def test_two_steps_change_every_parameter_and_log_every_metric(params, tmp_path):
    logged, samples = {}, []
    summary = run_training(
        params, lambda step, m: logged.setdefault(step, m), lambda step, rows: samples.append((step, rows))
    )
    assert sorted(logged) == [0, 1]
    # The KL metric is measured every kl_every (2) steps; at step 0 the policy is still the initial one (the
    # old log-probs were recorded while sampling, the initial policy's recomputed: equal to float rounding).
    # The in-batch reward's agreement with the index reward is logged where some text's rollouts differ on both.
    assert set(logged[0]) - PROXY_METRICS == STEP_METRICS and set(logged[1]) - PROXY_METRICS == STEP_METRICS - {
        "kl_to_initial"
    }
    assert logged[0]["kl_to_initial"] == pytest.approx(0.0, abs=1e-10)
    assert logged[0]["skipped_update"] == logged[1]["skipped_update"] == 0.0
    assert [step for step, _ in samples] == [0, 1]
    # 3 queries x (1 text + 1 positive + 2 negatives) x 3 rollouts
    assert len(samples[0][1]) == 36
    before, after = weights(tmp_path / "tiny"), weights(tmp_path / "models" / "coaug")
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []
    assert summary["steps"] == 2
    assert summary["optimizer_steps"] == 4  # 2 mini-batches a step
    assert (tmp_path / "reports" / "coaug.curves.csv").read_text().count("\n") == 3


def test_resume_continues_step_count_and_optimizer_state_exactly(params, tmp_path):
    run_training(params, lambda *_: None, lambda *_: None)
    straight = weights(tmp_path / "models" / "coaug")

    shutil.rmtree(tmp_path / "ckpt" / "coaug")
    params["train"]["steps"] = 1
    run_training(params, lambda *_: None, lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "ckpt" / "coaug").iterdir()) == ["step-000001"]
    params["train"]["steps"] = 2
    resumed_steps = []
    run_training(params, lambda step, _: resumed_steps.append(step), lambda *_: None)
    assert resumed_steps == [1]
    resumed = weights(tmp_path / "models" / "coaug")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def rerun_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "coaug.rl.run" and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("change", "difference"),
    [({"learning_rate": 1e-3}, "learning_rate 0.01 -> 0.001"), ({"q_only": True}, "q_only False -> True")],
)
def test_a_rerun_with_other_settings_starts_from_step_0_instead_of_resuming(
    params, tmp_path, caplog, change, difference
):
    run_training(params, lambda *_: None, lambda *_: None)
    params["train"].update(change)
    rerun_steps = []
    with caplog.at_level(logging.WARNING, logger="coaug.rl.run"):
        run_training(params, lambda step, _: rerun_steps.append(step), lambda *_: None)
    assert rerun_steps == [0, 1]
    assert rerun_warnings(caplog) == [
        f"{tmp_path / 'ckpt' / 'coaug' / 'step-000002'} was trained with other settings ({difference}): starting from step 0; "
        "its checkpoints are deleted"
    ]
    # What is left is this run's own: the old checkpoints were not mixed in.
    [key] = change
    states = [load_state(checkpoint) for checkpoint in all_checkpoints(tmp_path / "ckpt" / "coaug")]
    assert [s["step"] for s in states] == [1, 2] and all(s["settings"][key] == change[key] for s in states)


def test_a_checkpoint_without_recorded_settings_is_not_resumed(params, tmp_path, caplog):
    params["train"]["steps"] = 1
    run_training(params, lambda *_: None, lambda *_: None)
    state_file = tmp_path / "ckpt" / "coaug" / "step-000001" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({k: v for k, v in state.items() if k not in ("settings", "settings_hash")}))
    rerun_steps = []
    with caplog.at_level(logging.WARNING, logger="coaug.rl.run"):
        run_training(params, lambda step, _: rerun_steps.append(step), lambda *_: None)
    assert rerun_steps == [0]
    assert rerun_warnings(caplog) == [
        f"{state_file.parent} was trained with other settings (none recorded): starting from step 0; its checkpoints are deleted"
    ]


def tiny_project(params, tmp_path, monkeypatch) -> None:
    """params.yaml of a scratch project with its own MLflow store, as ``coaug train`` reads it."""
    params["dataset"]["name"] = "tiny"
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)


def test_train_command_logs_curves_and_registers_a_challenger(params, tmp_path, monkeypatch):
    from coaug.cli import main
    from coaug.policy.model import load_policy
    from coaug.registry.register import folder_sha256

    params["train"].update(steps=1, eval_every=1)
    tiny_project(params, tmp_path, monkeypatch)
    assert main(["train"]) == 0

    client = mlflow_client(params)
    version = client.get_model_version_by_alias("coaug-policy", "challenger")
    assert str(version.version) == "1"
    assert set(version.tags) == {"git_commit", "dataset_checksum", "params_hash", "policy_sha256"}
    assert version.tags["policy_sha256"] == folder_sha256(tmp_path / "models" / "coaug")
    run = client.get_run(version.run_id)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "ndcg_in_batch")] == [0]
    # Validation of the untrained policy (step 0) and after the one step.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_ndcg_in_batch")] == [0, 1]
    assert "loss" in run.data.metrics and run.data.tags["dvc_stage"] == "train@coaug"
    assert run.data.tags["train_variant"] == "coaug" and run.data.params["variant.reward_control"] == "none"
    # Integer summary values are logged too.
    assert run.data.metrics["final.skipped_updates"] == 0 and run.data.metrics["final.optimizer_steps"] == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"coaug.json", "coaug.curves.csv", "coaug.validation.csv", "coaug.curves.png", "samples"} <= artifacts
    registered = load_policy("models:/coaug-policy@challenger", tmp_path / "policies")
    trained = load_policy(str(tmp_path / "models" / "coaug"), tmp_path / "policies")
    mine, theirs = trained.model.state_dict(), registered.model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_train_command_fails_and_registers_nothing_when_no_update_was_applied(params, tmp_path, monkeypatch, capsys):
    from coaug.cli import main

    # Every advantage 0 (as when each text's rollouts all earn the same reward): every update is skipped.
    monkeypatch.setattr(trainer_module, "compute_advantages", lambda rewards, *_, **__: np.zeros(len(rewards)))
    tiny_project(params, tmp_path, monkeypatch)
    assert main(["train"]) == 2

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("coaug train:")]
    assert errors == [
        "coaug train: error: no optimizer step was applied in 2 training steps (2 updates skipped with every "
        "advantage 0): the policy is unchanged and not registered"
    ]
    client = mlflow_client(params)
    assert client.search_model_versions("name='coaug-policy'") == []
    [run] = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.metrics["final.skipped_updates"] == 2 and run.data.metrics["final.optimizer_steps"] == 0


def test_lora_trains_adapters_and_saves_a_merged_model(params, tmp_path):
    params["train"].update(
        steps=1,
        lora={"enabled": True, "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    )
    logged = {}
    run_training(params, lambda step, m: logged.setdefault(step, m), lambda *_: None)
    assert logged[0]["skipped_update"] == 0.0
    assert logged[0]["kl_to_initial"] == pytest.approx(0.0, abs=1e-10)  # adapters disabled: the initial policy
    before, after = weights(tmp_path / "tiny"), weights(tmp_path / "models" / "coaug")
    assert before.keys() == after.keys()  # merged: a plain model folder, no adapter weights
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(("q_proj" in n or "v_proj" in n) for n in changed)


@pytest.mark.parametrize(("ablation", "fixed_role"), [("q_only", "positive"), ("k_only", "query")])
def test_ablations_keep_one_side_unaugmented(params, ablation, fixed_role):
    params["train"].update(steps=1, **{ablation: True})
    samples = []
    run_training(params, lambda *_: None, lambda step, rows: samples.extend(rows))
    fixed = [row for row in samples if row[0] == fixed_role]
    assert fixed and all(augmentation == "" for _, _, augmentation, _ in fixed)
    other = [row for row in samples if row[0] != fixed_role and (row[0] == "query") == (ablation == "q_only")]
    assert any(augmentation for _, _, augmentation, _ in other)


def test_validation_scores_the_untrained_policy_at_step_0_and_any_policy_alike(params, tmp_path):
    params["train"].update(eval_every=1)
    logged = {}
    summary = run_training(params, lambda step, m: logged.setdefault(step, {}).update(m), lambda *_: None)
    val_keys = {
        "val_ndcg_in_batch",
        "val_reward_query_mean",
        "val_reward_positive_doc_mean",
        "val_reward_negative_doc_mean",
        "dev_ndcg.bm25_flat",
    }
    # After 0, 1 and 2 updates; logged at the step whose policy was scored.
    assert all(val_keys <= set(logged[step]) for step in (0, 1, 2)) and set(logged[2]) == val_keys
    # The real-index dev curve: one point per evaluation, over the 3 judged dev queries.
    curve = (tmp_path / "reports" / "coaug.dev_curve.csv").read_text().splitlines()
    assert curve[0] == "step,bm25_flat" and [row.split(",")[0] for row in curve[1:]] == ["0", "1", "2"]
    assert summary["dev_queries"] == 3
    assert summary["dev_ndcg_step0.bm25_flat"] == logged[0]["dev_ndcg.bm25_flat"]
    assert summary["dev_ndcg_final.bm25_flat"] == logged[2]["dev_ndcg.bm25_flat"]
    rows = (tmp_path / "reports" / "coaug.validation.csv").read_text().splitlines()
    assert (
        rows[0]
        == "step,val_ndcg_in_batch,val_reward_query_mean,val_reward_positive_doc_mean,val_reward_negative_doc_mean"
    )
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    # One batch of the 3 dev queries; quarters of 3 evaluations are 1 evaluation each.
    assert summary["val_evaluations"] == 3 and summary["val_queries"] == 3
    assert summary["val_ndcg_step0"] == summary["val_ndcg_first_quarter"] == logged[0]["val_ndcg_in_batch"]
    assert summary["val_ndcg_last_quarter"] == logged[2]["val_ndcg_in_batch"]
    # The same numbers for the starting and the saved policy, scored outside training (`coaug validate`).
    untrained = run_validation(params, "coaug", str(tmp_path / "tiny"))
    trained = run_validation(params, "coaug", str(tmp_path / "models" / "coaug"))
    assert untrained["val_ndcg_in_batch"] == logged[0]["val_ndcg_in_batch"]
    assert trained["val_ndcg_in_batch"] == logged[2]["val_ndcg_in_batch"]
    assert np.mean(list(untrained["dev"]["bm25_flat"].values())) == logged[0]["dev_ndcg.bm25_flat"]
    assert np.mean(list(trained["dev"]["bm25_flat"].values())) == logged[2]["dev_ndcg.bm25_flat"]
    assert sorted(trained["per_query"]) == ["Q1", "Q2", "Q3"]


def test_validation_needs_a_prepared_split_other_than_the_eval_split(params, tmp_path):
    params["train"].update(eval_every=1, validation_split="test")
    with pytest.raises(CoaugError, match="train.validation_split 'test' is the eval split"):
        run_training(params, lambda *_: None, lambda *_: None)
    params["train"]["validation_split"] = "other"
    with pytest.raises(CoaugError, match="no qrels for train.validation_split 'other': add it to dataset.splits"):
        run_training(params, lambda *_: None, lambda *_: None)


def test_the_control_samples_and_scores_the_same_step_but_learns_from_shuffled_rewards(params, tmp_path):
    params["train"]["steps"] = 1
    real = run_training(params, lambda step, m: None, lambda *_: None)
    real_weights = weights(tmp_path / "models" / "coaug")
    params["train_variants"]["control"] = {"reward_control": "shuffled"}
    control_logged = {}
    control = run_training(params, lambda step, m: control_logged.update(m), lambda *_: None, variant="control")
    # Same policy, batch and rollouts: the same rewards; only their assignment to rollouts differs.
    assert control["ndcg_in_batch_first"] == real["ndcg_in_batch_first"]
    assert control_logged["optimizer_steps"] == 2.0
    control_weights = weights(tmp_path / "models" / "control")
    assert any(not torch.equal(real_weights[k], control_weights[k]) for k in real_weights)
    assert (tmp_path / "ckpt" / "control").is_dir() and (tmp_path / "reports" / "control.json").is_file()


@pytest.fixture
def scored(monkeypatch):
    """``with_entropy`` of every scoring call the trainer makes (True only for the pass before the update)."""
    calls = []
    recompute = trainer_module.completion_scores
    monkeypatch.setattr(
        trainer_module, "completion_scores", lambda *a, **kw: calls.append(kw["with_entropy"]) or recompute(*a, **kw)
    )
    return calls


def test_old_logprobs_recorded_while_sampling_give_the_update_of_recomputed_ones(params, scored):
    params["train"].update(steps=1, dtype="float32")  # auto would pick bf16 on a CPU with native bf16
    logged = {}
    for setting in ("auto", "recompute"):  # auto: recorded, as the update computes in float32
        params["train"]["old_logprobs"] = setting
        run_training(params, lambda step, m: logged.update({setting: m}), lambda *_: None)
        assert scored.count(True) == (
            1 if setting == "recompute" else 0
        )  # the scoring pass before the first mini-batch
    for metric in ("loss", "grad_norm", "entropy", "clip_fraction", "kl_to_initial"):
        assert logged["auto"][metric] == pytest.approx(logged["recompute"][metric], abs=1e-5), metric
    assert logged["auto"]["reward_query_mean"] == logged["recompute"]["reward_query_mean"]  # the same rollouts


def test_old_logprobs_are_recomputed_when_the_update_computes_in_bf16(params, scored):
    params["train"].update(steps=1, dtype="bfloat16", old_logprobs="auto")
    run_training(params, lambda *_: None, lambda *_: None)
    assert scored.count(True) == 1  # bf16 rollouts sample in other arithmetic than the update: one scoring pass


def test_rollouts_with_zero_advantage_are_not_back_propagated_and_change_nothing(params, tmp_path, monkeypatch):
    """The update scores only rollouts with a non-zero advantage; scoring every one (as under DDP) gives the
    same gradient."""
    # float32: old log-probs recorded, not scored; one mini-batch: one gradient, taken from the same weights.
    params["train"].update(steps=1, dtype="float32", kl_every=0, mini_batches=1)
    select, score, clip = trainer_module.gradient_rows, trainer_module.completion_scores, Accelerator.clip_grad_norm_
    scored, gradients = [], []
    monkeypatch.setattr(
        trainer_module, "completion_scores", lambda m, seqs, **kw: scored.append(len(seqs)) or score(m, seqs, **kw)
    )

    def recording_clip(self, parameters, *args):
        parameters = list(parameters)
        gradients.append([p.grad.clone() for p in parameters])
        return clip(self, parameters, *args)

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", recording_clip)
    rows, nonzero = {}, {}
    for name, every_row in (("nonzero", False), ("every", True)):
        monkeypatch.setattr(
            trainer_module, "gradient_rows", lambda adv, keep=every_row, **_: select(adv, every_row=keep)
        )
        params["train_outputs"].update(checkpoints_dir=str(tmp_path / name), policies_dir=str(tmp_path / name))
        logged, scored[:] = {}, []
        run_training(params, lambda step, m: logged.update(m), lambda *_: None)
        rows[name], nonzero[name] = sum(scored), logged["advantage_nonzero"]
    assert nonzero["nonzero"] == nonzero["every"] == 33 / 36  # the same step: 3 of its 36 rollouts carry no advantage
    assert (rows["nonzero"], rows["every"]) == (33, 36)
    (skipping,), (every,) = gradients[:1], gradients[1:]
    for mine, reference in zip(skipping, every, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-8)


def test_a_kl_penalty_scores_every_rollout_against_the_initial_policy(params, tmp_path, monkeypatch):
    params["train"].update(steps=1, dtype="float32", kl_every=0)  # old log-probs recorded: no scoring pass for them
    score, scored = trainer_module.completion_scores, []
    monkeypatch.setattr(
        trainer_module, "completion_scores", lambda m, seqs, **kw: scored.append(len(seqs)) or score(m, seqs, **kw)
    )
    rows, trained = {}, {}
    for coef in (0.0, 1.0):
        name = f"kl{coef}"
        params["train"]["kl_coef"] = coef
        params["train_outputs"].update(checkpoints_dir=str(tmp_path / name), policies_dir=str(tmp_path / name))
        scored[:] = []
        run_training(params, lambda *_: None, lambda *_: None)
        rows[coef], trained[coef] = sum(scored), weights(tmp_path / name / "coaug")
    # Without: the 33 rollouts with an advantage. With: the initial policy scores all 36, and all 36 are updated.
    assert rows == {0.0: 33, 1.0: 72}
    # The first mini-batch starts at the initial weights (no KL gradient yet); the second is pulled back.
    assert any(not torch.equal(trained[0.0][k], trained[1.0][k]) for k in trained[0.0])


def test_an_unknown_old_logprobs_setting_fails(params):
    params["train"]["old_logprobs"] = "vllm"
    with pytest.raises(CoaugError, match=r": train\.old_logprobs: must be one of auto, recompute, got 'vllm'$"):
        train_config(params, "coaug")


def test_shuffled_within_roles_permutes_each_role_apart():
    rewards = np.array([0.1, 0.2, 0.3, 1.0, 2.0, 3.0, 4.0])
    roles = np.array([0, 0, 0, 1, 1, 2, 2])
    shuffled = shuffled_within_roles(rewards, roles, np.random.default_rng(0))
    for role in (0, 1, 2):
        assert sorted(shuffled[roles == role]) == sorted(rewards[roles == role])
    expected = rewards.copy()
    rng = np.random.default_rng(0)
    for role in (0, 1, 2):
        where = np.flatnonzero(roles == role)
        expected[where] = rewards[rng.permutation(where)]
    assert shuffled.tolist() == expected.tolist() and shuffled.tolist() != rewards.tolist()


def test_a_variant_overrides_train_and_unknown_names_fail(params):
    params["train_variants"] = {"coaug": {"reward_control": "none"}, "qonly": {"q_only": True}}
    assert train_config(params, "qonly").q_only and not train_config(params, "coaug").q_only
    with pytest.raises(CoaugError, match="unknown train variant 'nope' \\(train_variants has coaug, qonly\\)"):
        train_config(params, "nope")
    params["train_variants"]["qonly"] = {"q_onyl": True}
    with pytest.raises(CoaugError, match=r": train_variants\.qonly\.q_onyl: unknown key \(did you mean q_only\?\)$"):
        train_config(params, "qonly")
    params["train_variants"]["coaug"]["reward_control"] = "reversed"
    with pytest.raises(
        CoaugError, match=r": train_variants\.coaug\.reward_control: must be one of none, shuffled, got 'reversed'$"
    ):
        train_config(params, "coaug")


def test_validate_command_scores_a_registered_version_and_logs_it(params, tmp_path, monkeypatch, capsys):
    from coaug.cli import main

    params["train"].update(steps=1, eval_every=1)
    tiny_project(params, tmp_path, monkeypatch)
    assert main(["train"]) == 0
    capsys.readouterr()
    assert main(["validate", "--policy", "models:/coaug-policy@challenger"]) == 0
    printed = json.loads(capsys.readouterr().out)
    trained = json.loads((tmp_path / "reports" / "coaug.json").read_text())
    # The registered version is the trained policy: its score is the one training logged after its last step.
    assert printed["val_ndcg_in_batch"] == pytest.approx(trained["val_ndcg_last_quarter"], abs=1e-12)
    assert sorted(printed["per_query"]) == ["Q1", "Q2", "Q3"]
    client = mlflow_client(params)
    [run] = [
        r
        for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
        if r.data.tags["coaug_stage"] == "validate"
    ]
    assert run.data.params["policy"] == "models:/coaug-policy@challenger"
    assert run.data.metrics["val_ndcg_in_batch"] == printed["val_ndcg_in_batch"]


def test_the_dense_setting_trains_with_the_dense_reward_and_validates_with_it(params, tmp_path):
    params["dense"]["cache_dir"] = str(tmp_path / "embeddings")
    params["train"].update(steps=1, eval_every=1)
    params["train_variants"]["dense_reward"] = {
        "similarity": "dense",
        "query_prompt": "dense_query",
        "doc_prompt": "dense_doc",
    }
    logged = {}
    summary = run_training(
        params, lambda step, m: logged.setdefault(step, {}).update(m), lambda *_: None, variant="dense_reward"
    )
    assert summary["optimizer_steps"] == 2 and summary["val_evaluations"] == 2
    # Cosine similarities of MiniLM embeddings rank the batch: NDCG values in (0, 1].
    assert 0 < logged[0]["ndcg_in_batch"] <= 1 and 0 < logged[1]["val_ndcg_in_batch"] <= 1
    assert (tmp_path / "models" / "dense_reward" / "config.json").is_file()
