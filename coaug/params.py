"""params.yaml: the single source of knobs, checked and typed once on load (coaug.params_schema)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coaug.errors import CoaugError
from coaug.params_schema import Augmentation, Dataset, Params, check, typed_params


def load_params(path: str | Path) -> Params:
    """params.yaml, checked against coaug.params_schema before anything runs, as typed sections."""
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
    return typed_params(params)


def eval_qrels_path(dataset: Dataset) -> Path:
    """The qrels of ``dataset.eval_split``, which ``coaug prepare`` must have written."""
    split = dataset.eval_split
    folder = Path(dataset.prepared_dir) / "qrels"
    path = folder / f"{split}.tsv"
    if not path.is_file():
        prepared = ", ".join(sorted(p.stem for p in folder.glob("*.tsv"))) or "none"
        raise CoaugError(
            f"params: dataset.eval_split '{split}' was not prepared (no {path}; prepared splits: {prepared}): "
            "name one of those, or add it to dataset.splits and rerun `coaug prepare`"
        )
    return path


def system_names(params: Params) -> list[str]:
    """Baseline systems first, then augmented ones, in params.yaml order."""
    return [*params.systems, *params.augmented_systems]


def main_job_systems(params: Params) -> list[str]:
    """The augmented systems ``make pipeline`` evaluates, in params.yaml order: those of an augmentation in
    ``main_job.augmentations`` and those of a trained augmentation whose policy is the one a
    ``main_job.train_variants`` variant trains (``train_outputs.policies_dir/<variant>``)."""
    policies = {Path(params.train_outputs.policies_dir) / variant for variant in params.main_job.train_variants}
    made = set(params.main_job.augmentations) | {
        name for name, entry in params.trained_augmentations.items() if entry.policy and Path(entry.policy) in policies
    }
    return [name for name, entry in params.augmented_systems.items() if entry.augmentation in made]


def experiment_systems(params: Params) -> list[str]:
    """The augmented systems outside the main job, which only ``make experiments`` makes."""
    main = set(main_job_systems(params))
    return [name for name in params.augmented_systems if name not in main]


def check_main_job(params: Params) -> None:
    """``main_job`` names defined augmentations and variants, and its systems hold the promotion's: ``make
    pipeline`` ends with a served policy."""
    for key, names, defined in (
        ("augmentations", params.main_job.augmentations, params.augmentations),
        ("train_variants", params.main_job.train_variants, params.train_variants),
    ):
        unknown = [name for name in names if name not in defined]
        if unknown:
            raise CoaugError(
                f"params: main_job.{key}: unknown {', '.join(unknown)} (defined in {key}: {', '.join(defined)})"
            )
    main = {*params.systems, *main_job_systems(params)}
    outside = [name for name in (params.promotion.system, *params.promotion.serve_systems) if name not in main]
    if outside:
        raise CoaugError(
            f"params: promotion names {', '.join(dict.fromkeys(outside))}, outside the main job: add their "
            "augmentation or train variant to main_job"
        )


@dataclass(frozen=True)
class SystemRecipe:
    """A system's retrieval recipe, the same for both kinds of system: the augmentations are JSONL paths,
    or None for a side that is not augmented."""

    retriever: str
    corpus: str
    queries: str
    doc_augmentation: str | None
    query_augmentation: str | None
    query_repeat: int


def system(params: Params, name: str) -> SystemRecipe:
    """``systems.<name>`` or ``augmented_systems.<name>`` as a :class:`SystemRecipe`."""
    _defined_once(name, "systems", params.systems, "augmented_systems", params.augmented_systems)
    if name in params.systems:
        plain = params.systems[name]
        return SystemRecipe(plain.retriever, plain.corpus, plain.queries, None, None, 1)
    if name not in params.augmented_systems:
        raise CoaugError(f"params: unknown system '{name}' (defined: {', '.join(system_names(params))})")
    entry = params.augmented_systems[name]
    augmentation(params, entry.augmentation)  # fails on an unknown augmentation
    if entry.query_repeat == 0 and not (entry.augment_queries and entry.retriever != "dense"):
        raise CoaugError(
            f"params: augmented_systems.{name}.query_repeat: 0 (the augmentation alone) needs augment_queries: true "
            "and a BM25 retriever"
        )
    folder = Path(params.augment.out_dir) / entry.augmentation
    prepared = Path(params.dataset.prepared_dir)
    return SystemRecipe(
        retriever=entry.retriever,
        corpus=str(prepared / "corpus.jsonl"),
        queries=str(prepared / "queries.jsonl"),
        doc_augmentation=str(folder / "corpus.jsonl") if entry.augment_docs else None,
        query_augmentation=str(folder / "queries.jsonl") if entry.augment_queries else None,
        query_repeat=entry.query_repeat,
    )


def augmentation(params: Params, name: str) -> Augmentation:
    """``augmentations.<name>`` or ``trained_augmentations.<name>``, its policy defaulting to ``policy.model``.

    Trained augmentations are kept apart because their policy is the output of the train stage.
    """
    _defined_once(name, "augmentations", params.augmentations, "trained_augmentations", params.trained_augmentations)
    augmentations = {**params.augmentations, **params.trained_augmentations}
    if name not in augmentations:
        raise CoaugError(f"params: unknown augmentation '{name}' (defined: {', '.join(augmentations)})")
    entry = augmentations[name]
    return dataclasses.replace(entry, policy=entry.policy or params.policy.model)


def _defined_once(name: str, first: str, first_items: dict, second: str, second_items: dict) -> None:
    # One definition per name: a stage's DVC params list only the section its item is in.
    if name in first_items and name in second_items:
        raise CoaugError(f"params: '{name}' is defined in both {first} and {second}: rename one of them")


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
