"""Policies in the MLflow model registry: log a trained policy as an MLflow model and alias it."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

CHALLENGER = "challenger"
# What loading the logged model needs; explicit because MLflow's inference trips on a missing torchvision.
REQUIRED_PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "tokenizers")


def pip_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in REQUIRED_PACKAGES]


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def register_policy(mlflow, policy_dir: str | Path, name: str, tags: dict[str, str]) -> str:
    """Log ``policy_dir`` (an HF folder) as a transformers model of the active run, register it as a new
    version of ``name``, point the ``challenger`` alias at it and tag it; returns the version."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer}, name="policy", task="text-generation",
        pip_requirements=pip_requirements(), registered_model_name=name,
    )  # fmt: skip
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER, version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version
