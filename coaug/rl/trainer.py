"""Bidirectional RL for query–document co-augmentation (METHOD §3–§6), as a small explicit loop.

Why not trl's GRPOTrainer: the reward of one rollout depends on the rollouts of OTHER prompts (a query and
its documents), the advantage of a document is scaled by its role, the update is skipped when every
advantage is 0, and the optimizer must skip non-finite gradients. trl can express parts of this (custom
sampler, batch reward function, ``scale_rewards="none"``) but not all of it exactly, and its internals change
between releases. This loop is built from torch + accelerate pieces instead; ``accelerate launch coaug
train`` runs it on several GPUs (every process generates the same batch from the same seed; the update's
mini-batches are split between processes and gradients are averaged by accelerate).

One step: composite batch → n sampled rollouts per text → in-batch similarity → sampled rewards →
centred group advantages × role scale → one PPO epoch of ``mini_batches`` clip-higher updates.

Cost (benchmarks/train_step.py): rollouts, old log-probs and the update run under bf16 autocast where the
machine computes bf16 natively (``train.dtype``; weights and optimizer state stay fp32); log-probs are
taken on completion positions only, each prompt computed once for the rollouts of it that a micro-batch holds
(coaug.rl.sequence_logprobs), ``micro_batch_size`` sequences per forward;
rollouts are sampled from a bf16 cast of the weights refreshed after each update (:func:`rollout_policy`);
the KL to the initial policy is a metric only, measured every ``kl_every`` steps against the starting
weights (LoRA: the same model with its adapters disabled; full fine-tuning: the starting policy reloaded
for the measurement), so no fp32 copy of the model is held. Each prompt is prefilled once for all of its
rollouts (coaug.rl.rollouts); where rollouts and update compute in fp32 the old log-probs are those recorded
while sampling (``train.old_logprobs``), so the update needs no scoring pass of its own.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coaug.data.beir import Corpus, Qrels, Queries
from coaug.policy.generation import GenerationParams, tokenize_conversations
from coaug.policy.model import Policy
from coaug.policy.parsing import parse_response
from coaug.policy.precision import machine_dtype
from coaug.policy.prompts import Prompt, conversation, document_input
from coaug.rl.advantages import Role, advantages as compute_advantages
from coaug.rl.composite_batch import (
    NEGATIVE,
    POSITIVE,
    QUERY,
    Slot,
    negative_pool,
    sample_composite_batch,
    training_queries,
)
from coaug.rl.config import TrainConfig
from coaug.rl.index_reward import IndexReward
from coaug.rl.ppo_loss import clipped_policy_loss, kl_penalty
from coaug.rl.proxy_agreement import mean_group_spearman
from coaug.rl.reward import SAMPLES_PER_ROLLOUT, bm25_matrix, sampled_rewards, sampling_layout
from coaug.rl.reward_sampling import joint_sample_count
from coaug.rl.rollouts import SampledCompletion, recorded_scores, sample_rollouts
from coaug.rl.sequence_logprobs import completion_scores, scoring_order

logger = logging.getLogger(__name__)

SCORE_DECIMALS = 6
ROLE_OF_SLOT = {QUERY: Role.QUERY, POSITIVE: Role.POSITIVE_DOC, NEGATIVE: Role.NEGATIVE_DOC}


@dataclass
class Rollout:
    slot: int  # index of the text in the batch
    prompt_ids: list[int]
    completion_ids: list[int]
    augmentation: str
    format_valid: bool
    trained: bool  # False for the fixed original text of an ablated side (q_only / k_only)
    sample: SampledCompletion | None = None  # with the log-probs recorded while sampling, when they are recorded


class CoaugTrainer:
    """``load_initial`` returns the starting policy's model (fp32, on the training device); it is called
    only every ``kl_every`` steps of full fine-tuning, to measure the KL metric."""

    def __init__(
        self,
        config: TrainConfig,
        policy: Policy,
        prompts: dict[str, Prompt],
        corpus: Corpus,
        queries: Queries,
        qrels: Qrels,
        similarity: Callable[[list[str], list[str]], np.ndarray],
        accelerator,
        load_initial: Callable[[], Any],
        index_reward: IndexReward | None = None,
    ):
        self.config, self.policy, self.prompts = config, policy, prompts
        self.corpus, self.queries, self.qrels = corpus, queries, qrels
        self.similarity = similarity
        # Scores every step's rollouts on the real index: the reward with train.reward index, else the check
        # of the in-batch reward against it (the proxy metrics).
        self.index_reward = index_reward
        self.accelerator = accelerator
        self.load_initial = load_initial
        self.initial_model = None  # the starting weights, kept in memory while a KL penalty needs them every step
        self.query_ids = training_queries(qrels)
        self.negatives = negative_pool(qrels, list(corpus))
        self.doc_number = {doc_id: number for number, doc_id in enumerate(corpus)}  # integer labels for the layout
        self.compute_dtype = machine_dtype(config.dtype)
        trainable = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(policy.model, self.optimizer)
        self.rollout_policy = rollout_policy(policy, self.compute_dtype)  # after prepare: on the training device
        # In fp32 the rollouts are sampled by the very weights the update starts from, in its dtype: their
        # log-probs, recorded while sampling, are the old log-probs to float rounding (at most 3e-5 apart from a
        # recomputation on SmolLM2-135M). A bf16 cast samples in other arithmetic than the autocast update
        # (bf16 residual stream), so there they are recomputed.
        self.records_old_logprobs = config.old_logprobs == "auto" and self.compute_dtype == "float32"
        self.skipped_nonfinite = 0

    # ----------------------------------------------------------------- schedule
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.query_ids) / self.config.queries_per_step)

    def total_steps(self) -> int:
        return min(self.config.steps, self.config.epochs * self.steps_per_epoch())

    def batch_queries(self, step: int) -> list[str]:
        """Queries of ``step``: each epoch is a seeded permutation of the training queries."""
        epoch, position = divmod(step, self.steps_per_epoch())
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.query_ids))
        chosen = order[position * self.config.queries_per_step : (position + 1) * self.config.queries_per_step]
        return [self.query_ids[i] for i in chosen]

    # ----------------------------------------------------------------- one step
    def step(self, step: int) -> dict[str, Any]:
        started, cpu_started = time.perf_counter(), time.process_time()
        rng = np.random.default_rng([self.config.seed, step, 1])
        slots = sample_composite_batch(
            self.batch_queries(step),
            self.qrels,
            self.negatives,
            rng,
            k_pos=self.config.k_pos,
            k_hardneg=self.config.k_hardneg,
            k_randneg=self.config.k_randneg,
        )
        generation_started = time.perf_counter()
        rollouts = self.generate(slots, step)
        generation_seconds = time.perf_counter() - generation_started
        reward_started = time.perf_counter()
        ordered, query_rewards, rewards = self.rewards(slots, rollouts, rng)
        roles = np.array([ROLE_OF_SLOT[slots[r.slot].role] for r in ordered])
        index_metrics = {}
        if self.index_reward is not None:
            index_rewards = self.index_rewards(slots, ordered, np.random.default_rng([self.config.seed, step, 3]))
            index_metrics = proxy_metrics(rewards, index_rewards, np.array([r.slot for r in ordered]), roles)
            index_metrics["ndcg_index"] = float(index_rewards[roles == Role.QUERY].mean())
            if self.config.reward == "index":
                rewards = index_rewards
        reward_seconds = time.perf_counter() - reward_started
        if self.config.reward_control == "shuffled":
            # The control run: the same rewards, each moved to another rollout of its role at random, so the
            # update sizes stay those of a real step while no reward says anything about its rollout.
            learned_from = shuffled_within_roles(rewards, roles, np.random.default_rng([self.config.seed, step, 2]))
        else:
            learned_from = rewards
        advantage = compute_advantages(
            learned_from,
            np.array([r.slot for r in ordered]),
            roles,
            estimator=self.config.estimator,
            posk=self.config.posk,
            negk=self.config.negk,
        )
        trained = [(r, a) for r, a in zip(ordered, advantage) if r.trained]
        update_started = time.perf_counter()
        no_update = {"skipped_update": 1.0, "optimizer_steps": 0.0}
        update = self.update(trained, step) if any(a != 0 for _, a in trained) else no_update
        update_seconds = time.perf_counter() - update_started
        new_tokens = sum(len(r.completion_ids) for r in rollouts if r.trained)
        metrics = {
            **role_reward_stats(rewards, roles),
            "ndcg_in_batch": float(query_rewards.mean()),
            "format_valid_rate": float(np.mean([r.format_valid for r in rollouts if r.trained])),
            "response_tokens": new_tokens / max(sum(r.trained for r in rollouts), 1),
            "advantage_nonzero": float(np.mean([a != 0 for _, a in trained])),
            "generated_tokens_per_s": new_tokens / generation_seconds,
            "generation_seconds": generation_seconds,
            "reward_seconds": reward_seconds,
            "update_seconds": update_seconds,
            **index_metrics,
            "step_seconds": time.perf_counter() - started,
            # CPU seconds of every thread of the process: the cost per CPU hour, however many cores the step had.
            "step_cpu_seconds": time.process_time() - cpu_started,
            **update,
        }
        self._last_samples = [
            (slots[r.slot].role, slots[r.slot].text_id, r.augmentation, float(rw)) for r, rw in zip(ordered, rewards)
        ]
        return metrics

    def rewards(
        self,
        slots: list[Slot],
        rollouts: list[Rollout],
        rng: np.random.Generator,
        mode: str | None = None,
        samples_per_rollout: int = SAMPLES_PER_ROLLOUT,
    ) -> tuple[list[Rollout], np.ndarray, np.ndarray]:
        """In-batch similarity -> sampled rewards (METHOD §4-5). Returns the rollouts as rewarded (query
        rollouts first), the query rollouts' rewards (their in-batch NDCG@10) and every rollout's reward."""
        rows = [r for r in rollouts if slots[r.slot].role == QUERY]
        columns = [r for r in rollouts if slots[r.slot].role != QUERY]
        scores = self.similarity(
            [self.retrieval_text(slots[r.slot], r) for r in rows],
            [self.retrieval_text(slots[r.slot], r) for r in columns],
        )
        # The reference rounds scores to 6 decimals before ranking, which decides its score ties.
        scores = np.round(scores, SCORE_DECIMALS)
        layout = self.layout(slots, rows, columns)
        query_rewards, doc_rewards = sampled_rewards(
            scores,
            layout,
            rng,
            mode=mode or self.config.sampling_mode,
            num_rollouts=len(rollouts),
            kpos_reweight=self.config.kpos_reweight,
            samples_per_rollout=samples_per_rollout,
        )
        return rows + columns, query_rewards, np.concatenate([query_rewards, doc_rewards])

    def index_rewards(self, slots: list[Slot], ordered: list[Rollout], rng: np.random.Generator) -> np.ndarray:
        """Every rollout's index reward (coaug.rl.index_reward), ``ordered`` as :meth:`rewards` returns them
        (query rollouts first)."""
        index = self.index_reward
        rows = [r for r in ordered if slots[r.slot].role == QUERY]
        columns = [r for r in ordered if slots[r.slot].role != QUERY]
        layout = self.layout(slots, rows, columns)
        # An ablated side keeps its original query, or the document as the index holds it.
        row_texts = [index.query_text(self.queries[slots[r.slot].text_id], r.augmentation) for r in rows]
        column_texts = [
            index.doc_text(
                slots[r.slot].text_id, self.corpus[slots[r.slot].text_id], r.augmentation if r.trained else None
            )
            for r in columns
        ]
        key_docs = [slots[columns[c].slot].text_id for c in layout.columns_by_key[layout.key_start]]
        num_samples = joint_sample_count(len(ordered), len(rows))
        query_rewards, doc_rewards = index.rewards(
            [slots[r.slot].text_id for r in rows],
            row_texts,
            column_texts,
            layout,
            key_docs,
            num_samples,
            rng,
            self.config.kpos_reweight,
        )
        return np.concatenate([query_rewards, doc_rewards])

    def layout(self, slots: list[Slot], rows: list[Rollout], columns: list[Rollout]):
        return sampling_layout(
            np.array([slots[r.slot].group for r in rows]),
            np.array([slots[r.slot].group for r in columns]),
            np.array([self.doc_number[slots[r.slot].text_id] for r in columns]),
            np.array([slots[r.slot].relevance for r in columns]),
        )

    def validate(self, batches: list[list[Slot]]) -> dict[str, Any]:
        """Score fixed composite ``batches`` of a held-out split with ONE greedy rollout per text and no
        update: the in-batch NDCG@10 of every query (``per_query``) and the mean reward of each role.

        With one rollout per text every joint sample draws the same texts (each sample ranks every query's
        list), so the rewards are exact from one sample and depend on the policy alone."""
        flat = [slot for batch in batches for slot in batch]
        generated = self.generate(flat, step=0, rollouts=1, sample=False)
        per_query: dict[str, float] = {}
        role_rewards: dict[Role, list[float]] = {role: [] for role in Role}
        start = 0
        for batch in batches:
            mine = [dataclasses.replace(r, slot=r.slot - start) for r in generated[start : start + len(batch)]]
            ordered, _, rewards = self.rewards(
                batch, mine, np.random.default_rng(0), "batch_sampling", samples_per_rollout=1
            )
            for rollout, reward in zip(ordered, rewards):
                slot = batch[rollout.slot]
                role_rewards[ROLE_OF_SLOT[slot.role]].append(float(reward))
                if slot.role == QUERY:
                    per_query[slot.text_id] = float(reward)
            start += len(batch)
        means = {f"val_reward_{role.name.lower()}_mean": float(np.mean(v)) for role, v in role_rewards.items() if v}
        return {"val_ndcg_in_batch": float(np.mean(list(per_query.values()))), **means, "per_query": per_query}

    def generate(
        self, slots: list[Slot], step: int, rollouts: int | None = None, sample: bool = True
    ) -> list[Rollout]:
        """``rollouts`` (default ``train.rollouts``) completions per augmented text, sampled (or greedy);
        an ablated side keeps its original text."""
        config = self.config
        per_text = config.rollouts if rollouts is None else rollouts
        tokenizer = self.policy.tokenizer
        generated: list[Rollout] = []
        # Queries and documents are generated apart: each kind shares one system prompt, prefilled once per
        # call (coaug.policy.generation.PromptPrefix), and short queries are not padded to document length.
        requests: dict[str, list[tuple[int, list[dict]]]] = {"query": [], "doc": []}
        for index, slot in enumerate(slots):
            is_query = slot.role == QUERY
            if (is_query and config.k_only) or (not is_query and config.q_only):
                generated.append(Rollout(index, [], [], "", True, trained=False))
                continue
            if is_query:
                messages = conversation(self.prompts["query"], self.queries[slot.text_id])
            else:
                doc = self.corpus[slot.text_id]
                messages = conversation(
                    self.prompts["doc"], document_input(tokenizer, doc["title"], doc["text"], config.doc_max_tokens)
                )
            requests["query" if is_query else "doc"].append((index, messages))
        self.model.eval()
        for kind_number, (kind, kind_requests) in enumerate(requests.items()):
            if not kind_requests:
                continue
            params = GenerationParams(
                max_new_tokens=config.max_new_tokens,
                repetition_penalty=config.repetition_penalty,
                do_sample=sample,
                temperature=config.temperature,
                seed=(config.seed * 1_000_003 + step) * len(requests) + kind_number,
            )
            conversations = [messages for _, messages in kind_requests]
            prompt_ids = tokenize_conversations(self.policy, conversations)
            batches = sample_rollouts(
                self.rollout_policy,
                conversations,
                per_text,
                params,
                config.generation_batch_size,
                f"rollouts {step} {kind}",
                score_temperature=config.temperature if sample and self.records_old_logprobs else None,
            )
            with self.autocast():
                for indices, samples in batches:
                    for i, sampled in zip(indices, samples):
                        parsed = parse_response(sampled.completion.text, self.prompts[kind].format)
                        generated.append(
                            Rollout(
                                kind_requests[i][0],
                                prompt_ids[i],
                                list(sampled.completion.token_ids),
                                parsed.augmentation,
                                parsed.format_valid,
                                trained=True,
                                sample=sampled if sampled.logprobs is not None else None,
                            )
                        )
        return sorted(generated, key=lambda r: r.slot)

    def sync_rollout_weights(self) -> None:
        """Copy the trained weights into the rollout cast (after an update, or weights loaded on resume)."""
        if self.rollout_policy is self.policy:
            return
        with torch.no_grad():
            for rollout_weight, weight in zip(self.rollout_policy.model.parameters(), self.model.parameters()):
                rollout_weight.copy_(weight)

    def autocast(self):
        """bf16 autocast where ``train.dtype`` resolves to it (weights and optimizer state stay fp32)."""
        device = self.accelerator.device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.compute_dtype == "bfloat16")

    @contextlib.contextmanager
    def initial_policy(self) -> Iterator[Any]:
        """The starting policy, for the KL metric and penalty: LoRA adapters disabled, or the starting weights
        (reloaded for a metric now and then, kept for a penalty every step)."""
        model = self.accelerator.unwrap_model(self.model)
        if hasattr(model, "disable_adapter"):  # peft
            with model.disable_adapter():
                yield model
        elif self.config.kl_coef:
            if self.initial_model is None:
                self.initial_model = self.load_initial().eval()
            yield self.initial_model
        else:
            yield self.load_initial().eval()  # scored under no_grad

    def retrieval_text(self, slot: Slot, rollout: Rollout) -> str:
        """``original + "\\n\\n" + augmentation`` (METHOD §4); the original document is ``title text``."""
        if slot.role == QUERY:
            original = self.queries[slot.text_id]
        else:
            doc = self.corpus[slot.text_id]
            original = f"{doc['title']} {doc['text']}"
        return f"{original}\n\n{rollout.augmentation}" if rollout.augmentation else original

    # ----------------------------------------------------------------- update
    def update(self, trained: list[tuple[Rollout, float]], step: int) -> dict[str, float]:
        config = self.config
        pad_id = self.policy.tokenizer.pad_token_id
        # Only rollouts that carry a gradient are scored and back-propagated (gradient_rows), but every rollout's
        # tokens count in its mini-batch's token mean (Dr. GRPO): mini-batches and token counts are drawn over all.
        order = np.random.default_rng([config.seed, len(trained)]).permutation(len(trained))
        chunks = np.array_split(order, min(config.mini_batches, len(order)))
        completion_tokens = torch.tensor([len(r.completion_ids) for r, _ in trained], dtype=torch.float32)
        # A KL penalty gives every rollout a gradient; under DDP every process must back-propagate.
        every_row = self.accelerator.num_processes > 1 or config.kl_coef > 0
        carrying = gradient_rows([a for _, a in trained], every_row=every_row)
        active = {i: row for row, i in enumerate(carrying)}  # rollout index -> its row of `old`
        trained = [trained[i] for i in carrying]
        sequences = [(r.prompt_ids, r.completion_ids) for r, _ in trained]
        score = dict(pad_id=pad_id, temperature=config.temperature, micro_batch_size=config.micro_batch_size)
        if all(r.sample is not None for r, _ in trained):
            old = recorded_scores([r.sample for r, _ in trained], self.accelerator.device)
        else:
            with torch.no_grad(), self.autocast():
                old = completion_scores(self.model, sequences, with_entropy=True, **score)
        entropy = float((old.entropy * old.mask).sum() / old.mask.sum())  # over the gradient rows
        kl_metric, measure_kl = {}, config.kl_every and step % config.kl_every == 0
        if measure_kl or config.kl_coef:
            with torch.no_grad(), self.autocast(), self.initial_policy() as initial:
                reference = completion_scores(initial, sequences, with_entropy=False, **score)
        if measure_kl:
            log_ratio = (reference.logprobs - old.logprobs) * old.mask
            kl_metric["kl_to_initial"] = float(
                ((torch.exp(log_ratio) - log_ratio - 1) * old.mask).sum() / old.mask.sum()
            )  # k3
        advantage = torch.tensor([a for _, a in trained], dtype=torch.float32)
        self.model.train()
        losses, clips, norms, skipped = [], [], [], 0
        for chunk in chunks:
            with self.accelerator.split_between_processes(chunk.tolist()) as drawn:
                # The loss is the token mean over the whole mini-batch: each micro-batch's token mean is
                # weighted by its share of the mini-batch's tokens, so the gradient equals one big forward.
                tokens = completion_tokens[drawn].sum().clamp(min=1)
                mine = [active[i] for i in drawn if i in active]
                # The mini-batch's gradient is a sum over its rows, so their order is free: similar prompts
                # together share a prefix and pad least, and rollouts of one prompt in a micro-batch compute
                # it once (coaug.rl.sequence_logprobs.scoring_order).
                mine = [mine[i] for i in scoring_order([sequences[j] for j in mine])]
                loss, clip_fraction = 0.0, 0.0
                for start in range(0, len(mine), config.micro_batch_size):
                    part = mine[start : start + config.micro_batch_size]
                    with self.autocast():
                        scores = completion_scores(
                            self.model, [sequences[i] for i in part], with_entropy=False, **score
                        )
                    width = scores.logprobs.shape[1]
                    output = clipped_policy_loss(
                        scores.logprobs,
                        old.logprobs[part, :width],
                        advantage[part],
                        scores.mask,
                        epsilon_low=config.epsilon_low,
                        epsilon_high=config.epsilon_high,
                    )
                    part_loss = output.loss
                    if config.kl_coef:
                        drift = kl_penalty(scores.logprobs, reference.logprobs[part, :width], scores.mask)
                        part_loss = part_loss + config.kl_coef * drift
                    share = scores.mask.sum() / tokens
                    self.accelerator.backward(part_loss * share)
                    loss += float(part_loss.detach() * share)
                    clip_fraction += output.clip_fraction * float(share)
            if not mine:  # every rollout drawn has advantage 0: Adam still takes its step on a zero gradient
                for parameter in self.model.parameters():
                    if parameter.requires_grad:
                        parameter.grad = torch.zeros_like(parameter)
            norm = self.accelerator.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            if torch.isfinite(torch.as_tensor(norm)):
                self.optimizer.step()
            else:
                skipped += 1
                logger.warning("non-finite gradient norm: optimizer step skipped")
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
            clips.append(clip_fraction)
            norms.append(float(norm))
        self.skipped_nonfinite += skipped
        self.model.eval()
        self.sync_rollout_weights()  # the next rollouts sample the updated policy
        return {
            "loss": float(np.mean(losses)),
            "clip_fraction": float(np.mean(clips)),
            "grad_norm": float(np.mean(norms)),
            "entropy": entropy,
            **kl_metric,
            "skipped_nonfinite": float(skipped),
            "skipped_update": 0.0,
            "optimizer_steps": float(len(losses) - skipped),
        }


def gradient_rows(advantages: list[float], *, every_row: bool) -> list[int]:
    """The rollouts the update scores and back-propagates: those with a non-zero advantage, as a zero one adds
    exactly nothing to the clipped loss or its gradient. ``every_row`` (under DDP, where each process must
    back-propagate through the model in every mini-batch): all of them."""
    return [i for i, a in enumerate(advantages) if a != 0 or every_row]


def rollout_policy(policy: Policy, compute_dtype: str) -> Policy:
    """The policy rollouts are sampled from: a bf16 cast of the weights, refreshed after every update, when
    the step computes in bf16 (sampling with bf16 weights is ~1.4x faster than under autocast, which
    re-casts every weight at every decoding step); else the policy itself. LoRA models sample under
    autocast: their adapters live apart from the base weights."""
    if compute_dtype != "bfloat16" or hasattr(policy.model, "disable_adapter"):
        return policy
    # requires_grad stays on although no gradient flows here (generation runs under inference mode): bf16
    # weights with requires_grad off decoded 1.7x slower on the developers' AMX CPU (155 vs 254 tok/s).
    model = copy.deepcopy(policy.model).to(torch.bfloat16).eval()
    return Policy(model=model, tokenizer=policy.tokenizer, fingerprint=policy.fingerprint, dtype="bfloat16")


def shuffled_within_roles(rewards: np.ndarray, roles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rewards`` permuted at random among the rollouts of each role (the shuffled-reward control)."""
    shuffled = np.array(rewards, dtype=float)
    for role in np.unique(roles):
        where = np.flatnonzero(roles == role)
        shuffled[where] = shuffled[rng.permutation(where)]
    return shuffled


def proxy_metrics(in_batch: np.ndarray, index: np.ndarray, slots: np.ndarray, roles: np.ndarray) -> dict[str, float]:
    """How the in-batch reward orders each text's rollouts against the index reward (coaug.rl.proxy_agreement):
    ``proxy_spearman_query`` over query texts, ``proxy_spearman_doc`` over document texts."""
    is_query = roles == Role.QUERY
    metrics = {}
    for name, where in (("query", is_query), ("doc", ~is_query)):
        agreement, groups = mean_group_spearman(in_batch[where], index[where], slots[where])
        if groups:  # no group with an order on both sides: nothing measured, nothing logged
            metrics[f"proxy_spearman_{name}"] = agreement
    return metrics


def role_reward_stats(rewards: np.ndarray, roles: np.ndarray) -> dict[str, float]:
    stats = {}
    for role in Role:
        values = rewards[roles == role]
        if len(values):
            name = role.name.lower()
            stats[f"reward_{name}_mean"] = float(values.mean())
            stats[f"reward_{name}_std"] = float(values.std())
    return stats


def bm25_similarity(idf: dict[str, float]) -> Callable[[list[str], list[str]], np.ndarray]:
    return lambda rows, columns: bm25_matrix(rows, columns, idf)
