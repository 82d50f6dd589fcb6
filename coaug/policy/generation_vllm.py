"""Inference decoding on vLLM (``generation.backend: vllm``): the contract of
:func:`coaug.policy.generation.generate_batches` on a GPU engine with paged attention and continuous batching.

The engine loads the policy's own Hugging Face folder (the one :func:`coaug.policy.model.load_policy` loaded) and
gets the same chat-templated token ids, stop tokens and decoding settings; completions are cut and decoded
by :func:`coaug.policy.generation.completion_from_ids`, as on transformers. Results still come back ``batch_size``
texts at a time so that the augmentation cache can persist them: raise ``augment.batch_size`` to keep the
engine busy. Untested on the project's CPU machines (vLLM needs a GPU). Training rollouts stay on
transformers, whose weights change every step.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from coaug.errors import CoaugError
from coaug.policy.generation import (
    Completion,
    GenerationParams,
    completion_from_ids,
    length_buckets,
    tokenize_conversations,
)
from coaug.policy.model import Policy

logger = logging.getLogger(__name__)


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise CoaugError("generation.backend 'vllm' needs `pip install vllm` and a GPU")


def sampling_settings(params: GenerationParams, seed: int, stop_token_ids: list[int]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` that decode as ``params`` does on transformers."""
    settings = {
        "max_tokens": params.max_new_tokens,
        "repetition_penalty": params.repetition_penalty,
        "stop_token_ids": stop_token_ids,
        "seed": seed,
    }
    if not params.do_sample:
        return {**settings, "temperature": 0.0}  # vLLM's greedy
    # top_k 0 means "off" in GenerationParams; vLLM spells it -1.
    return {**settings, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k or -1}


def generate_batches(
    policy: Policy, conversations: list[list[dict]], params: GenerationParams, batch_size: int, desc: str
) -> Iterator[tuple[list[int], list[Completion]]]:
    """Like :func:`coaug.policy.generation.generate_batches`: ``(indices, completions)`` per batch of similar length,
    batch ``b`` sampling with seed ``params.seed + b``."""
    require_vllm()
    from vllm import SamplingParams

    dtype = str(policy.model.dtype).removeprefix("torch.")
    engine = _engine(policy.model.name_or_path, policy.tokenizer.name_or_path, dtype)
    eos = policy.model.generation_config.eos_token_id
    stop = eos if isinstance(eos, list) else [eos]
    prompts = tokenize_conversations(policy, conversations)
    with tqdm(total=len(prompts), desc=desc, unit="text") as bar:
        for number, indices in enumerate(length_buckets([len(p) for p in prompts], batch_size)):
            sampling = SamplingParams(**sampling_settings(params, params.seed + number, stop))
            outputs = engine.generate([{"prompt_token_ids": prompts[i]} for i in indices], sampling, use_tqdm=False)
            bar.update(len(indices))
            yield indices, [completion_from_ids(policy, list(output.outputs[0].token_ids)) for output in outputs]


@functools.lru_cache(maxsize=1)
def _engine(model_dir: str, tokenizer_dir: str, dtype: str):
    # One engine per process: it takes most of the GPU's memory, and both sides of a run share it.
    from vllm import LLM

    logger.info("starting vLLM on %s (%s)", model_dir, dtype)
    return LLM(model=model_dir, tokenizer=tokenizer_dir, dtype=dtype)
