"""Crash-safe file writes: a reader sees the old file or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from coaug.errors import CoaugError
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
            os.fchmod(handle.fileno(), umasked(0o666))
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


def umasked(mode: int) -> int:
    """``mode`` less the process umask, as open() and mkdir() create files and folders: mkstemp and mkdtemp make
    them private (0600, 0700), which would keep a teammate sharing a DVC cache or a served bundle out."""
    return mode & ~process_umask()


def process_umask() -> int:
    # Linux shows it; elsewhere it can only be read by setting it, briefly stricter for other threads.
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.is_file() else []:
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def any_folder(folder: Path) -> bool:
    return True


@contextlib.contextmanager
def atomic_directory(
    path: str | Path, wanted: Callable[[Path], bool] = any_folder, commit: Callable[[], None] | None = None
) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it into place only when complete.

    Writers of the same ``path`` take turns (a lock beside it), and each first clears what a killed writer
    left behind (:func:`clear_leftovers`, which ``wanted`` guides). The swap renames the old folder aside before
    the new one goes in, so a kill at any point leaves the old or the new folder, at ``path`` or (between the
    two renames) aside, where the next writer puts it back. ``commit`` runs between the new folder's arrival and
    the old one's deletion (the promote stage moves its alias there); should it raise, the old folder goes back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        clear_leftovers(path, wanted)
        # The pid in the name tells a later writer whether the folder's owner is gone.
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=STAGING))
        try:
            staging.chmod(umasked(0o777))
            yield staging
            swap_into_place(staging, path, commit)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def swap_into_place(staging: Path, path: Path, commit: Callable[[], None] | None = None) -> None:
    """Old folder aside, new folder in, ``commit``, old folder gone: ``path`` is never deleted before its
    successor exists and committed; a commit that raises puts the old folder back."""
    aside = staging.with_name(staging.name.removesuffix(STAGING) + ASIDE) if path.exists() else None
    if aside:
        os.replace(path, aside)
    os.replace(staging, path)
    try:
        if commit:
            commit()
    except BaseException:
        os.replace(path, staging)
        if aside:
            os.replace(aside, path)
        raise
    if aside:
        shutil.rmtree(aside)


def restore_directory(path: str | Path, wanted: Callable[[Path], bool] = any_folder) -> None:
    """Clear what killed writers of ``path`` left, as the next :func:`atomic_directory` would (``wanted`` choosing
    the folder that stays), for a run that may not write it; an empty folder when there is none (an output DVC
    expects to find)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        clear_leftovers(path, wanted)
        path.mkdir(exist_ok=True)


def clear_leftovers(path: Path, wanted: Callable[[Path], bool] = any_folder) -> None:
    """Undo what killed writers of ``path`` left beside it. An old folder set aside goes back into place when
    no new one arrived, or when ``wanted`` turns down the one that did and accepts the old one (the newest,
    should there be several); otherwise it is deleted. Staging folders are deleted."""
    for aside in dead_leftovers(path, ASIDE):
        if path.exists() and (wanted(path) or not wanted(aside)):
            shutil.rmtree(aside)
            continue
        logger.warning("%s: restoring the previous output from %s (a swap was cut short)", path, aside.name)
        if path.exists():
            # Out of the way under a staging name first: a kill before the next rename leaves it to be deleted.
            os.replace(path, path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{STAGING}"))
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


def require_writable(written: Iterable[str | Path] = (), replaced: Iterable[str | Path] = ()) -> None:
    """Refuse, in one line naming the folder, a folder that a command is going to write and cannot: called
    before its work, so that nothing (a corpus pass) is done only to be lost when its outputs are written.

    ``written`` are folders that get new files (caches, locks, files replaced by :func:`atomic_open`), checked
    where they are or, while they do not exist, in the nearest folder above (where they will be created).
    ``replaced`` are folders that :func:`atomic_directory` swaps in whole: checked beside them (staging folder,
    lock, the old folder set aside) and in every folder of the old one, which the swap deletes. The check is the
    write itself, a file created and deleted: whatever would stop the real write (permission bits, a read-only
    mount, a path through a regular file) stops it.
    """
    folders = []
    for output in map(Path, replaced):
        folders.append(output.parent)
        if output.is_dir():
            folders += [Path(root) for root, _, _ in os.walk(output)]
    for folder in [*folders, *map(Path, written)]:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise CoaugError(f"{folder}: cannot be created: {existing} is not a folder")
        try:
            fd, probe = tempfile.mkstemp(dir=existing, prefix=".coaug-write-check.")
        except OSError as exc:
            where = folder if existing == folder else f"{folder}: cannot be created: {existing}"
            raise CoaugError(f"{where}: not writable ({exc.strerror})") from None
        os.close(fd)
        os.unlink(probe)
