"""The serving bundle: what ``coaug search`` needs to answer queries like the promoted champion was evaluated.

``<serving_dir>/manifest.json`` names the registry version and holds a snapshot of everything that shaped
the evaluated ranking (systems, augmentation and its query prompt text, BM25/dense knobs), and
``<serving_dir>/indexes/<system>`` are copies of the evaluated indexes. A snapshot, not references: editing
params.yaml, a prompt file or rebuilding an index later must not change what is served until the next
promotion. The bundle is swapped in atomically, so a reader never sees half of one, and the champion's bundle
stays at hand until the alias has moved: after a kill anywhere in a promotion, the next ``coaug promote``
serves the champion's bundle again, whatever it decides (:func:`restore`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coaug import params as P
from coaug.atomic_io import atomic_directory, restore_directory, write_json
from coaug.errors import CoaugError
from coaug.params_schema import AugmentedSystem, Params
from coaug.policy.prompts import Prompt, load_prompt

MANIFEST = "manifest.json"
INDEXES = "indexes"


def build_manifest(params: Params, model_name: str, version: str, dataset_checksum: str) -> dict[str, Any]:
    """The manifest for serving ``version`` with ``promotion.serve_systems``.

    Every served system must be an augmented system using the augmentation of ``promotion.system``:
    that augmentation is the one the decision was taken on.
    """
    evaluated = params.promotion.system
    augmentation_name = _augmented_entry(params, evaluated, "promotion.system").augmentation
    systems = {}
    for name in params.promotion.serve_systems:
        entry = _augmented_entry(params, name, "promotion.serve_systems")
        if entry.augmentation != augmentation_name:
            raise CoaugError(
                f"params: promotion.serve_systems: '{name}' uses augmentation '{entry.augmentation}', not "
                f"'{augmentation_name}' of promotion.system '{evaluated}'"
            )
        systems[name] = dataclasses.asdict(entry)
    if not systems:
        raise CoaugError("params: promotion.serve_systems is empty")
    # The policy that serves is the registry version, not the augmentation's training-time path.
    augmentation = dataclasses.asdict(P.augmentation(params, augmentation_name))
    del augmentation["policy"]
    prompt_name = augmentation["query_prompt"]
    prompts_dir = params.augment.prompts_dir
    prompt_text = load_prompt(prompts_dir, augmentation["format"], prompt_name).system if prompt_name else None
    return {
        "model_name": model_name,
        "version": str(version),
        "systems": systems,
        "augmentation": {"name": augmentation_name, **augmentation, "query_prompt_text": prompt_text},
        "retrieval": {
            "bm25": {"k1": params.bm25.k1, "b": params.bm25.b, "multifield_weights": params.bm25.multifield_weights},
            "dense": {"encoder": params.dense.encoder, "max_seq_length": params.dense.max_seq_length},
        },
        "dataset_checksum": dataset_checksum,
        "prepared_dir": str(params.dataset.prepared_dir),
    }


def snapshot(
    serving_dir: str | Path,
    index_dirs: dict[str, Path],
    manifest: dict[str, Any],
    champion: str | None,
    publish: Callable[[], None],
) -> None:
    """Replace ``serving_dir``, which serves ``champion`` (None: nothing), with copies of ``index_dirs`` (system
    -> index folder) and the manifest. ``publish`` (the alias move) runs once the new bundle is in place and
    before the old one is deleted: a kill before it returns leaves the old bundle aside, which the next
    :func:`restore` or snapshot puts back, since the alias still names its version."""
    with atomic_directory(serving_dir, holds_bundle(champion), publish) as staging:
        for system, index_dir in index_dirs.items():
            shutil.copytree(index_dir, staging / INDEXES / system)
        write_json(staging / MANIFEST, manifest)


def restore(serving_dir: str | Path, champion: str | None) -> None:
    """Leave ``serving_dir`` serving ``champion``'s bundle again after a promotion cut short by a kill (its
    bundle set aside, or the challenger's in place before the alias moved), and an empty folder, which DVC
    expects as the stage's output, while nothing has been promoted."""
    restore_directory(serving_dir, holds_bundle(champion))


def holds_bundle(version: str | None) -> Callable[[Path], bool]:
    """Whether a serving folder holds the bundle of ``version``, or none when ``version`` is None."""
    return lambda folder: served_version(folder) == version


def served_version(folder: Path) -> str | None:
    """The version whose bundle ``folder`` holds; None for an empty folder (or a manifest that cannot be read)."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_manifest(serving_dir: str | Path) -> dict[str, Any]:
    path = Path(serving_dir) / MANIFEST
    if not path.is_file():
        raise CoaugError(f"no champion is being served: run `coaug promote` ({path} is missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def served_index(serving_dir: str | Path, system: str) -> Path:
    return Path(serving_dir) / INDEXES / system


def pick_system(manifest: dict[str, Any], dense: bool) -> str:
    """The first served system with a dense retriever (``dense``) or a BM25 one."""
    for name, entry in manifest["systems"].items():
        if (entry["retriever"] == "dense") == dense:
            return name
    kind = "dense" if dense else "BM25"
    raise CoaugError(f"no {kind} system is being served (served: {', '.join(manifest['systems'])})")


def query_prompt(manifest: dict[str, Any]) -> Prompt | None:
    """The query prompt as it was at promotion time; None when the augmentation has no query side."""
    augmentation = manifest["augmentation"]
    if not augmentation["query_prompt"]:
        return None
    return Prompt(
        name=augmentation["query_prompt"], format=augmentation["format"], system=augmentation["query_prompt_text"]
    )


def _augmented_entry(params: Params, name: str, where: str) -> AugmentedSystem:
    augmented = params.augmented_systems
    if name not in augmented:
        raise CoaugError(f"params: {where}: '{name}' is not an augmented system (defined: {', '.join(augmented)})")
    P.system(params, name)  # validates the entry's keys before they are read
    return augmented[name]
