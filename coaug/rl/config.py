"""Training knobs (params.yaml ``train``), each with the paper's reference value named in its comment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coaug.errors import CoaugError
from coaug.params_schema import Params, TrainOutputs
from coaug.policy.precision import resolve_dtype

SIMILARITIES = ("bm25", "dense")
REWARD_CONTROLS = ("none", "shuffled")
OLD_LOGPROBS = ("auto", "recompute")


@dataclass(frozen=True)
class TrainConfig:
    policy: str  # starting policy spec (coaug.policy.model.load_policy)
    split: str = "train"  # qrels split whose queries are trained on
    steps: int = 300  # optimizer steps cap (the authors capped ~300)
    epochs: int = 5  # passes over the training queries; steps = min(steps, epochs x steps per epoch)
    queries_per_step: int = 32  # reference 32
    k_pos: int = 5  # positives per query, with replacement
    k_hardneg: int = 0
    k_randneg: int = 10
    rollouts: int = 5  # n rollouts per text
    temperature: float = 1.2
    repetition_penalty: float = 1.2
    max_new_tokens: int = 64
    doc_max_tokens: int = 256  # document TEXT budget before templating: augment.doc_max_tokens, as at inference
    format: str = "plain"
    query_prompt: str = "sparse_query"
    doc_prompt: str = "sparse_doc"
    similarity: str = "bm25"  # in-batch retriever of the reward: bm25 (k1 1.2, b 0.75) or dense cosine
    sampling_mode: str = "batch_sampling"
    kpos_reweight: float = 10.0
    estimator: str = "centred"  # Dr. GRPO
    posk: float = 0.2
    negk: float = 0.1
    q_only: bool = False  # ablation: documents stay unaugmented in the reward
    k_only: bool = False  # ablation: queries stay unaugmented in the reward
    reward_control: str = "none"  # "shuffled": the control run, rewards permuted within each role before the advantages
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mini_batches: int = 4  # optimizer steps per batch, one PPO epoch
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28  # clip-higher (DAPO)
    generation_batch_size: int = 16
    micro_batch_size: int = 8  # sequences per forward pass when scoring and updating (memory only: same maths)
    dtype: str = "auto"  # autocast dtype of rollouts and update (coaug.policy.precision); weights stay fp32
    old_logprobs: str = "auto"  # auto: recorded while sampling when rollouts and update compute in fp32; recompute: a scoring pass
    kl_every: int = 10  # steps between measurements of the KL to the initial policy (a metric); 0 = never
    lora: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    sample_every: int = 10  # steps between logged tables of sample generations
    validation_split: str = "dev"  # qrels split of the validation batches (disjoint from the eval split)
    validation_batches: int = 8  # fixed composite batches of queries_per_step queries, drawn once (seeded)
    eval_every: int = 5  # steps between validation scores (also at step 0 and at the end); 0 = never
    seed: int = 0
    num_processes: int = 1  # processes `accelerate launch` starts (coaug.rl.launcher); 1 = train in this process


# Fields that leave the trained weights as they are, so a checkpoint may be resumed across a change of them
# (coaug.rl.run.checkpoint_settings): `steps` and `epochs` only set where training stops (a longer run resumes a
# shorter one), the others pace checkpoints, logging and metrics, or split the same maths over processes and
# forward passes (memory only).
RUN_BOUND_FIELDS = frozenset({
    "steps", "epochs", "checkpoint_every", "keep_checkpoints", "sample_every", "kl_every", "num_processes",
    "micro_batch_size", "eval_every",
})  # fmt: skip


def variant_outputs(train_outputs: TrainOutputs, variant: str) -> dict[str, Path]:
    """Where the train stage of ``variant`` writes (dvc.yaml's train stage names the same paths)."""
    reports = Path(train_outputs.reports_dir)
    return {
        "checkpoint_dir": Path(train_outputs.checkpoints_dir) / variant,
        "policy_dir": Path(train_outputs.policies_dir) / variant,
        "metrics": reports / f"{variant}.json",
        "curves": reports / f"{variant}.curves.csv",
        "validation": reports / f"{variant}.validation.csv",
        "curves_plot": reports / f"{variant}.curves.png",
    }


def train_config(params: Params, variant: str) -> TrainConfig:
    """The ``train`` section with ``train_variants.<variant>``'s overrides on top."""
    variants = params.train_variants
    if variant not in variants:
        raise CoaugError(f"params: unknown train variant '{variant}' (train_variants has {', '.join(variants)})")
    section = dict(params.train)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = variants[variant] or {}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise CoaugError(f"params: unknown key 'train_variants.{variant}.{unknown[0]}'")
    section.update(overrides)
    section["policy"] = section.get("policy") or params.policy.model
    # One truncation for training and inference, so the policy is trained on the inputs it will see.
    section["doc_max_tokens"] = params.augment.doc_max_tokens
    unknown = sorted(set(section) - known)
    if unknown:
        raise CoaugError(f"params: unknown key 'train.{unknown[0]}'")
    config = TrainConfig(**section)
    if config.similarity not in SIMILARITIES:
        raise CoaugError(f"params: train.similarity must be one of {', '.join(SIMILARITIES)}")
    if config.micro_batch_size < 1:
        raise CoaugError(f"params: train.micro_batch_size must be >= 1, got {config.micro_batch_size}")
    if config.kl_every < 0:
        raise CoaugError(f"params: train.kl_every must be >= 0, got {config.kl_every}")
    resolve_dtype(config.dtype, cuda_bf16=False, cpu_flags=frozenset())  # rejects an unknown dtype name early
    if config.reward_control not in REWARD_CONTROLS:
        raise CoaugError(f"params: train.reward_control must be one of {', '.join(REWARD_CONTROLS)}, got '{config.reward_control}'")
    if config.old_logprobs not in OLD_LOGPROBS:
        raise CoaugError(f"params: train.old_logprobs must be one of {', '.join(OLD_LOGPROBS)}, got '{config.old_logprobs}'")
    if config.eval_every < 0 or config.validation_batches < 1:
        raise CoaugError("params: train.eval_every must be >= 0 and train.validation_batches >= 1")
    if config.q_only and config.k_only:
        raise CoaugError("params: train.q_only and train.k_only exclude each other")
    return config
