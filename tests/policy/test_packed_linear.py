"""Prepacked Linear layers: the same logits and the same greedy output as the plain layers, in search too."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from coaug.augment.query_augmenter import QueryAugmenter
from coaug.policy import packed_linear
from coaug.policy.generation import GenerationParams, generate_batches
from coaug.policy.model import load_policy
from coaug.policy.packed_linear import PackedLinear, pack_linear_layers, packing_available, packs_dtype
from coaug.policy.prompts import Prompt

from ..tiny_models import TRAINING_TEXT, build_tiny_llama
from .test_generation import conversations


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("packed") / "tiny")


BF16_PACKING = pytest.mark.skipif(
    not packs_dtype(torch.bfloat16),
    reason="oneDNN packs no bf16 weights on this CPU (AVX2 only): the fallback is tested below",
)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=BF16_PACKING)])
def test_packed_layers_give_the_logits_and_greedy_output_of_the_plain_ones(tiny_folder, tmp_path, dtype):
    plain = load_policy(str(tiny_folder), tmp_path / "cache", dtype)
    fast = load_policy(str(tiny_folder), tmp_path / "cache", dtype)
    linear_count = sum(type(m) is torch.nn.Linear for m in plain.model.modules())
    params = GenerationParams(max_new_tokens=10)
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])

    assert pack_linear_layers(fast)

    assert sum(isinstance(m, PackedLinear) for m in fast.model.modules()) == linear_count
    assert not any(type(m) is torch.nn.Linear for m in fast.model.modules())
    with torch.inference_mode():
        torch.testing.assert_close(fast.model(input_ids=ids).logits, plain.model(input_ids=ids).logits)
    convs = conversations()
    expected = [c.token_ids for _, done in generate_batches(plain, convs, params, 1, "plain") for c in done]
    assert [c.token_ids for _, done in generate_batches(fast, convs, params, 1, "packed") for c in done] == expected


def test_nothing_is_packed_off_the_cpu(tiny_folder, tmp_path):
    policy = load_policy(str(tiny_folder), tmp_path / "cache")
    on_gpu = dataclasses.replace(policy, model=type("OnGpu", (), {"device": torch.device("cuda")})())

    assert not packing_available(on_gpu)
    assert not pack_linear_layers(on_gpu)


def test_a_dtype_onednn_cannot_pack_here_keeps_the_plain_layers(tiny_folder, tmp_path, monkeypatch):
    # What an AVX2-only CPU answers for bf16 (oneDNN raised there instead of packing).
    monkeypatch.setattr(packed_linear, "packs_dtype", lambda dtype: dtype != torch.bfloat16)
    policy = load_policy(str(tiny_folder), tmp_path / "cache", "bfloat16")
    linear_count = sum(type(m) is torch.nn.Linear for m in policy.model.modules())

    assert not packing_available(policy)
    assert not pack_linear_layers(policy)
    assert sum(type(m) is torch.nn.Linear for m in policy.model.modules()) == linear_count > 0
    assert packing_available(load_policy(str(tiny_folder), tmp_path / "cache", "float32"))


def test_onednn_packs_float32_weights():
    assert packs_dtype(torch.float32)


def test_a_packed_query_augmenter_writes_what_the_plain_one_writes(tiny_folder, tmp_path):
    prompt = Prompt(name="q", format="plain", system="write keywords")
    generation = GenerationParams(max_new_tokens=10)
    plain = QueryAugmenter(load_policy(str(tiny_folder), tmp_path / "cache"), prompt, generation, packed_weights=False)
    fast = QueryAugmenter(load_policy(str(tiny_folder), tmp_path / "cache"), prompt, generation, packed_weights=True)
    queries = [" ".join(TRAINING_TEXT[k : k + 1 + 3 * k]) for k in range(5)]
    expected = [plain(query) for query in queries]

    assert (plain.packed, fast.packed) == (False, True)
    assert len(set(expected)) > 1, "the tiny model must answer different queries differently"
    assert [fast(query) for query in queries] == expected
