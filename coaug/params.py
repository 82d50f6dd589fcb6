"""params.yaml: the single source of knobs. Lookups fail with one line naming the missing key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coaug.errors import CoaugError
from coaug.params_schema import RETRIEVERS, check


def load_params(path: str | Path) -> dict[str, Any]:
    """params.yaml, checked against coaug.params_schema before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise CoaugError(f"{path}: params file not found")
    text = path.read_text()
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CoaugError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(params, dict):
        raise CoaugError(f"{path}: expected a mapping at top level")
    check(params, str(path), text)
    return params


def get(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise CoaugError(f"params: missing key '{dotted}'")
        node = node[part]
    return node


def eval_qrels_path(params: dict[str, Any]) -> Path:
    """The qrels of ``dataset.eval_split``, which ``coaug prepare`` must have written."""
    split = get(params, "dataset.eval_split")
    folder = Path(get(params, "dataset.prepared_dir")) / "qrels"
    path = folder / f"{split}.tsv"
    if not path.is_file():
        prepared = ", ".join(sorted(p.stem for p in folder.glob("*.tsv"))) or "none"
        raise CoaugError(
            f"params: dataset.eval_split '{split}' was not prepared (no {path}; prepared splits: {prepared}): "
            "name one of those, or add it to dataset.splits and rerun `coaug prepare`"
        )
    return path


def system_names(params: dict[str, Any]) -> list[str]:
    """Baseline systems first, then augmented ones, in params.yaml order."""
    return [*params.get("systems", {}), *params.get("augmented_systems", {})]


def system(params: dict[str, Any], name: str) -> dict[str, Any]:
    """A system's retrieval recipe, normalised for both kinds of system:

    ``{"retriever", "corpus", "queries", "doc_augmentation", "query_augmentation", "query_repeat"}``
    where the augmentation entries are JSONL paths or None.
    """
    plain, augmented = params.get("systems", {}), params.get("augmented_systems", {})
    _defined_once(name, "systems", plain, "augmented_systems", augmented)
    if name in plain:
        config = dict(plain[name])
        _require(config, f"systems.{name}", ("retriever", "corpus", "queries"))
        config.update(doc_augmentation=None, query_augmentation=None, query_repeat=1)
    elif name in augmented:
        entry = augmented[name]
        _require(entry, f"augmented_systems.{name}", ("retriever", "augmentation", "augment_docs", "augment_queries", "query_repeat"))
        augmentation(params, entry["augmentation"])
        folder = Path(get(params, "augment.out_dir")) / entry["augmentation"]
        prepared = Path(get(params, "dataset.prepared_dir"))
        config = {
            "retriever": entry["retriever"],
            "corpus": str(prepared / "corpus.jsonl"),
            "queries": str(prepared / "queries.jsonl"),
            "doc_augmentation": str(folder / "corpus.jsonl") if entry["augment_docs"] else None,
            "query_augmentation": str(folder / "queries.jsonl") if entry["augment_queries"] else None,
            "query_repeat": entry["query_repeat"],
        }
    else:
        raise CoaugError(f"params: unknown system '{name}' (defined: {', '.join(system_names(params))})")
    if config["retriever"] not in RETRIEVERS:
        raise CoaugError(f"params: system '{name}' has retriever '{config['retriever']}', not one of {', '.join(RETRIEVERS)}")
    return config


def augmentation(params: dict[str, Any], name: str) -> dict[str, Any]:
    """``augmentations.<name>`` or ``trained_augmentations.<name>``, its policy defaulting to ``policy.model``.

    Trained augmentations are kept apart because their policy is the output of the train stage.
    """
    plain, trained = get(params, "augmentations"), params.get("trained_augmentations", {})
    _defined_once(name, "augmentations", plain, "trained_augmentations", trained)
    augmentations = {**plain, **trained}
    if name not in augmentations:
        raise CoaugError(f"params: unknown augmentation '{name}' (defined: {', '.join(augmentations)})")
    config = dict(augmentations[name])
    _require(config, f"augmentation '{name}'", ("format", "doc_prompt", "query_prompt"))
    config["policy"] = config.get("policy") or get(params, "policy.model")
    return config


def _defined_once(name: str, first: str, first_items: dict, second: str, second_items: dict) -> None:
    # One definition per name: a stage's DVC params list only the section its item is in.
    if name in first_items and name in second_items:
        raise CoaugError(f"params: '{name}' is defined in both {first} and {second}: rename one of them")


def _require(config: Any, where: str, keys: tuple[str, ...]) -> None:
    if not isinstance(config, dict):
        raise CoaugError(f"params: '{where}' must be a mapping")
    for key in keys:
        if key not in config:
            raise CoaugError(f"params: missing key '{where}.{key}'")


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
