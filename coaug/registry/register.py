"""Policies in the MLflow model registry: log a trained policy as an MLflow model and alias it.

Registering is safe to repeat: a rerun after a kill part-way completes the version it had created.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
# The version tag that names the registered folder's content (folder_sha256).
DIGEST_TAG = "policy_sha256"
HASH_CHUNK_BYTES = 1 << 24
# What loading the logged model needs; explicit because MLflow's inference trips on a missing torchvision.
REQUIRED_PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "tokenizers")


def pip_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in REQUIRED_PACKAGES]


def register_policy(mlflow, policy_dir: str | Path, name: str, tags: dict[str, str]) -> str:
    """Register ``policy_dir`` (an HF folder) as a version of ``name`` with ``tags`` and point the
    ``challenger`` alias at it; returns the version.

    One version per policy content: the version is created with its tags (and the folder's sha256) in one
    call, so it never lacks them, and registering the same folder again (a rerun after a kill before the
    alias was set) finds that version by its sha256 and finishes it instead of adding a duplicate.
    """
    digest = folder_sha256(policy_dir)
    client = mlflow.MlflowClient()
    version = registered_version(client, name, digest)
    if version is None:
        version = log_and_register(mlflow, policy_dir, name, {**tags, DIGEST_TAG: digest})
    else:
        logger.info("%s version %s already holds this policy (sha256 %s): finishing it", name, version, digest[:16])
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def registered_version(client, name: str, digest: str) -> str | None:
    """The newest version of ``name`` registered from a folder with sha256 ``digest``, if any."""
    found = client.search_model_versions(f"name = '{name}' and tags.{DIGEST_TAG} = '{digest}'")
    return str(max(int(found_version.version) for found_version in found)) if found else None


def log_and_register(mlflow, policy_dir: str | Path, name: str, tags: dict[str, str]) -> str:
    """Log ``policy_dir`` as a transformers model of the active run and create a version of ``name``
    from it, tags included; returns the version."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name="policy",
        task="text-generation",
        pip_requirements=pip_requirements(),
    )
    return str(mlflow.register_model(info.model_uri, name, tags=tags).version)


def folder_sha256(folder: str | Path) -> str:
    """sha256 over every file of ``folder`` (relative path and bytes): what the folder holds, not where."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
