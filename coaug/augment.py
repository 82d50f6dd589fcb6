"""The ``augment`` stage: one augmentation per corpus document and per evaluation query (METHOD §7).

Results go through :class:`AugmentCache` batch by batch, so an interrupted run (even ``kill -9``) resumes
where it stopped: nothing is lost, duplicated or generated twice. The outputs are small JSONL files
``{"_id", "augmentation"}`` that the index/evaluate stages join to the original texts (coaug.combine).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from coaug import params as P
from coaug.atomic_io import atomic_directory, atomic_open, write_json
from coaug.augment_cache import AugmentCache, cache_key
from coaug.beir import read_corpus, read_qrels, read_queries
from coaug.generation import GenerationParams, generate_batches
from coaug.parsing import parse_response
from coaug.policy import Policy, load_policy
from coaug.quantize import quantized
from coaug.prompts import Prompt, conversation, document_input, load_prompt

logger = logging.getLogger(__name__)

SIDES = ("doc", "query")
SIDE_LABELS = {"doc": "docs", "query": "queries"}


def augment_texts(
    policy: Policy, prompt: Prompt, texts: dict[str, str], generation: GenerationParams, cache: AugmentCache,
    batch_size: int, desc: str,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Augment every ``id -> user text``; cached results are reused, new ones are cached per batch.

    Empty texts are skipped with a warning and get an empty, format-invalid augmentation.
    """
    generation_key = dataclasses.asdict(generation)
    keys = {i: cache_key(i, text, prompt.digest, policy.fingerprint, generation_key) for i, text in texts.items()}
    empty = [text_id for text_id, text in texts.items() if not text.strip()]
    if empty:
        logger.warning("%s: skipping %d empty texts (e.g. '%s')", desc, len(empty), empty[0])
    todo = [text_id for text_id, text in texts.items() if text.strip() and keys[text_id] not in cache]
    logger.info("%s: %d texts, %d cached, %d to generate", desc, len(texts), len(texts) - len(todo) - len(empty), len(todo))
    conversations = [conversation(prompt, texts[text_id]) for text_id in todo]
    for indices, completions in generate_batches(policy, conversations, generation, batch_size, desc):
        entries = []
        for index, completion in zip(indices, completions):
            parsed = parse_response(completion.text, prompt.format)
            text_id = todo[index]
            entries.append({
                "key": keys[text_id], "id": text_id, "response": completion.text,
                "augmentation": parsed.augmentation, "format_valid": parsed.format_valid,
                "new_tokens": completion.new_tokens,
            })  # fmt: skip
        cache.append(entries)
    skipped = {"augmentation": "", "format_valid": False, "new_tokens": 0}
    return {text_id: cache.get(keys[text_id]) if keys[text_id] in cache else skipped for text_id in texts}


def generation_params(params: dict[str, Any]) -> GenerationParams:
    """Inference decoding from params.yaml ``generation`` (greedy by default, METHOD §7)."""
    section = P.get(params, "generation")
    fields = {f.name for f in dataclasses.fields(GenerationParams)}
    return GenerationParams(**{k: v for k, v in section.items() if k in fields})


def run_augmentation(params: dict[str, Any], name: str, out_dir: str | Path) -> dict[str, Any]:
    """Augment the corpus and/or the eval-split queries as ``augmentations.<name>`` says."""
    config = P.augmentation(params, name)
    prepared = Path(P.get(params, "dataset.prepared_dir"))
    policy = load_policy(config["policy"], P.get(params, "policy.cache_dir"), P.get(params, "policy.dtype"))
    policy = quantized(policy, P.get(params, "policy.quantize"))
    generation = generation_params(params)
    batch_size = P.get(params, "augment.batch_size")
    cache = AugmentCache(Path(P.get(params, "augment.cache_dir")) / f"{policy.fingerprint}.jsonl")
    texts = {"doc": {}, "query": {}}
    if config["doc_prompt"]:
        budget = P.get(params, "augment.doc_max_tokens")
        corpus = read_corpus(prepared / "corpus.jsonl")
        texts["doc"] = {i: document_input(policy.tokenizer, d["title"], d["text"], budget) for i, d in corpus.items()}
    if config["query_prompt"]:
        qrels = read_qrels(prepared / "qrels" / f"{P.get(params, 'dataset.eval_split')}.tsv")
        queries = read_queries(prepared / "queries.jsonl")
        texts["query"] = {qid: queries[qid] for qid in qrels if qid in queries}
    stats: dict[str, Any] = {"policy": config["policy"], "fingerprint": policy.fingerprint, "format": config["format"]}
    results = {}
    for side in SIDES:
        prompt_name = config[f"{side}_prompt"]
        if not prompt_name:
            results[side] = {}
            continue
        prompt = load_prompt(P.get(params, "augment.prompts_dir"), config["format"], prompt_name)
        started = time.perf_counter()
        results[side] = augment_texts(policy, prompt, texts[side], generation, cache, batch_size, f"{name} {SIDE_LABELS[side]}")
        stats[side] = side_stats(results[side], time.perf_counter() - started)
    with atomic_directory(out_dir) as staging:
        for side, filename in (("doc", "corpus.jsonl"), ("query", "queries.jsonl")):
            write_augmentations(staging / filename, results[side])
        write_json(staging / "stats.json", stats)
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


def write_augmentations(path: Path, results: dict[str, dict[str, Any]]) -> None:
    with atomic_open(path) as handle:
        for text_id, result in results.items():
            handle.write(json.dumps({"_id": text_id, "augmentation": result["augmentation"]}, ensure_ascii=False) + "\n")


def read_augmentations(path: str | Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        return {record["_id"]: record["augmentation"] for record in map(json.loads, handle)}
