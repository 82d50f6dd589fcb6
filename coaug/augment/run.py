"""The ``augment`` stage: one augmentation per corpus document and per evaluation query (METHOD §7).

Results go through :class:`AugmentCache` batch by batch, so an interrupted run (even ``kill -9``) resumes
where it stopped: nothing is lost, duplicated or generated twice. The outputs are small JSONL files
``{"_id", "augmentation"}`` that the index/evaluate stages join to the original texts (coaug.retrieval.combine).
``coaug augment --shard I/K`` fills the cache for one shard only, so that K workers can share a corpus pass
(coaug.augment.shards); ``generation.backend`` picks the engine that decodes (transformers or vLLM).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coaug.atomic_io import atomic_directory, write_json
from coaug.augment.cache import AugmentCache, cache_key
from coaug.augment.files import write_augmentations
from coaug.augment.shards import ShardCache, absorb_shards, shard_cache_path, shard_ids
from coaug.data.beir import read_corpus, read_qrels, read_queries
from coaug.errors import CoaugError
from coaug.locks import locked
from coaug.params_schema import Augment, Augmentation, Dataset, Generation, Policy as PolicySection
from coaug.policy.generation import Completion, GenerationParams, generate_batches
from coaug.policy.model import Policy, load_policy
from coaug.policy.packed_linear import pack_linear_layers
from coaug.policy.parsing import parse_response
from coaug.policy.prompts import Prompt, conversation, document_input, load_prompt
from coaug.policy.quantize import quantized

logger = logging.getLogger(__name__)

SIDES = ("doc", "query")
SIDE_LABELS = {"doc": "docs", "query": "queries"}
BACKENDS = ("transformers", "vllm")

# generate_batches(policy, conversations, params, batch_size, desc) -> (indices, completions) per batch
Generate = Callable[
    [Policy, list[list[dict]], GenerationParams, int, str], Iterator[tuple[list[int], list[Completion]]]
]


def augment_texts(
    policy: Policy,
    prompt: Prompt,
    texts: dict[str, str],
    generation: GenerationParams,
    cache: AugmentCache | ShardCache,
    batch_size: int,
    desc: str,
    generate: Generate,
    backend: str,
) -> dict[str, dict[str, Any]]:
    """Augment every ``id -> user text``; cached results are reused, new ones are cached per batch.

    Empty texts are skipped with a warning and get an empty, format-invalid augmentation. The cache key
    holds the decoding settings and the engine (``backend``); the policy fingerprint holds its dtype and
    whether its weights were packed: engines, kernels and dtypes round differently, so their outputs are never
    mixed.
    """
    generation_key = decoding_key(generation, backend)
    keys = {i: cache_key(i, text, prompt.digest, policy.fingerprint, generation_key) for i, text in texts.items()}
    empty = [text_id for text_id, text in texts.items() if not text.strip()]
    if empty:
        logger.warning("%s: skipping %d empty texts (e.g. '%s')", desc, len(empty), empty[0])
    todo = [text_id for text_id, text in texts.items() if text.strip() and keys[text_id] not in cache]
    logger.info(
        "%s: %d texts, %d cached, %d to generate", desc, len(texts), len(texts) - len(todo) - len(empty), len(todo)
    )
    conversations = [conversation(prompt, texts[text_id]) for text_id in todo]
    for indices, completions in generate(policy, conversations, generation, batch_size, desc):
        entries = []
        for index, completion in zip(indices, completions):
            parsed = parse_response(completion.text, prompt.format)
            text_id = todo[index]
            entries.append(
                {
                    "key": keys[text_id],
                    "id": text_id,
                    "response": completion.text,
                    "augmentation": parsed.augmentation,
                    "format_valid": parsed.format_valid,
                    "new_tokens": completion.new_tokens,
                }
            )
        cache.append(entries)
    skipped = {"augmentation": "", "format_valid": False, "new_tokens": 0}
    return {text_id: cache.get(keys[text_id]) if keys[text_id] in cache else skipped for text_id in texts}


def decoding_key(generation: GenerationParams, backend: str) -> dict[str, Any]:
    """What the cache key records of the decoding: every setting and the engine that ran it."""
    return {**dataclasses.asdict(generation), "backend": backend}


def generation_params(generation: Generation) -> GenerationParams:
    """Inference decoding from params.yaml ``generation`` (greedy by default, METHOD §7); ``backend`` is
    read apart (:func:`generation_backend`)."""
    return GenerationParams(
        max_new_tokens=generation.max_new_tokens,
        repetition_penalty=generation.repetition_penalty,
        do_sample=generation.do_sample,
    )


def generation_backend(name: str, quantize: str) -> Generate:
    """The ``generate_batches`` of backend ``name`` (params.yaml ``generation.backend``) for a policy
    quantised as ``policy.quantize`` says."""
    if name == "transformers":
        return generate_batches
    if name == "vllm":
        from coaug.policy import generation_vllm

        if quantize != "none":
            # vLLM loads the weights from disk: the int8 fingerprint would label unquantised output.
            raise CoaugError("params: policy.quantize must be none for generation.backend 'vllm'")
        generation_vllm.require_vllm()
        return generation_vllm.generate_batches
    raise CoaugError(f"params: generation.backend must be one of {', '.join(BACKENDS)}, got '{name}'")


@dataclass(frozen=True)
class Inputs:
    """What an augmentation run reads: its entry, the policy, the user text of each side (id -> text) and
    whether the policy's Linear weights were prepacked for oneDNN."""

    augmentation: Augmentation
    policy: Policy
    texts: dict[str, dict[str, str]]
    packed_weights: bool

    def cache_path(self, cache_dir: str) -> Path:
        return Path(cache_dir) / f"{self.policy.fingerprint}.jsonl"


def load_inputs(
    augmentation: Augmentation, policy_params: PolicySection, augment: Augment, dataset: Dataset, backend: str
) -> Inputs:
    prepared = Path(dataset.prepared_dir)
    policy = load_policy(augmentation.policy, policy_params.cache_dir, policy_params.dtype)
    policy = quantized(policy, policy_params.quantize)
    # vLLM decodes with its own copy of the weights: packing this one would only label its outputs wrongly.
    packed_weights = policy_params.packed_weights and backend == "transformers" and pack_linear_layers(policy)
    if packed_weights:  # other kernels round differently: their outputs get cache entries of their own
        policy = dataclasses.replace(policy, fingerprint=f"{policy.fingerprint}-packed")
    texts: dict[str, dict[str, str]] = {"doc": {}, "query": {}}
    if augmentation.doc_prompt:
        budget = augment.doc_max_tokens
        corpus = read_corpus(prepared / "corpus.jsonl")
        texts["doc"] = {i: document_input(policy.tokenizer, d["title"], d["text"], budget) for i, d in corpus.items()}
    if augmentation.query_prompt:
        qrels = read_qrels(prepared / "qrels" / f"{dataset.eval_split}.tsv")
        queries = read_queries(prepared / "queries.jsonl")
        texts["query"] = {qid: queries[qid] for qid in qrels if qid in queries}
    return Inputs(augmentation, policy, texts, packed_weights)


def augment_sides(
    name: str,
    inputs: Inputs,
    generation: Generation,
    augment: Augment,
    cache: AugmentCache | ShardCache,
    generate: Generate,
    label: str = "",
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """Augment both sides of ``inputs`` through ``cache``; returns the stats and ``side -> id -> result``."""
    decoding = generation_params(generation)
    batch_size = augment.batch_size
    backend = generation.backend
    augmentation, policy = inputs.augmentation, inputs.policy
    # The resolved dtype and engine: with policy.dtype auto the same params give other outputs on another CPU.
    stats: dict[str, Any] = {
        "policy": augmentation.policy,
        "fingerprint": policy.fingerprint,
        "format": augmentation.format,
        "dtype": policy.dtype,
        "backend": backend,
        "packed_weights": inputs.packed_weights,
    }
    results = {}
    for side in SIDES:
        prompt_name = augmentation.doc_prompt if side == "doc" else augmentation.query_prompt
        if not prompt_name:
            results[side] = {}
            continue
        prompt = load_prompt(augment.prompts_dir, augmentation.format, prompt_name)
        started = time.perf_counter()
        desc = f"{name} {SIDE_LABELS[side]}{label}"
        results[side] = augment_texts(
            policy, prompt, inputs.texts[side], decoding, cache, batch_size, desc, generate, backend
        )
        stats[side] = side_stats(results[side], time.perf_counter() - started)
    return stats, results


def run_augmentation(
    name: str,
    augmentation: Augmentation,
    out_dir: str | Path,
    policy_params: PolicySection,
    generation: Generation,
    augment: Augment,
    dataset: Dataset,
) -> dict[str, Any]:
    """Augment the corpus and/or the eval-split queries as ``augmentations.<name>`` says.

    Shard caches left by ``coaug augment --shard`` for this policy are absorbed first, so after a sharded
    run this only finds everything cached and writes the outputs. A concurrent run on the same cache waits
    for this one (the cache's lock) and then finds everything cached too.
    """
    generate = generation_backend(generation.backend, policy_params.quantize)
    inputs = load_inputs(augmentation, policy_params, augment, dataset, generation.backend)
    with locked(inputs.cache_path(augment.cache_dir)):  # read the cache only once no other run is adding to it
        cache = AugmentCache(inputs.cache_path(augment.cache_dir))
        absorb_shards(cache)
        stats, results = augment_sides(name, inputs, generation, augment, cache, generate)
    with atomic_directory(out_dir) as staging:
        for side, filename in (("doc", "corpus.jsonl"), ("query", "queries.jsonl")):
            write_augmentations(staging / filename, results[side])
        write_json(staging / "stats.json", stats)
    return stats


def run_augmentation_shard(
    name: str,
    augmentation: Augmentation,
    index: int,
    count: int,
    policy_params: PolicySection,
    generation: Generation,
    augment: Augment,
    dataset: Dataset,
) -> dict[str, Any]:
    """Generate shard ``index`` of ``count`` of each side into the shard's own cache file (reusing what the
    main cache holds); writes no outputs. Returns the shard's stats."""
    generate = generation_backend(generation.backend, policy_params.quantize)
    inputs = load_inputs(augmentation, policy_params, augment, dataset, generation.backend)
    main = inputs.cache_path(augment.cache_dir)
    shard = shard_cache_path(main, index, count)
    texts = {side: {i: every[i] for i in shard_ids(list(every), index, count)} for side, every in inputs.texts.items()}
    inputs = dataclasses.replace(inputs, texts=texts)
    with locked(shard):  # two runs of one shard take turns, as runs on the main cache do
        cache = ShardCache(AugmentCache(main), AugmentCache(shard))
        stats, _ = augment_sides(name, inputs, generation, augment, cache, generate, f" shard {index}/{count}")
    return stats


def side_stats(results: dict[str, dict[str, Any]], seconds: float) -> dict[str, float]:
    count = max(len(results), 1)
    tokens = sum(r["new_tokens"] for r in results.values())
    return {
        "texts": len(results),
        "format_valid_rate": sum(bool(r["format_valid"]) for r in results.values()) / count,
        "mean_new_tokens": tokens / count,
        "empty_rate": sum(not r["augmentation"] for r in results.values()) / count,
        "seconds": seconds,
    }
