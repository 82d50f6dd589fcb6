"""The ``train`` stage, top to bottom: seed → data → policy → reward → trainer → loop → save → register.

Checkpoints every ``train.checkpoint_every`` steps; a rerun after a crash resumes from the newest one
with its step count, optimizer state and metric history. A checkpoint records the settings its weights
were trained with (:func:`checkpoint_settings`), and a rerun with other settings (a ``dvc exp run -S
train.…`` ablation: dvc.yaml keeps checkpoints across runs) starts from step 0 instead of resuming it, as does
a rerun of fewer steps than the checkpoint's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coaug import params as P
from coaug.atomic_io import atomic_directory, atomic_open, write_json
from coaug.augment.files import read_augmentations
from coaug.data.beir import read_corpus, read_qrels, read_queries
from coaug.errors import CoaugError
from coaug.evaluation.significance import paired_ttest
from coaug.params_schema import Augment, Dataset, Dense, Params, Policy as PolicySection
from coaug.policy.generation import GenerationParams
from coaug.policy.model import load_policy
from coaug.policy.prompts import load_prompt
from coaug.retrieval.lucene_bm25 import LuceneIndex
from coaug.rl.checkpoint import latest_checkpoint, load_state, remove_checkpoints, save_checkpoint
from coaug.rl.composite_batch import validation_batches
from coaug.rl.config import RUN_BOUND_FIELDS, TrainConfig
from coaug.rl.index_curve import CURVE_METRIC, CurveSystem, DevCurve, RetrievalSettings
from coaug.rl.index_reward import IndexReward
from coaug.rl.reward import corpus_idf
from coaug.rl.trainer import CoaugTrainer, bm25_similarity
from coaug.tracking import dataset_checksum

logger = logging.getLogger(__name__)

CURVE_COLUMNS = ("reward_query_mean", "reward_positive_doc_mean", "reward_negative_doc_mean", "ndcg_in_batch")
SETTINGS_HASH_HEX = 16  # as coaug.tracking.params_hash
# The coaug modules whose code decides the weights a run trains, as paths under coaug/ (dvc.yaml's train stage
# lists each as a dep).
TRAINING_CODE = (
    "data/beir.py",
    "policy/generation.py",
    "policy/model.py",
    "policy/parsing.py",
    "policy/precision.py",
    "policy/prompts.py",
    "policy/sampling.py",
    "retrieval/dense.py",
    "rl/advantages.py",
    "rl/checkpoint.py",
    "rl/composite_batch.py",
    "rl/ppo_loss.py",
    "rl/reward.py",
    "rl/reward_bm25.py",
    "rl/reward_dense.py",
    "rl/reward_layout.py",
    "rl/reward_ndcg.py",
    "rl/reward_sampling.py",
    "rl/rollouts.py",
    "rl/sequence_logprobs.py",
    "rl/run.py",
    "rl/config.py",
    "rl/trainer.py",
)
VALIDATION_STREAM = 7  # seeds the validation draw apart from the training steps' streams
VALIDATION_COLUMNS = (
    "val_ndcg_in_batch",
    "val_reward_query_mean",
    "val_reward_positive_doc_mean",
    "val_reward_negative_doc_mean",
)


@dataclass(frozen=True)
class RealIndexes:
    """The real indexes training reads: the index reward's system and the dev curve's systems, with the
    retrieval and inference-decoding settings of the pipeline (built by :func:`real_indexes`)."""

    reward_system: CurveSystem
    curve_systems: list[CurveSystem]
    settings: RetrievalSettings
    generation: GenerationParams
    batch_size: int


def real_indexes(params: Params, reward_system: str, curve_systems: list[str]) -> RealIndexes:
    """``train.reward_system`` and ``train.curve_systems`` resolved against params; fails before any work on an
    unknown system or an index reward on anything but a flat BM25 index."""

    def resolved(name: str, key: str) -> CurveSystem:
        try:
            recipe = P.system(params, name)
        except CoaugError as error:
            raise CoaugError(f"params: train.{key}: {error}") from None
        return CurveSystem(name, recipe, Path(params.outputs.indexes_dir) / name)

    reward = resolved(reward_system, "reward_system")
    if reward.recipe.retriever != "bm25_flat":
        raise CoaugError(
            f"params: train.reward_system '{reward_system}' uses {reward.recipe.retriever}: "
            "the index reward rescores documents on a bm25_flat index"
        )
    return RealIndexes(
        reward,
        [resolved(name, "curve_systems") for name in curve_systems],
        RetrievalSettings(params.retrieval, params.bm25, params.dense),
        # The augment stage's decoding (coaug.augment.run.generation_params), so step 0 is its untrained pass.
        GenerationParams(
            max_new_tokens=params.generation.max_new_tokens,
            repetition_penalty=params.generation.repetition_penalty,
            do_sample=params.generation.do_sample,
        ),
        params.augment.batch_size,
    )


def run_training(
    variant: str,
    config: TrainConfig,
    paths: dict[str, Path],
    dataset: Dataset,
    policy_params: PolicySection,
    augment: Augment,
    dense_params: Dense,
    indexes: RealIndexes,
    log_step,
    log_samples,
) -> dict[str, Any]:
    """Train ``variant`` (a key of ``train_variants``, whose settings are ``config``), calling
    ``log_step(step, metrics)`` per step (and with the validation scores at each evaluation) and
    ``log_samples(step, rows)`` every ``sample_every`` steps; returns the final summary. Writes the policy and
    curves to ``paths`` (coaug.rl.config.variant_outputs)."""
    import torch

    torch.manual_seed(config.seed)
    trainer, policy, validation = build_trainer(config, dataset, policy_params, augment, dense_params, indexes)
    curve = dev_curve(config, dataset, augment, indexes, trainer.prompts["query"]) if config.eval_every else None
    accelerator = trainer.accelerator
    logger.info("training %s computes in %s (train.dtype %s)", variant, trainer.compute_dtype, config.dtype)

    checkpoint_dir = paths["checkpoint_dir"]
    # The dtype the step computes in on this machine, not the request ("auto" differs between CPUs).
    resolved = dataclasses.replace(config, dtype=trainer.compute_dtype)
    settings = {**checkpoint_settings(resolved, policy.fingerprint, dataset_checksum(dataset)), "code": code_digest()}
    start, history, scores = resume(trainer, checkpoint_dir, settings)
    total = trainer.total_steps()

    def evaluate(after_steps: int) -> None:
        # The policy after ``after_steps`` updates; step 0 is the untrained policy.
        result = trainer.validate(validation)
        dev = curve(trainer.rollout_policy) if curve is not None and curve.systems else {}
        scores.append({"step": after_steps, **result, "dev": dev})
        log_step(
            after_steps,
            {
                **{k: v for k, v in result.items() if k != "per_query"},
                **{f"dev_ndcg.{name}": float(np.mean(list(q.values()))) for name, q in dev.items()},
            },
        )
        logger.info(
            "validation after %d steps: in-batch NDCG@10 %.4f; real-index dev NDCG@10 %s",
            after_steps,
            result["val_ndcg_in_batch"],
            {n: round(float(np.mean(list(q.values()))), 4) for n, q in dev.items()},
        )

    if config.eval_every and start == 0:
        evaluate(0)
    logger.info("training steps %d..%d of %d (%d queries/step)", start, total - 1, total, config.queries_per_step)
    for step in range(start, total):
        metrics = trainer.step(step)
        check_finite(metrics, step)
        history.append({"step": step, **metrics})
        log_step(step, metrics)
        if (step + 1) % config.sample_every == 0 or step == total - 1:
            log_samples(step, trainer._last_samples)
        if config.eval_every and ((step + 1) % config.eval_every == 0 or step == total - 1):
            evaluate(step + 1)
        # Under `accelerate launch` every process trains; only the main one writes files.
        if accelerator.is_main_process and ((step + 1) % config.checkpoint_every == 0 or step == total - 1):
            save_checkpoint(
                checkpoint_dir,
                step + 1,
                trainer.model,
                policy.tokenizer,
                trainer.optimizer,
                {
                    "history": history,
                    "validation": scores,
                    "settings": settings,
                    "settings_hash": settings_hash(settings),
                },
                keep=config.keep_checkpoints,
            )
    accelerator.wait_for_everyone()
    summary = {
        **summarise(history, config),
        **summarise_validation(scores),
        **summarise_dev_curve(scores),
        "compute_dtype": trainer.compute_dtype,
    }
    if not accelerator.is_main_process:
        return summary
    final_model = trainer.accelerator.unwrap_model(trainer.model)
    if config.lora.get("enabled"):
        final_model = final_model.merge_and_unload()
    with atomic_directory(paths["policy_dir"]) as staging:
        final_model.save_pretrained(staging, safe_serialization=True)
        policy.tokenizer.save_pretrained(staging)
    write_curves(paths["curves"], history)
    write_validation(paths["validation"], scores)
    write_dev_curve(paths["dev_curve"], scores, config.curve_systems)
    write_json(paths["metrics"], summary)
    return summary


def run_validation(
    config: TrainConfig,
    dataset: Dataset,
    policy_params: PolicySection,
    augment: Augment,
    dense_params: Dense,
    indexes: RealIndexes,
) -> dict[str, Any]:
    """The validation scores of ``config.policy`` (any policy: a folder, GGUF or registry URI such as
    models:/coaug-policy/3) on the fixed validation batches of a variant's ``config``, as training computes them,
    and its real-index dev scores (``dev``: system -> qid -> NDCG@10)."""
    trainer, _, validation = build_trainer(config, dataset, policy_params, augment, dense_params, indexes)
    curve = dev_curve(config, dataset, augment, indexes, trainer.prompts["query"])
    return {**trainer.validate(validation), "dev": curve(trainer.rollout_policy)}


def dev_curve(config: TrainConfig, dataset: Dataset, augment: Augment, indexes: RealIndexes, prompt) -> DevCurve:
    """The real-index dev curve of ``train.validation_split`` (coaug.rl.index_curve)."""
    prepared = Path(dataset.prepared_dir)
    qrels_path = validation_qrels_path(config, dataset)
    return DevCurve(
        indexes.curve_systems,
        read_queries(prepared / "queries.jsonl"),
        read_qrels(qrels_path),
        prompt,
        indexes.generation,
        indexes.batch_size,
        indexes.settings,
    )


def build_trainer(
    config: TrainConfig,
    dataset: Dataset,
    policy_params: PolicySection,
    augment: Augment,
    dense_params: Dense,
    indexes: RealIndexes,
) -> tuple[CoaugTrainer, Any, list]:
    """The trainer, its policy and the fixed validation batches (empty when ``eval_every`` is 0)."""
    import torch
    from accelerate import Accelerator

    prepared = Path(dataset.prepared_dir)
    corpus = read_corpus(prepared / "corpus.jsonl")
    queries = read_queries(prepared / "queries.jsonl")
    qrels = read_qrels(prepared / "qrels" / f"{config.split}.tsv")
    validation = validation_set(config, dataset, list(corpus)) if config.eval_every else []

    # Training keeps fp32 master weights whatever policy.dtype says; train.dtype sets the compute (autocast).
    policy = load_policy(config.policy, policy_params.cache_dir, "float32")
    # The folder the starting weights came from (a GGUF or registry spec resolved to it), for the KL metric.
    initial_dir = policy.model.name_or_path
    if config.lora.get("enabled"):
        policy.model = with_lora(policy.model, config.lora)
    prompts_dir = augment.prompts_dir
    prompts = {
        "query": load_prompt(prompts_dir, config.format, config.query_prompt),
        "doc": load_prompt(prompts_dir, config.format, config.doc_prompt),
    }
    similarity = make_similarity(config, dense_params, corpus)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())

    def load_initial():
        # Straight from the resolved folder: load_policy would also re-hash the weights and load a tokenizer.
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(initial_dir, dtype=torch.float32).to(accelerator.device)

    trainer = CoaugTrainer(
        config,
        policy,
        prompts,
        corpus,
        queries,
        qrels,
        similarity,
        accelerator,
        load_initial,
        index_reward(config, indexes, qrels, list(corpus)) if config.similarity == "bm25" else None,
    )
    return trainer, policy, validation


def index_reward(config: TrainConfig, indexes: RealIndexes, qrels, doc_ids: list[str]) -> IndexReward:
    """The index reward of ``train.reward_system`` (also the proxy check of the in-batch reward)."""
    system = indexes.reward_system
    bm25 = indexes.settings.bm25
    indexed = read_augmentations(system.recipe.doc_augmentation) if system.recipe.doc_augmentation else {}
    index = LuceneIndex(system.index_dir, bm25.k1, bm25.b)
    return IndexReward(index, qrels, system.recipe.query_repeat, indexed, doc_ids, bm25.search_threads)


def validation_set(config: TrainConfig, dataset: Dataset, doc_ids: list[str]) -> list:
    """The fixed composite batches of ``train.validation_split``, drawn once from ``train.seed``."""
    rng = np.random.default_rng([config.seed, VALIDATION_STREAM])
    return validation_batches(
        read_qrels(validation_qrels_path(config, dataset)),
        doc_ids,
        rng,
        batches=config.validation_batches,
        queries_per_batch=config.queries_per_step,
        k_pos=config.k_pos,
        k_hardneg=config.k_hardneg,
        k_randneg=config.k_randneg,
    )


def validation_qrels_path(config: TrainConfig, dataset: Dataset) -> Path:
    if config.validation_split == dataset.eval_split:
        raise CoaugError(
            f"params: train.validation_split '{config.validation_split}' is the eval split: validate on another (dev)"
        )
    path = Path(dataset.prepared_dir) / "qrels" / f"{config.validation_split}.tsv"
    if not path.is_file():
        raise CoaugError(
            f"{path}: no qrels for train.validation_split '{config.validation_split}': add it to dataset.splits "
            "and rerun `coaug prepare` (or set train.eval_every: 0)"
        )
    return path


def with_lora(model, lora: dict[str, Any]):
    from peft import LoraConfig, get_peft_model

    settings = {k: v for k, v in lora.items() if k != "enabled"}
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **settings))


def make_similarity(config: TrainConfig, dense_params: Dense, corpus):
    if config.similarity == "bm25":
        # IDF of the ORIGINAL corpus (METHOD §4), over the same "title text" the reward scores.
        return bm25_similarity(corpus_idf(f"{d['title']} {d['text']}" for d in corpus.values()))
    from coaug.retrieval.dense import Encoder
    from coaug.rl.reward import cosine_matrix

    encoder = Encoder(
        dense_params.encoder, dense_params.max_seq_length, dense_params.batch_size, dense_params.cache_dir
    )
    chunk = dense_params.cache_chunk_size
    return lambda rows, cols: cosine_matrix(
        encoder.encode(rows, "reward q", chunk), encoder.encode(cols, "reward d", chunk)
    )


def checkpoint_settings(config: TrainConfig, policy_fingerprint: str, checksum: str) -> dict[str, Any]:
    """What a checkpoint's weights were trained with: the train knobs that shape them (all but
    ``RUN_BOUND_FIELDS``), the starting policy's fingerprint and the prepared dataset's ``checksum``. As JSON
    reads it back, so it compares equal to the copy in ``state.json``."""
    knobs = {k: v for k, v in dataclasses.asdict(config).items() if k not in RUN_BOUND_FIELDS}
    settings = {**knobs, "policy_fingerprint": policy_fingerprint, "dataset_checksum": checksum}
    return json.loads(json.dumps(settings, sort_keys=True))


def code_digest() -> str:
    """sha256 of the modules that shape the trained weights (``TRAINING_CODE``): `dvc repro` reruns this
    stage after such a change, and a finished run's last checkpoint must not then be "resumed" into zero
    steps that re-register the old weights. Edits elsewhere (logging, search, reports) keep checkpoints
    resumable across sessions."""
    digest = hashlib.sha256()
    package = Path(__file__).parents[1]
    for name in sorted(TRAINING_CODE):
        digest.update(name.encode() + b"\0" + (package / name).read_bytes())
    return digest.hexdigest()[:SETTINGS_HASH_HEX]


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:SETTINGS_HASH_HEX]


def settings_changes(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """``key old -> new`` per differing setting; a checkpoint written before settings were recorded differs."""
    if recorded is None:
        return ["none recorded"]
    keys = sorted(recorded.keys() | current.keys())
    return [f"{k} {recorded.get(k)} -> {current.get(k)}" for k in keys if recorded.get(k) != current.get(k)]


def resume(
    trainer: CoaugTrainer, checkpoint_dir: Path, settings: dict[str, Any]
) -> tuple[int, list[dict], list[dict]]:
    """Load the newest checkpoint when this run may continue it (:func:`resume_refusal`); returns the step to
    continue from, the metric history and the validation scores. Otherwise the checkpoints are deleted and
    training starts from step 0."""
    import torch
    from safetensors.torch import load_file

    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        return 0, [], []
    state = load_state(checkpoint)
    refusal = resume_refusal(state, settings, trainer.config, trainer.steps_per_epoch())
    if refusal:
        # Deleted now rather than at this run's first save: this run may not resume them, and left in place the
        # newest of them would outrank this run's own checkpoints.
        trainer.accelerator.wait_for_everyone()  # every process has read them before they go
        if trainer.accelerator.is_main_process:
            remove_checkpoints(checkpoint_dir)
        logger.warning("%s %s: starting from step 0; its checkpoints are deleted", checkpoint, refusal)
        return 0, [], []
    model = trainer.accelerator.unwrap_model(trainer.model)
    weights = {}
    for shard in sorted((checkpoint / "model").glob("*.safetensors")):
        weights.update(load_file(shard))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(p.requires_grad for n, p in model.named_parameters() if n in missing):
        raise CoaugError(
            f"{checkpoint}: checkpoint does not match the model ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    trainer.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    trainer.sync_rollout_weights()
    logger.info("resumed from %s at step %d", checkpoint, state["step"])
    return state["step"], state["history"], state.get("validation", [])


def resume_refusal(
    state: dict[str, Any], settings: dict[str, Any], config: TrainConfig, steps_per_epoch: int
) -> str | None:
    """Why a run of ``config`` may not continue the checkpoint whose ``state.json`` is ``state``, else None:
    it was trained with other ``settings``, or for more steps than the run trains. Resumed, the latter would
    train no step and register weights that params do not describe (a longer run continues a shorter one,
    never the reverse)."""
    changes = settings_changes(state.get("settings"), settings)
    if changes:
        return f"was trained with other settings ({', '.join(changes)})"
    by_epochs = config.epochs * steps_per_epoch
    total = min(config.steps, by_epochs)  # as CoaugTrainer.total_steps
    if state["step"] > total:
        limit = (
            f"train.steps {config.steps}"
            if config.steps <= by_epochs
            else f"train.epochs {config.epochs} x {steps_per_epoch} steps per epoch"
        )
        return f"is at step {state['step']}, past the {total} steps of this run ({limit})"
    return None


def check_finite(metrics: dict[str, float], step: int) -> None:
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        raise CoaugError(f"train step {step}: non-finite {', '.join(bad)}; stopping (the last checkpoint is intact)")


def write_curves(path: str | Path, history: list[dict]) -> None:
    columns = [
        "step",
        *CURVE_COLUMNS,
        "format_valid_rate",
        "response_tokens",
        "kl_to_initial",
        "entropy",
        "ndcg_index",
        "proxy_spearman_query",
        "proxy_spearman_doc",
        "step_seconds",
        "step_cpu_seconds",
    ]
    with atomic_open(path) as handle:
        handle.write(",".join(columns) + "\n")
        for row in history:
            handle.write(
                ",".join(f"{row.get(c, float('nan')):.6g}" if c != "step" else str(row["step"]) for c in columns)
                + "\n"
            )


def write_validation(path: str | Path, scores: list[dict]) -> None:
    with atomic_open(path) as handle:
        handle.write(",".join(["step", *VALIDATION_COLUMNS]) + "\n")
        for row in scores:
            handle.write(
                ",".join([str(row["step"]), *(f"{row.get(c, float('nan')):.6g}" for c in VALIDATION_COLUMNS)]) + "\n"
            )


def summarise_validation(scores: list[dict]) -> dict[str, Any]:
    """Did validation rise? The mean in-batch NDCG@10 of the last quarter of evaluations against the
    untrained policy (step 0) and against the first quarter, each with a paired t-test over the validation
    queries (a query's value: its mean over the evaluations of that quarter)."""
    if not scores:
        return {}
    quarter = math.ceil(len(scores) / 4)
    queries = sorted(scores[0]["per_query"])

    def per_query(rows: list[dict]) -> np.ndarray:
        return np.array([np.mean([r["per_query"][q] for r in rows]) for q in queries])

    step0, first, last = per_query(scores[:1]), per_query(scores[:quarter]), per_query(scores[-quarter:])
    return {
        "val_evaluations": len(scores),
        "val_queries": len(queries),
        "val_ndcg_step0": float(step0.mean()),
        "val_ndcg_first_quarter": float(first.mean()),
        "val_ndcg_last_quarter": float(last.mean()),
        "val_p_last_vs_step0": paired_ttest(last, step0),
        "val_p_last_vs_first": paired_ttest(last, first),
    }


def write_dev_curve(path: str | Path, scores: list[dict], systems: list[str]) -> None:
    """step, then the mean real-index dev NDCG@10 of each curve system (coaug.rl.index_curve)."""
    with atomic_open(path) as handle:
        handle.write(",".join(["step", *systems]) + "\n")
        for row in scores:
            means = [
                f"{np.mean(list(row['dev'][name].values())):.6g}" for name in systems if name in row.get("dev", {})
            ]
            if len(means) == len(systems):
                handle.write(",".join([str(row["step"]), *means]) + "\n")


def summarise_dev_curve(scores: list[dict]) -> dict[str, Any]:
    """Did the real-index dev curve rise? Per curve system: step 0, the final point and a paired t-test of
    final against step 0 over the dev queries."""
    if not scores or not scores[0].get("dev"):
        return {}
    first, last = scores[0]["dev"], scores[-1]["dev"]
    summary: dict[str, Any] = {"dev_metric": CURVE_METRIC, "dev_queries": len(next(iter(first.values())))}
    for name in first:
        queries = sorted(first[name])
        before = np.array([first[name][q] for q in queries])
        after = np.array([last[name][q] for q in queries])
        summary[f"dev_ndcg_step0.{name}"] = float(before.mean())
        summary[f"dev_ndcg_final.{name}"] = float(after.mean())
        summary[f"dev_p_final_vs_step0.{name}"] = paired_ttest(after, before)
    return summary


def summarise(history: list[dict], config: TrainConfig) -> dict[str, Any]:
    def mean_of(key: str, rows: list[dict]) -> float:
        values = [r[key] for r in rows if key in r]
        return float(np.mean(values)) if values else float("nan")

    window = max(1, len(history) // 5)  # compare the first and last fifth of training
    return {
        "steps": len(history),
        "ndcg_in_batch_first": mean_of("ndcg_in_batch", history[:window]),
        "ndcg_in_batch_last": mean_of("ndcg_in_batch", history[-window:]),
        "reward_query_last": mean_of("reward_query_mean", history[-window:]),
        "format_valid_rate_last": mean_of("format_valid_rate", history[-window:]),
        # Measured every train.kl_every steps only: the latest measurement.
        "kl_to_initial_last": next(
            (r["kl_to_initial"] for r in reversed(history) if "kl_to_initial" in r), float("nan")
        ),
        "skipped_updates": int(sum(r.get("skipped_update", 0) for r in history)),
        "optimizer_steps": int(sum(r["optimizer_steps"] for r in history)),  # 0: the policy never changed
        "queries_per_step": config.queries_per_step,
        "rollouts": config.rollouts,
    }
