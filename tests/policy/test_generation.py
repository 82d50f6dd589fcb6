"""Batched generation engine: batched greedy == one-at-a-time greedy, every index once, eos stops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coaug.policy.generation import (
    Completion,
    GenerationParams,
    PromptPrefix,
    common_prefix,
    generate_batches,
    length_buckets,
    template_prefix,
    tokenize_conversations,
)
from coaug.policy.model import load_policy
from coaug.policy.naive_generation import generate_one_at_a_time

from ..tiny_models import TRAINING_TEXT, build_tiny_llama

MAX_NEW_TOKENS = 10


def conversations(count: int = 6) -> list[list[dict]]:
    """Conversations of clearly different prompt lengths (1 to 26 words) so batches need padding."""
    return [
        [
            {"role": "system", "content": "write keywords"},
            {"role": "user", "content": " ".join(TRAINING_TEXT[k : k + 1 + 5 * k])},
        ]
        for k in range(count)
    ]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("generation") / "tiny")


@pytest.fixture
def policy(tiny_folder, tmp_path):
    return load_policy(str(tiny_folder), tmp_path / "cache")


def run_all(policy, convs, params, batch_size) -> tuple[list[list[int]], dict[int, Completion]]:
    yielded, results = [], {}
    for indices, completions in generate_batches(policy, convs, params, batch_size, desc="test"):
        assert len(indices) == len(completions) <= batch_size
        yielded.append(indices)
        results.update(zip(indices, completions))
    return yielded, results


def decode(policy, ids: list[int]) -> str:
    return policy.tokenizer.decode(ids, skip_special_tokens=True).strip()


@pytest.mark.parametrize(("batch_size", "cache"), [(1, None), (3, None), (6, None), (3, "static")])
def test_batched_greedy_equals_one_at_a_time_greedy(policy, batch_size, cache):
    convs = conversations()
    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS, cache_implementation=cache)
    lengths = {len(ids) for ids in tokenize_conversations(policy, convs)}
    reference = generate_one_at_a_time(policy, convs, GenerationParams(max_new_tokens=MAX_NEW_TOKENS))
    expected = [decode(policy, ids) for ids in reference]
    assert len(lengths) == len(convs), "prompts of distinct lengths, so batches are padded"
    assert len(set(expected)) > 1, "the tiny model must answer different prompts differently"

    _, results = run_all(policy, convs, params, batch_size)

    assert [results[i].text for i in range(len(convs))] == expected


def test_every_index_is_yielded_exactly_once_within_the_token_limit(policy):
    convs = conversations(7)

    yielded, results = run_all(policy, convs, GenerationParams(max_new_tokens=MAX_NEW_TOKENS), batch_size=3)

    assert sorted(i for batch in yielded for i in batch) == list(range(7))
    assert [len(batch) for batch in yielded] == [3, 3, 1]
    assert all(1 <= results[i].new_tokens <= MAX_NEW_TOKENS for i in range(7))


def test_eos_stops_a_sequence_and_is_counted_but_not_written(policy):
    convs = conversations()
    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS)
    free_running = generate_one_at_a_time(policy, convs, params)[0]
    # Declare as eos a token the model writes at step k (and not before): generation must stop there.
    k = next(k for k in range(2, MAX_NEW_TOKENS) if free_running[k] not in free_running[:k])
    policy.model.generation_config.eos_token_id = free_running[k]

    _, results = run_all(policy, convs, params, batch_size=6)

    assert results[0] == Completion(
        text=decode(policy, free_running[:k]), new_tokens=k + 1, token_ids=tuple(free_running[: k + 1])
    )
    assert all(results[i].new_tokens <= MAX_NEW_TOKENS for i in range(len(convs)))


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(policy):
    convs = conversations()
    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=1.2, seed=7)
    rng_before = torch.random.get_rng_state()

    _, first = run_all(policy, convs, params, batch_size=3)
    _, again = run_all(policy, convs, params, batch_size=3)
    _, other_seed = run_all(policy, convs, GenerationParams(**{**params.__dict__, "seed": 8}), batch_size=3)

    assert first == again
    assert first != other_seed
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_length_buckets_group_similar_lengths_longest_first():
    assert length_buckets([5, 1, 3, 9, 2, 7, 3], batch_size=3) == [[3, 5, 0], [2, 6, 4], [1]]
    with pytest.raises(ValueError):
        length_buckets([1], batch_size=0)


def test_prompt_is_the_chat_template_with_the_generation_prompt(policy):
    (ids,) = tokenize_conversations(policy, [[{"role": "user", "content": "green tea"}]])

    assert policy.tokenizer.decode(ids) == "<|im_start|>user\ngreen tea<|im_end|>\n<|im_start|>assistant\n"


def test_common_prefix_leaves_every_prompt_a_token_to_feed():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 7]]) == [1, 2]
    assert common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == [1, 2]  # not the whole of the shorter prompt
    assert common_prefix([[9, 1], [8, 1]]) == []
    assert common_prefix([]) == []


@pytest.mark.parametrize("do_sample", [False, True])
def test_prefix_cache_gives_the_same_output_as_a_whole_prefill(policy, do_sample):
    convs = conversations(7)
    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS, do_sample=do_sample, temperature=1.2, seed=3)
    prompts = tokenize_conversations(policy, convs)
    assert len(common_prefix(prompts)) >= 5, "the shared chat template + system prompt is the prefix"

    whole = dict(
        pair
        for indices, done in generate_batches(policy, convs, params, 3, "t", reuse_prefix=False)
        for pair in zip(indices, done)
    )
    _, shared = run_all(policy, convs, params, batch_size=3)

    assert shared == whole


def test_a_prefix_computed_once_serves_later_calls(policy):
    convs = conversations(4)
    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS)
    prefix = PromptPrefix(
        policy, template_prefix(policy, lambda text: [convs[0][0], {"role": "user", "content": text}])
    )
    _, expected = run_all(policy, convs, params, batch_size=1)

    for index, conv in enumerate(convs):  # one conversation per call, as `coaug search` does
        ((_, (completion,)),) = generate_batches(policy, [conv], params, 1, "t", prefix=prefix)
        assert prefix.starts(tokenize_conversations(policy, [conv])[0])
        assert completion == expected[index]
