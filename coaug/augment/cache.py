"""Append-only, crash-safe store of generated augmentations.

One JSON line per result, keyed by (text id, the exact input text, prompt digest, model fingerprint,
generation params) — the text itself, so a changed truncation budget or corpus edit never hits stale entries. Each
batch is appended with one write and fsync'd, so ``kill -9`` can at worst leave a torn LAST line, which
the next open cuts off (logged). A corrupt complete line is not something a crash produces (a bad disk, a
stray write, an edit that dropped a field): it is skipped with one warning, so its text misses the cache and
is generated again, and every good entry is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# What the augment stage reads of an entry, with its type; an entry without one of them is corrupt.
FIELDS = {"key": str, "augmentation": str, "format_valid": bool, "new_tokens": int}


def cache_key(text_id: str, text: str, prompt_digest: str, model_fingerprint: str, generation: dict) -> str:
    payload = json.dumps([text_id, text, prompt_digest, model_fingerprint, generation], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class AugmentCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            logger.warning(
                "%s: dropping a torn last line (%d bytes) left by an interrupted run",
                self.path,
                len(data) - len(complete),
            )
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))
        # Split on b"\n" only: str.splitlines would also cut an entry at a U+2028 the model wrote.
        lines = complete.split(b"\n")[:-1]
        corrupt = []
        for line_no, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                entry = None
            if not is_entry(entry):
                corrupt.append(line_no)
                continue
            self.entries.setdefault(entry["key"], entry)
        if corrupt:
            logger.warning(
                "%s: skipped %d corrupt line%s of %d (first: line %d); their texts will be generated again",
                self.path,
                len(corrupt),
                "s" if len(corrupt) > 1 else "",
                len(lines),
                corrupt[0],
            )

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict:
        return self.entries[key]

    def append(self, entries: list[dict]) -> None:
        """Durably add ``entries`` (each with a ``key``) in one write."""
        fresh = [e for e in entries if e["key"] not in self.entries]
        if not fresh:
            return
        blob = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in fresh).encode("utf-8")
        with self.path.open("ab") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        for entry in fresh:
            self.entries[entry["key"]] = entry


def is_entry(entry: object) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(name), kind) for name, kind in FIELDS.items())
