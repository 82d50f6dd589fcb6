"""Crash-safe file writes: a reader sees the old file or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from coaug.locks import locked, pid_alive

logger = logging.getLogger(__name__)

# Suffixes of a folder being built, and of the folder it replaces while the swap runs.
STAGING = ".tmp"
ASIDE = ".old"


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary sibling, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_json(path: str | Path, data: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it into place only when complete.

    Writers of the same ``path`` take turns (a lock beside it), and each first clears what a killed writer
    left behind (:func:`clear_leftovers`). The swap renames the old folder aside before the new one goes in,
    so a kill at any point leaves the old or the new folder, at ``path`` or (between the two renames) aside,
    where the next writer puts it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        clear_leftovers(path)
        # The pid in the name tells a later writer whether the folder's owner is gone.
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=STAGING))
        try:
            yield staging
            swap_into_place(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def swap_into_place(staging: Path, path: Path) -> None:
    """Old folder aside, new folder in, old folder gone: ``path`` is never deleted before its successor exists."""
    if not path.exists():
        os.replace(staging, path)
        return
    aside = staging.with_name(staging.name.removesuffix(STAGING) + ASIDE)
    os.replace(path, aside)
    os.replace(staging, path)
    shutil.rmtree(aside)


def clear_leftovers(path: Path) -> None:
    """Undo what killed writers of ``path`` left beside it: an old folder set aside goes back into place when
    no new one arrived (the newest, should there be several), and is deleted when one did; staging folders
    are deleted."""
    for aside in dead_leftovers(path, ASIDE):
        if path.exists():
            shutil.rmtree(aside)
        else:
            logger.warning("%s: restoring the previous output from %s (a swap was cut short)", path, aside.name)
            os.replace(aside, path)
    for staging in dead_leftovers(path, STAGING):
        logger.info("%s: removing %s, left by a killed run", path, staging.name)
        shutil.rmtree(staging)


def dead_leftovers(path: Path, suffix: str) -> list[Path]:
    """The folders ``.NAME.PID.XXXXXX<suffix>`` beside ``path`` whose writer is gone, newest first.

    Called with the lock held, so this process has none in progress: its own are from a call that failed.
    A name without a pid is from a coaug that did not record one, and counted as gone.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[a-z0-9_]+{re.escape(suffix)}")
    found = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_dir() and not (match[1] and writer_alive(int(match[1]))):
            found.append(candidate)
    return sorted(found, key=lambda folder: folder.stat().st_mtime, reverse=True)


def writer_alive(pid: int) -> bool:
    return pid != os.getpid() and pid_alive(pid)
