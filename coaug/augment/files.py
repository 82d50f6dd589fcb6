"""The augment stage's output files: JSONL lines ``{"_id", "augmentation"}``, one per document or query,
which the index and evaluate stages join to the original texts (coaug.retrieval.combine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coaug.atomic_io import atomic_open


def write_augmentations(path: Path, results: dict[str, dict[str, Any]]) -> None:
    with atomic_open(path) as handle:
        for text_id, result in results.items():
            handle.write(
                json.dumps({"_id": text_id, "augmentation": result["augmentation"]}, ensure_ascii=False) + "\n"
            )


def read_augmentations(path: str | Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        return {record["_id"]: record["augmentation"] for record in map(json.loads, handle)}
