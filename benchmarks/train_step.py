"""One RL step on NFCorpus, before and after the cheaper step, side by side in one run.

Each configuration starts from the same policy, runs ``--warm-up-steps`` untimed steps (the first calls
build the CPU kernels) and then times the same step (same queries, same seed) of the params.yaml ``train``
batch at ``--queries`` queries (by default 2 queries x (1 + 3 positives + 4 negatives) x 4 rollouts = 64
sampled texts): it prints the seconds spent sampling the rollouts, computing the rewards and updating, and
the ratio of each to the first configuration. The configurations:

- ``before``: what the trainer did until now: fp32, rollouts decoded 16 at a time, each prompt prefilled once per
  rollout (coaug.policy.generation.generate_batches over the repeated prompts), the model head and a
  full-vocabulary log-softmax on every prompt and completion position
  (coaug.rl.sequence_logprobs.full_softmax_scores), all sequences of a mini-batch in one forward, and the KL to the initial policy measured on every step (then from a deep
  copy held in memory; here the starting weights are reloaded, ~1 s); its rollouts go through the shared
  generation code, so they are sampled by inverse CDF (coaug.policy.sampling) like ``after``'s;
- ``after``: the defaults: each prompt prefilled once for all of its rollouts (coaug.rl.rollouts),
  completion-only log-probs, micro-batches whose shared prompt prefix is scored once and each of whose prompts is
  scored once for all of its rollouts there, the KL every ``kl_every`` steps,
  the old log-probs recorded while sampling where rollouts and update compute in fp32 (``train.old_logprobs``),
  ``train.dtype`` (auto: bf16 where the CPU computes bf16 natively: rollouts from a bf16 cast of the
  weights, scoring and update under autocast) and ``generation_batch_size``; full fine-tuning;
- ``after + recompute``: ``after`` with ``train.old_logprobs: recompute`` (a scoring pass before the update);
- ``after + lora``: the same with LoRA adapters (params.yaml ``train.lora``) instead of full fine-tuning.

The CPU's model and flags come first. Do not run it beside the pipeline: 2 cores are shared.

    .venv/bin/python benchmarks/train_step.py [--step 1] [--configurations before after after+recompute after+lora]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from coaug import params as P, runtime_env
from coaug.data.beir import read_corpus, read_qrels, read_queries
from coaug.policy.generation import generate_batches
from coaug.policy.precision import describe_machine, machine_dtype
from coaug.policy.prompts import load_prompt
from coaug.rl.config import train_config
from coaug.rl.rollouts import SampledCompletion
from coaug.rl.run import make_similarity, with_lora
from coaug.rl.sequence_logprobs import full_softmax_scores

from cpu_kernels import describe_kernels  # a sibling script: benchmarks/ is on the path

CONFIGURATIONS = ("before", "after", "after+recompute", "after+lora")


def main() -> None:
    args = parse_args()
    runtime_env.configure()
    import torch
    from accelerate import Accelerator

    from coaug.policy.model import load_policy
    from coaug.rl import trainer as trainer_module

    params = P.load_params(args.params)
    base = dataclasses.replace(train_config(params, args.variant, args.params), queries_per_step=args.queries)
    data = Path(args.data)
    corpus, queries = read_corpus(data / "corpus.jsonl"), read_queries(data / "queries.jsonl")
    qrels = read_qrels(data / "qrels" / f"{base.split}.tsv")
    prompts = {
        kind: load_prompt(params.augment.prompts_dir, base.format, getattr(base, f"{kind}_prompt"))
        for kind in ("query", "doc")
    }
    similarity = make_similarity(base, params.dense, corpus)
    cache_dir = params.policy.cache_dir
    print(
        f"CPU: {describe_machine()} | {describe_kernels()} | train.dtype {base.dtype} -> {machine_dtype(base.dtype)} | load {load()}"
    )
    texts = base.queries_per_step * (1 + base.k_pos + base.k_hardneg + base.k_randneg) * base.rollouts
    print(
        f"step {args.step}: {texts} sampled texts, {base.max_new_tokens} new tokens, {base.mini_batches} mini-batches"
    )

    fast_scores, fast_rollouts = trainer_module.completion_scores, trainer_module.sample_rollouts
    first = None
    for name in args.configurations:
        config = base
        if name == "before":
            config = dataclasses.replace(
                base,
                dtype="float32",
                kl_every=1,
                micro_batch_size=texts,
                generation_batch_size=16,
                old_logprobs="recompute",
            )
            # The reference scorer in the fast scorer's place: head + log-softmax on every position.
            trainer_module.completion_scores = lambda model, sequences, micro_batch_size, **kw: full_softmax_scores(
                model, sequences, **kw
            )
            trainer_module.sample_rollouts = repeated_prompt_rollouts
        else:
            trainer_module.completion_scores, trainer_module.sample_rollouts = fast_scores, fast_rollouts
        if name == "after+recompute":
            config = dataclasses.replace(base, old_logprobs="recompute")
        if name == "after+lora":
            config = dataclasses.replace(base, lora={**base.lora, "enabled": True})
        torch.manual_seed(config.seed)
        policy = load_policy(config.policy, cache_dir, "float32")
        if config.lora.get("enabled"):
            policy.model = with_lora(policy.model, config.lora)
        trainer = trainer_module.CoaugTrainer(
            config,
            policy,
            prompts,
            corpus,
            queries,
            qrels,
            similarity,
            Accelerator(cpu=True),
            lambda: load_policy(config.policy, cache_dir, "float32").model,
        )
        for warm_up in range(args.warm_up_steps):  # first calls build the CPU kernels; training amortises that
            trainer.step(args.step - args.warm_up_steps + warm_up)
        metrics = trainer.step(args.step)
        times = {
            "sampling": metrics["generation_seconds"],
            "update": metrics["update_seconds"],
            "reward": metrics["step_seconds"] - metrics["generation_seconds"] - metrics["update_seconds"],
            "step": metrics["step_seconds"],
        }
        first = first or times
        print(
            f"{name:<15} "
            + "  ".join(f"{k} {v:6.1f} s (x{first[k] / v:4.2f})" for k, v in times.items())
            + f"  | loss {metrics.get('loss', float('nan')):.4f} grad norm {metrics.get('grad_norm', float('nan')):.3f}"
            f" entropy {metrics.get('entropy', float('nan')):.3f} | load {load()}"
        )


def repeated_prompt_rollouts(policy, conversations, rollouts, params, batch_size, desc, score_temperature=None):
    """The rollouts as the trainer sampled them before coaug.rl.rollouts: every conversation ``rollouts``
    times through generate_batches, so each prompt is prefilled once per rollout (nothing recorded)."""
    repeated = [conversation for conversation in conversations for _ in range(rollouts)]
    for indices, completions in generate_batches(policy, repeated, params, batch_size, desc):
        yield [index // rollouts for index in indices], [SampledCompletion(c) for c in completions]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="../shared/datasets/nfcorpus", help="a BEIR folder with the train split")
    parser.add_argument("--step", type=int, default=1, help="the timed step's batch (1: a step without the KL metric)")
    parser.add_argument(
        "--warm-up-steps", type=int, default=1, help="untimed steps run first, on the batches before --step"
    )
    parser.add_argument("--variant", default="coaug", help="a key of train_variants (the train settings timed)")
    parser.add_argument(
        "--queries",
        type=int,
        default=2,
        help="queries per step (default 2: the 64-text step the "
        "before/after figures name; the 'before' scorer holds every position's logits at once and "
        "ran out of 24 GiB at the 128 texts of 4 queries)",
    )
    parser.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS), choices=CONFIGURATIONS)
    return parser.parse_args()


def load() -> str:
    return "%.1f" % os.getloadavg()[0]


if __name__ == "__main__":
    main()
