"""generation.backend picks the decoding engine; it is not part of the augmentation cache key."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import coaug.policy.generation
from coaug.augment.run import generation_backend, generation_params
from coaug.cli import main
from coaug.errors import CoaugError
from coaug.params import load_params
from coaug.policy.generation import GenerationParams
from coaug.policy.generation_vllm import sampling_settings

from ..augment_project import make_project, read_params, write_params
from ..conftest import REPO

NO_VLLM = "generation.backend 'vllm' needs `pip install vllm` and a GPU"


def test_backend_stays_out_of_the_decoding_params():
    generation = load_params(REPO / "params.yaml").generation
    assert generation.backend == "transformers"
    expected = GenerationParams(max_new_tokens=24, repetition_penalty=1.2, do_sample=False)
    assert generation_params(generation) == expected
    assert generation_params(dataclasses.replace(generation, backend="vllm")) == expected


def test_transformers_backend_is_the_generation_engine():
    assert generation_backend("transformers", "none") is coaug.policy.generation.generate_batches
    assert generation_backend("transformers", "int8") is coaug.policy.generation.generate_batches


def test_vllm_backend_without_vllm_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # not importable, whatever this machine has
    with pytest.raises(CoaugError) as error:
        generation_backend("vllm", "none")
    assert str(error.value) == NO_VLLM


def test_vllm_refuses_an_int8_policy_and_unknown_backends_fail():
    with pytest.raises(CoaugError) as error:
        generation_backend("vllm", "int8")
    assert str(error.value) == "params: policy.quantize must be none for generation.backend 'vllm'"
    with pytest.raises(CoaugError) as error:
        generation_backend("onnx", "none")
    assert str(error.value) == "params: generation.backend must be one of transformers, vllm, got 'onnx'"


def test_augment_with_vllm_missing_fails_before_loading_the_policy(tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path, docs=2, max_new_tokens=2, batch_size=2)
    params = read_params(root)
    params["generation"]["backend"] = "vllm"
    params["policy"]["model"] = str(root / "not-loaded")
    write_params(root, params)
    monkeypatch.chdir(root)
    monkeypatch.setitem(sys.modules, "vllm", None)
    capsys.readouterr()
    assert main(["augment", "--name", "doc2query"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert errors == [f"coaug augment: error: {NO_VLLM}"]  # not the missing model: that is never loaded


def test_vllm_sampling_decodes_as_transformers_does():
    greedy = GenerationParams(max_new_tokens=24, repetition_penalty=1.2, temperature=1.2, seed=3)
    assert sampling_settings(greedy, 5, [2]) == {
        "max_tokens": 24,
        "repetition_penalty": 1.2,
        "stop_token_ids": [2],
        "seed": 5,
        "temperature": 0.0,
    }
    sampled = GenerationParams(max_new_tokens=8, repetition_penalty=1.0, do_sample=True, temperature=1.2, top_p=0.9)
    assert sampling_settings(sampled, 0, [2, 7]) == {
        "max_tokens": 8,
        "repetition_penalty": 1.0,
        "stop_token_ids": [2, 7],
        "seed": 0,
        "temperature": 1.2,
        "top_p": 0.9,
        "top_k": -1,
    }
    assert sampling_settings(GenerationParams(do_sample=True, top_k=50), 0, [2])["top_k"] == 50
