"""Resumable embedding cache keyed by (encoder fingerprint, text hash).

Each encoded chunk is written as its own ``.npz`` file (atomically), so an interrupted run keeps every
finished chunk and a rerun encodes only texts it has never seen. Reruns over unchanged texts are free.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np

from coaug.atomic_io import atomic_open


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, root: str | Path, encoder_fingerprint: str):
        self.folder = Path(root) / encoder_fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        self._vectors: dict[str, np.ndarray] = {}
        for chunk in sorted(self.folder.glob("*.npz")):
            with np.load(chunk) as data:
                self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def missing(self, keys: list[str]) -> list[str]:
        return [key for key in dict.fromkeys(keys) if key not in self._vectors]

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        with atomic_open(self.folder / f"{uuid.uuid4().hex}.npz", "wb") as handle:
            np.savez(handle, keys=np.asarray(keys), vectors=vectors)
        self._vectors.update(zip(keys, vectors))

    def get(self, keys: list[str]) -> np.ndarray:
        return np.stack([self._vectors[key] for key in keys])
