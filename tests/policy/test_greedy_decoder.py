"""coaug's own greedy loop (``coaug search``): generate's tokens and logits exactly, and only where that holds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import DynamicCache
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from coaug.augment.query_augmenter import QueryAugmenter
from coaug.policy import greedy_decoder
from coaug.policy.generation import GenerationParams, PromptPrefix, template_prefix, tokenize_conversations
from coaug.policy.greedy_decoder import GreedyDecoder, decodes, fuse_projections, next_token
from coaug.policy.model import load_policy
from coaug.policy.naive_generation import generate_one_at_a_time
from coaug.policy.packed_linear import pack_linear_layers, packs_dtype
from coaug.policy.prompts import Prompt
from coaug.policy.quantize import quantized

from ..tiny_models import TRAINING_TEXT, build_tiny_llama, build_tiny_qwen2
from .test_generation import conversations

GENERATION = GenerationParams(max_new_tokens=10)
DTYPES = [
    "float32",
    pytest.param(
        "bfloat16", marks=pytest.mark.skipif(not packs_dtype(torch.bfloat16), reason="no packed bf16 on this CPU")
    ),
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("greedy") / "tiny")


@pytest.fixture(scope="module")
def biased_folder(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("greedy") / "biased", attention_bias=True, mlp_bias=True)


@pytest.fixture(scope="module")
def qwen2_folder(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("greedy") / "qwen2")


@pytest.fixture
def folders(tiny_folder, biased_folder, qwen2_folder):
    return {"llama": tiny_folder, "llama with biases": biased_folder, "qwen2": qwen2_folder}


def packed_decoder(policy, generation=GENERATION, scripted=True) -> GreedyDecoder:
    fused = fuse_projections(policy)
    assert pack_linear_layers(policy)
    return GreedyDecoder(policy, generation, fused, scripted)


def randomise_biases(policy) -> None:
    """Llama and Qwen2 initialise their biases to zero; random ones make the fused bias matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in policy.model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["llama", "llama with biases", "qwen2"])
def test_the_loop_writes_generates_greedy_tokens(folders, tmp_path, dtype, model):
    reference = load_policy(str(folders[model]), tmp_path / "cache", dtype)
    policy = load_policy(str(folders[model]), tmp_path / "cache", dtype)
    randomise_biases(reference), randomise_biases(policy)
    convs = conversations()
    expected = generate_one_at_a_time(reference, convs, GENERATION)
    assert len({tuple(ids) for ids in expected}) > 1, "the tiny model answers prompts differently"

    decoder = packed_decoder(policy)
    prefix = PromptPrefix(
        policy, template_prefix(policy, lambda text: [convs[0][0], {"role": "user", "content": text}])
    )

    prompts = tokenize_conversations(policy, convs)
    assert [decoder(prompt, prefix) for prompt in prompts] == expected
    assert [decoder(prompt, None) for prompt in prompts] == expected


@pytest.mark.parametrize("scripted", [True, False], ids=["torchscript", "eager"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["llama", "llama with biases", "qwen2"])
def test_each_step_gives_the_models_own_logits_bit_for_bit(folders, tmp_path, dtype, model, scripted):
    policy = load_policy(str(folders[model]), tmp_path / "cache", dtype)
    randomise_biases(policy)
    decoder = packed_decoder(policy, scripted=scripted)
    prompt = tokenize_conversations(policy, conversations(3))[2]
    tokens = [17, 42, 99, 250, 3]

    with torch.inference_mode():
        logits, keys, values = decoder._prefill(prompt, None)
        cache = DynamicCache(config=policy.model.config)
        model_logits = (
            policy.model(input_ids=torch.tensor([prompt]), cache=cache, logits_to_keep=1).logits[:, -1].float()
        )
        assert torch.equal(logits, model_logits)
        for step, token in enumerate(tokens):
            position = len(prompt) + step
            output = policy.model(
                input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[position]]), cache=cache
            )
            assert torch.equal(decoder._step(token, position, keys, values), output.logits[:, -1].float())


def test_eos_stops_the_loop_and_is_returned(tiny_folder, tmp_path):
    policy = load_policy(str(tiny_folder), tmp_path / "cache")
    prompt = tokenize_conversations(policy, conversations(1))[0]
    free_running = packed_decoder(load_policy(str(tiny_folder), tmp_path / "cache"))(prompt, None)
    k = next(k for k in range(2, GENERATION.max_new_tokens) if free_running[k] not in free_running[:k])
    policy.model.generation_config.eos_token_id = [free_running[k], 10_000]

    assert packed_decoder(policy)(prompt, None) == free_running[: k + 1]


def test_next_token_is_generates_choice_after_the_repetition_penalty():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((1, 50), generator=generator)
    seen = torch.tensor([[4, 9, 9, 31, 0, 4, 17]])  # repeated ids are penalised once
    penalised = RepetitionPenaltyLogitsProcessor(1.2)(seen, logits.clone())

    assert next_token(logits, seen, 1.2) == int(penalised.argmax())
    # The unpenalised favourite (a seen token) loses to an unseen one once penalised.
    logits[0, 9], logits[0, 22] = 10.0, 9.0
    assert next_token(logits, seen, 1.2) == 22
    assert next_token(logits, seen, 1.0) == 9


def test_the_loop_runs_only_where_it_equals_generate(tiny_folder, qwen2_folder, tmp_path, monkeypatch):
    def policy(folder=tiny_folder):
        return load_policy(str(folder), tmp_path / "cache")

    assert decodes(policy(), GENERATION)
    assert decodes(policy(qwen2_folder), GENERATION)
    sliding = build_tiny_qwen2(tmp_path / "sliding", use_sliding_window=True, max_window_layers=0, sliding_window=16)
    assert not decodes(policy(sliding), GENERATION)
    assert not decodes(policy(), dataclasses.replace(GENERATION, do_sample=True))
    assert not decodes(policy(), dataclasses.replace(GENERATION, cache_implementation="static"))
    assert not decodes(quantized(policy(), "int8"), GENERATION)
    with_extra = policy()
    with_extra.model.generation_config.no_repeat_ngram_size = 3
    assert not decodes(with_extra, GENERATION)
    other_architecture = policy()
    other_architecture.model.config.model_type = "mistral"
    assert not decodes(other_architecture, GENERATION)
    other_activation = policy()
    other_activation.model.config.hidden_act = "gelu"
    assert not decodes(other_activation, GENERATION)
    monkeypatch.setattr(greedy_decoder, "packing_available", lambda policy: False)  # a GPU, or bf16 on AVX2
    assert not decodes(policy(), GENERATION)


def test_the_query_augmenter_decodes_with_the_loop_where_it_applies(tiny_folder, tmp_path):
    prompt = Prompt(name="q", format="plain", system="write keywords")
    queries = [" ".join(TRAINING_TEXT[k : k + 1 + 3 * k]) for k in range(5)]
    engines = {
        (packed, loop): QueryAugmenter(
            load_policy(str(tiny_folder), tmp_path / "cache"), prompt, GENERATION, packed, loop
        )
        for packed, loop in [(False, False), (True, False), (True, True), (False, True)]
    }

    assert {key: engine.own_loop for key, engine in engines.items()} == {
        (False, False): False,
        (True, False): False,
        (True, True): True,
        (False, True): False,
    }
    expected = [engines[False, False](query) for query in queries]
    assert len(set(expected)) > 1
    for engine in engines.values():
        assert [engine(query) for query in queries] == expected
