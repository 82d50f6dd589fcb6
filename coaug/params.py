"""params.yaml: the single source of knobs. Lookups fail with one line naming the missing key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coaug.errors import CoaugError

RETRIEVERS = ("bm25_flat", "bm25_multifield", "dense")


def load_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CoaugError(f"{path}: params file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CoaugError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(params, dict):
        raise CoaugError(f"{path}: expected a mapping at top level")
    return params


def get(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise CoaugError(f"params: missing key '{dotted}'")
        node = node[part]
    return node


def system(params: dict[str, Any], name: str) -> dict[str, Any]:
    systems = get(params, "systems")
    if name not in systems:
        raise CoaugError(f"params: unknown system '{name}' (defined: {', '.join(systems)})")
    config = systems[name]
    for key in ("retriever", "corpus", "queries"):
        if key not in config:
            raise CoaugError(f"params: missing key 'systems.{name}.{key}'")
    if config["retriever"] not in RETRIEVERS:
        raise CoaugError(f"params: systems.{name}.retriever '{config['retriever']}' is not one of {', '.join(RETRIEVERS)}")
    return config


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
