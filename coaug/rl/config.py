"""Training knobs (params.yaml ``train``), each with its help and allowed values, and the paper's reference value
named in its comment.

Like every section, the train section must name every key: params.yaml is the only source of values (DVC tracks
it), so a value missing there is an error, never a default filled in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coaug.errors import CoaugError
from coaug.params_schema import Params, Problem, TrainOutputs, knob, params_error, section_problem
from coaug.policy.precision import AUTO, DTYPES
from coaug.rl.advantages import ADVANTAGE_ESTIMATORS
from coaug.rl.reward import SAMPLING_MODES

SIMILARITIES = ("bm25", "dense")
REWARDS = ("in_batch", "index")
# Read by dvc.yaml's train stage as deps (the indexes): one value for every variant.
SHARED_FIELDS = ("reward_system", "curve_systems")
REWARD_CONTROLS = ("none", "shuffled")
OLD_LOGPROBS = ("auto", "recompute")


@dataclass(frozen=True)
class TrainConfig:
    """``train`` with a variant's overrides (:func:`train_config`). The comments name the paper's values; the
    values in params.yaml are scaled for 2 CPU cores."""

    policy: str | None = knob("starting policy spec (coaug.policy.model.load_policy); null = policy.model")
    reward: str = knob(
        "in_batch: the paper's BM25 over the batch's texts; index: NDCG@10 on reward_system's real index",
        choices=REWARDS,
    )
    reward_system: str = knob(
        "a bm25_flat system (params augmented_systems) whose index and query weighting the index reward uses"
    )
    curve_systems: list[str] = knob(
        "systems whose real index gives the dev curve (queries augmented by the policy in training)"
    )
    split: str = knob("qrels split whose queries are trained on")
    steps: int = knob("optimizer steps cap", minimum=1)  # paper: ~300
    epochs: int = knob(
        "passes over the training queries; steps = min(steps, epochs x steps per epoch)", minimum=1
    )  # paper: 5
    queries_per_step: int = knob("training queries per step", minimum=1)  # paper: 32
    k_pos: int = knob("positives per query, with replacement", minimum=1)  # paper: 5
    k_hardneg: int = knob("hard negatives per query", minimum=0)  # paper: 0
    k_randneg: int = knob("random negatives per query", minimum=0)  # paper: 10
    rollouts: int = knob("rollouts per text", minimum=2, reason="a group of one rollout has no baseline")  # paper: 5
    temperature: float = knob("sampling temperature of the rollouts", above=0)  # paper: 1.2
    repetition_penalty: float = knob("over prompt and output, as at inference", above=0)  # paper: 1.2
    max_new_tokens: int = knob("tokens generated per rollout", minimum=1)  # paper: longer <think>/<answer> responses
    doc_max_tokens: int = knob(
        "document TEXT budget before templating: augment.doc_max_tokens, as at inference", minimum=1
    )
    format: str = knob("prompt format folder")  # paper: plain
    query_prompt: str = knob("prompt of the query rollouts")
    doc_prompt: str = knob("prompt of the document rollouts")
    similarity: str = knob(
        "in-batch retriever of the reward: bm25 (k1 1.2, b 0.75) or dense cosine", choices=SIMILARITIES
    )  # paper: bm25
    sampling_mode: str = knob(
        "how the reward samples rankings (coaug.rl.reward)", choices=SAMPLING_MODES
    )  # paper: batch_sampling
    kpos_reweight: float = knob(
        "batch_sampling's weight of positives: w = 1 + kpos_reweight x gain", minimum=0
    )  # paper: 10
    estimator: str = knob(
        "advantage estimator (coaug.rl.advantages)", choices=ADVANTAGE_ESTIMATORS
    )  # paper: centred (Dr. GRPO)
    posk: float = knob("scale of the positive documents' advantages", minimum=0)  # paper: 0.2
    negk: float = knob("scale of the negative documents' advantages", minimum=0)  # paper: 0.1
    q_only: bool = knob("ablation: documents stay unaugmented in the reward")
    k_only: bool = knob("ablation: queries stay unaugmented in the reward")
    reward_control: str = knob(
        "shuffled: the control run, rewards permuted within each role before the advantages", choices=REWARD_CONTROLS
    )
    learning_rate: float = knob("AdamW learning rate", above=0)  # paper: 1e-6 for a 7B model
    weight_decay: float = knob("AdamW weight decay", minimum=0)  # paper: 0.01
    grad_clip: float = knob("largest gradient norm of an update", above=0)  # paper: 1.0
    mini_batches: int = knob("optimizer steps per batch, one PPO epoch", minimum=1)  # paper: 4
    # The ratio is clipped to [1 - epsilon_low, 1 + epsilon_high]: a lower end below 0 would clip nothing.
    epsilon_low: float = knob("PPO clip below 1", minimum=0, maximum=1)  # paper: 0.2
    epsilon_high: float = knob("PPO clip above 1", minimum=0)  # paper: 0.28, clip-higher (DAPO)
    generation_batch_size: int = knob("rollouts decoded together", minimum=1)
    micro_batch_size: int = knob(
        "sequences per forward pass when scoring and updating (memory only: same maths)", minimum=1
    )
    dtype: str = knob(
        "autocast dtype of rollouts and update (coaug.policy.precision); weights stay fp32", choices=(AUTO, *DTYPES)
    )
    old_logprobs: str = knob(
        "auto: recorded while sampling when rollouts and update compute in fp32; recompute: a scoring pass",
        choices=OLD_LOGPROBS,
    )
    kl_every: int = knob("steps between measurements of the KL to the initial policy (a metric); 0 = never", minimum=0)
    kl_coef: float = knob(
        "weight of a per-token KL-to-initial penalty (k3) in the loss; 0 = none, as the paper", minimum=0
    )
    lora: dict[str, Any] = knob("LoRA adapters instead of full fine-tuning (coaug.rl.config.Lora)")
    checkpoint_every: int = knob("steps between checkpoints", minimum=1)
    keep_checkpoints: int = knob("newest checkpoints kept", minimum=1)
    sample_every: int = knob("steps between logged tables of sample generations", minimum=1)
    validation_split: str = knob("qrels split of the validation batches (disjoint from the eval split)")
    validation_batches: int = knob(
        "fixed composite batches of queries_per_step queries, drawn once (seeded)", minimum=1
    )
    eval_every: int = knob("steps between validation scores (also at step 0 and at the end); 0 = never", minimum=0)
    seed: int = knob("seeds the batches, rollouts and validation draw", minimum=0)  # numpy seeds are non-negative
    num_processes: int = knob(
        "processes `accelerate launch` starts (coaug.rl.launcher); 1 = train in this process", minimum=1
    )


@dataclass(frozen=True)
class Lora:
    """``train.lora``: all but ``enabled`` is handed to peft's LoraConfig (coaug.rl.run.with_lora); TrainConfig
    keeps the mapping."""

    enabled: bool = knob("false = full fine-tuning")
    r: int = knob("adapter rank", minimum=1)
    lora_alpha: float = knob("adapter scale: updates are multiplied by lora_alpha / r", above=0)
    lora_dropout: float = knob("dropout on the adapters' input", minimum=0, below=1)
    target_modules: list[str] = knob("the Linear layers that get adapters")


# Fields that leave the trained weights as they are, so a checkpoint may be resumed across a change of them
# (coaug.rl.run.checkpoint_settings): `steps` and `epochs` only set where training stops (a longer run resumes a
# shorter one, never the reverse: coaug.rl.run.resume_refusal), the others pace checkpoints, logging and metrics,
# or split the same maths over processes and forward passes (memory only).
RUN_BOUND_FIELDS = frozenset(
    {
        "steps",
        "epochs",
        "checkpoint_every",
        "keep_checkpoints",
        "sample_every",
        "kl_every",
        "num_processes",
        "micro_batch_size",
        "eval_every",
        "curve_systems",
    }
)


def variant_outputs(train_outputs: TrainOutputs, variant: str) -> dict[str, Path]:
    """Where the train stage of ``variant`` writes (dvc.yaml's train stage names the same paths)."""
    reports = Path(train_outputs.reports_dir)
    return {
        "checkpoint_dir": Path(train_outputs.checkpoints_dir) / variant,
        "policy_dir": Path(train_outputs.policies_dir) / variant,
        "metrics": reports / f"{variant}.json",
        "curves": reports / f"{variant}.curves.csv",
        "validation": reports / f"{variant}.validation.csv",
        "dev_curve": reports / f"{variant}.dev_curve.csv",
        "curves_plot": reports / f"{variant}.curves.png",
    }


def train_config(params: Params, variant: str, source: str | Path) -> TrainConfig:
    """The ``train`` section with ``train_variants.<variant>``'s overrides on top, checked like every section
    before any work: no key missing or unknown, each value of its type and in its range. A problem is one line
    naming ``source`` (the params.yaml ``params`` were loaded from), the key's line and the key."""
    variants = params.train_variants
    if variant not in variants:
        raise CoaugError(f"params: unknown train variant '{variant}' (train_variants has {', '.join(variants)})")
    overrides = variants[variant] or {}
    # One document truncation for training and inference, so the policy is trained on the inputs it will see.
    section = {**params.train, "doc_max_tokens": params.augment.doc_max_tokens}
    config = {**section, **overrides}
    problem = (
        section_problem(section, TrainConfig, ("train",))
        or section_problem(overrides, TrainConfig, ("train_variants", variant), partial=True)
        or section_problem(config["lora"], Lora, setting_path("lora", overrides, variant))
        or settings_conflict(params.train, overrides, variant)
    )
    if problem:
        raise params_error(problem, str(source), Path(source).read_text())
    return TrainConfig(**{**config, "policy": config["policy"] or params.policy.model})


def setting_path(key: str, overrides: dict[str, Any], variant: str) -> tuple[str, ...]:
    """Where a variant's value of ``key`` is written: its override, else the train section."""
    return ("train_variants", variant, key) if key in overrides else ("train", key)


def settings_conflict(train: dict[str, Any], overrides: dict[str, Any], variant: str) -> Problem | None:
    """The first of a variant's settings (the ``train`` section with its ``overrides``) that is allowed alone
    but not where it is written or with the others."""
    config = {**train, **overrides}
    if "doc_max_tokens" in config:  # train_config takes it from augment
        return setting_path("doc_max_tokens", overrides, variant), "is augment.doc_max_tokens: set it there"
    shared = [key for key in SHARED_FIELDS if key in overrides]
    if shared:
        return setting_path(shared[0], overrides, variant), (
            "set it in train only (dvc.yaml's train stage depends on its indexes, the same for every variant)"
        )
    if config["reward"] == "index" and config["similarity"] != "bm25":
        return setting_path("similarity", overrides, variant), (
            f"must be bm25 with train.reward index (it rescores on a BM25 index), got '{config['similarity']}'"
        )
    if config["q_only"] and config["k_only"]:
        return setting_path(
            "k_only", overrides, variant
        ), "excludes q_only (an ablation trains one side: q_only the queries)"
    return None
