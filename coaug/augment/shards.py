"""Corpus augmentation split into K shards that run in parallel (``coaug augment --shard I/K``).

Shard ``I`` generates every K-th text of each side, starting at position ``I``, into its own cache file
``<fingerprint>.shard-I-of-K.jsonl`` beside the main ``<fingerprint>.jsonl`` (same format, same keys).
The unsharded run, the DVC stage, first absorbs every shard file of its fingerprint into the main cache,
then finds everything cached and only writes the outputs. Absorbing is crash-safe: entries are appended
(fsync'd) before the shard file is deleted, and the main cache never stores a key twice, so a rerun after
a crash anywhere in between still ends with every entry exactly once.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from coaug.augment.cache import AugmentCache
from coaug.errors import CoaugError

logger = logging.getLogger(__name__)

SHARD_SPEC = re.compile(r"(\d+)/(\d+)")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/K"`` -> ``(I, K)``, shard ``I`` (counted from 0) of ``K``."""
    match = SHARD_SPEC.fullmatch(spec)
    if not match:
        raise CoaugError(f"--shard '{spec}': expected I/K, e.g. 0/4")
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise CoaugError(f"--shard '{spec}': I must be in 0..K-1")
    return index, count


def shard_ids(ids: list[str], index: int, count: int) -> list[str]:
    """The ids of shard ``index`` of ``count``: every ``count``-th id from position ``index``.

    Round robin over the input order keeps shards within one text of each other in size, and the shards
    of one list are a partition of it: every id lands in exactly one shard.
    """
    return ids[index::count]


def shard_cache_path(main: Path, index: int, count: int) -> Path:
    return main.with_name(f"{main.stem}.shard-{index}-of-{count}{main.suffix}")


def shard_cache_paths(main: Path) -> list[Path]:
    """Every shard file of the main cache ``main``, whatever the shard count it was split with."""
    return sorted(main.parent.glob(f"{main.stem}.shard-*-of-*{main.suffix}"))


def absorb_shards(cache: AugmentCache) -> int:
    """Move the entries of every shard file of ``cache`` into it, then delete the shard files; returns
    how many entries were new."""
    added = 0
    for path in shard_cache_paths(cache.path):
        shard = AugmentCache(path)
        fresh = [entry for key, entry in shard.entries.items() if key not in cache]
        cache.append(fresh)  # durable before the shard file goes
        path.unlink()
        added += len(fresh)
        logger.info(
            "absorbed %s: %d new entries, %d already cached", path.name, len(fresh), len(shard.entries) - len(fresh)
        )
    return added


class ShardCache:
    """What one shard sees: the main cache, read only, and its own shard file, which it appends to."""

    def __init__(self, main: AugmentCache, shard: AugmentCache):
        self.main, self.shard = main, shard

    def __contains__(self, key: str) -> bool:
        return key in self.main or key in self.shard

    def get(self, key: str) -> dict:
        return self.main.get(key) if key in self.main else self.shard.get(key)

    def append(self, entries: list[dict]) -> None:
        self.shard.append([entry for entry in entries if entry["key"] not in self.main])
