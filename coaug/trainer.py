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
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coaug.advantages import Role, advantages as compute_advantages
from coaug.beir import Corpus, Qrels, Queries
from coaug.composite_batch import NEGATIVE, POSITIVE, QUERY, Slot, negative_pool, sample_composite_batch, training_queries
from coaug.generation import GenerationParams, generate_batches, tokenize_conversations
from coaug.parsing import parse_response
from coaug.policy import Policy
from coaug.ppo_loss import clipped_policy_loss
from coaug.prompts import Prompt, conversation, document_input
from coaug.reward import bm25_matrix, sampled_rewards, sampling_layout
from coaug.sequence_logprobs import completion_scores
from coaug.train_config import TrainConfig

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


class CoaugTrainer:
    def __init__(
        self, config: TrainConfig, policy: Policy, prompts: dict[str, Prompt], corpus: Corpus, queries: Queries,
        qrels: Qrels, similarity: Callable[[list[str], list[str]], np.ndarray], accelerator,
    ):  # fmt: skip
        self.config, self.policy, self.prompts = config, policy, prompts
        self.corpus, self.queries, self.qrels = corpus, queries, qrels
        self.similarity = similarity
        self.accelerator = accelerator
        self.query_ids = training_queries(qrels)
        self.negatives = negative_pool(qrels, list(corpus))
        self.doc_number = {doc_id: number for number, doc_id in enumerate(corpus)}  # integer labels for the layout
        self.reference = copy.deepcopy(policy.model).eval().requires_grad_(False)  # for the KL metric only
        trainable = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(policy.model, self.optimizer)
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
        started = time.perf_counter()
        rng = np.random.default_rng([self.config.seed, step, 1])
        slots = sample_composite_batch(
            self.batch_queries(step), self.qrels, self.negatives, rng, k_pos=self.config.k_pos,
            k_hardneg=self.config.k_hardneg, k_randneg=self.config.k_randneg,
        )  # fmt: skip
        generation_started = time.perf_counter()
        rollouts = self.generate(slots, step)
        generation_seconds = time.perf_counter() - generation_started
        rows = [r for r in rollouts if slots[r.slot].role == QUERY]
        columns = [r for r in rollouts if slots[r.slot].role != QUERY]
        scores = self.similarity([self.retrieval_text(slots[r.slot], r) for r in rows],
                                 [self.retrieval_text(slots[r.slot], r) for r in columns])  # fmt: skip
        # The reference rounds scores to 6 decimals before ranking, which decides its score ties.
        scores = np.round(scores, SCORE_DECIMALS)
        layout = sampling_layout(
            np.array([slots[r.slot].group for r in rows]), np.array([slots[r.slot].group for r in columns]),
            np.array([self.doc_number[slots[r.slot].text_id] for r in columns]),
            np.array([slots[r.slot].relevance for r in columns]),
        )  # fmt: skip
        query_rewards, doc_rewards = sampled_rewards(
            scores, layout, rng, mode=self.config.sampling_mode, num_rollouts=len(rollouts),
            kpos_reweight=self.config.kpos_reweight,
        )  # fmt: skip
        ordered = rows + columns
        rewards = np.concatenate([query_rewards, doc_rewards])
        roles = np.array([ROLE_OF_SLOT[slots[r.slot].role] for r in ordered])
        advantage = compute_advantages(
            rewards, np.array([r.slot for r in ordered]), roles, estimator=self.config.estimator,
            posk=self.config.posk, negk=self.config.negk,
        )  # fmt: skip
        trained = [(r, a) for r, a in zip(ordered, advantage) if r.trained]
        update = self.update(trained) if any(a != 0 for _, a in trained) else {"skipped_update": 1.0}
        new_tokens = sum(len(r.completion_ids) for r in rollouts if r.trained)
        metrics = {
            **role_reward_stats(rewards, roles),
            "ndcg_in_batch": float(query_rewards.mean()),
            "format_valid_rate": float(np.mean([r.format_valid for r in rollouts if r.trained])),
            "response_tokens": new_tokens / max(sum(r.trained for r in rollouts), 1),
            "advantage_nonzero": float(np.mean([a != 0 for _, a in trained])),
            "generated_tokens_per_s": new_tokens / generation_seconds,
            "step_seconds": time.perf_counter() - started,
            **update,
        }
        self._last_samples = [(slots[r.slot].role, slots[r.slot].text_id, r.augmentation, float(rw))
                              for r, rw in zip(ordered, rewards)]  # fmt: skip
        return metrics

    def generate(self, slots: list[Slot], step: int) -> list[Rollout]:
        """``rollouts`` sampled completions per augmented text; an ablated side keeps its original text."""
        config = self.config
        tokenizer = self.policy.tokenizer
        rollouts: list[Rollout] = []
        requests: list[tuple[int, list[dict]]] = []
        for index, slot in enumerate(slots):
            is_query = slot.role == QUERY
            if (is_query and config.k_only) or (not is_query and config.q_only):
                rollouts.append(Rollout(index, [], [], "", True, trained=False))
                continue
            if is_query:
                messages = conversation(self.prompts["query"], self.queries[slot.text_id])
            else:
                doc = self.corpus[slot.text_id]
                messages = conversation(self.prompts["doc"], document_input(tokenizer, doc["title"], doc["text"], config.doc_max_tokens))
            requests += [(index, messages)] * config.rollouts
        params = GenerationParams(
            max_new_tokens=config.max_new_tokens, repetition_penalty=config.repetition_penalty, do_sample=True,
            temperature=config.temperature, seed=config.seed * 1_000_003 + step,
        )  # fmt: skip
        conversations = [messages for _, messages in requests]
        prompt_ids = tokenize_conversations(self.policy, conversations)
        self.model.eval()
        for indices, completions in generate_batches(self.policy, conversations, params, config.generation_batch_size, f"rollouts {step}"):
            for i, completion in zip(indices, completions):
                parsed = parse_response(completion.text, self.prompts["query"].format)
                rollouts.append(Rollout(requests[i][0], prompt_ids[i], list(completion.token_ids), parsed.augmentation, parsed.format_valid, trained=True))
        return sorted(rollouts, key=lambda r: r.slot)

    def retrieval_text(self, slot: Slot, rollout: Rollout) -> str:
        """``original + "\\n\\n" + augmentation`` (METHOD §4); the original document is ``title text``."""
        if slot.role == QUERY:
            original = self.queries[slot.text_id]
        else:
            doc = self.corpus[slot.text_id]
            original = f"{doc['title']} {doc['text']}"
        return f"{original}\n\n{rollout.augmentation}" if rollout.augmentation else original

    # ----------------------------------------------------------------- update
    def update(self, trained: list[tuple[Rollout, float]]) -> dict[str, float]:
        config = self.config
        pad_id = self.policy.tokenizer.pad_token_id
        sequences = [(r.prompt_ids, r.completion_ids) for r, _ in trained]
        with torch.no_grad():
            old = completion_scores(self.model, sequences, pad_id, config.temperature, with_entropy=True)
            reference = completion_scores(self.reference, sequences, pad_id, config.temperature, with_entropy=False)
        log_ratio = (reference.logprobs - old.logprobs) * old.mask
        kl = float(((torch.exp(log_ratio) - log_ratio - 1) * old.mask).sum() / old.mask.sum())  # k3 estimator
        entropy = float((old.entropy * old.mask).sum() / old.mask.sum())
        advantage = torch.tensor([a for _, a in trained], dtype=torch.float32)
        order = np.random.default_rng([config.seed, len(trained)]).permutation(len(trained))
        self.model.train()
        losses, clips, norms, skipped = [], [], [], 0
        for chunk in np.array_split(order, min(config.mini_batches, len(order))):
            with self.accelerator.split_between_processes(chunk.tolist()) as mine:
                batch = [sequences[i] for i in mine]
                scores = completion_scores(self.model, batch, pad_id, config.temperature, with_entropy=False)
                width = scores.logprobs.shape[1]
                output = clipped_policy_loss(
                    scores.logprobs, old.logprobs[mine, :width], advantage[mine], scores.mask,
                    epsilon_low=config.epsilon_low, epsilon_high=config.epsilon_high,
                )  # fmt: skip
                self.accelerator.backward(output.loss)
            norm = self.accelerator.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            if torch.isfinite(torch.as_tensor(norm)):
                self.optimizer.step()
            else:
                skipped += 1
                logger.warning("non-finite gradient norm: optimizer step skipped")
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(float(output.loss))
            clips.append(output.clip_fraction)
            norms.append(float(norm))
        self.skipped_nonfinite += skipped
        self.model.eval()
        return {
            "loss": float(np.mean(losses)), "clip_fraction": float(np.mean(clips)), "grad_norm": float(np.mean(norms)),
            "entropy": entropy, "kl_to_initial": kl, "skipped_nonfinite": float(skipped), "skipped_update": 0.0,
        }  # fmt: skip


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
