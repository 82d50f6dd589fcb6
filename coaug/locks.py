"""Who owns what across processes: an exclusive lock per output, and whether a recorded owner still runs.

Two runs of the same stage (two ``coaug augment``, a DVC stage and a flow) write the same outputs and the
same cache; the lock makes the second wait for the first, which then finds the work done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: hidden, beside it."""
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def locked(target: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` (a file or folder, present or not) for the block; another
    process or thread asking for it meanwhile waits, and logs that it waits."""
    path = lock_path(Path(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        yield
    finally:
        # Deleted while still held, so no lock file outlives its run; a waiter left holding the deleted
        # file notices (_is_current) and locks the path afresh.
        path.unlink(missing_ok=True)
        os.close(fd)


def _acquire(path: Path) -> int:
    """Lock ``path`` (creating it) and return its descriptor, with the owner's pid written in it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for %s: held by another run (pid %s)", path, _owner(path))
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_current(fd, path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (its previous owner deletes it on release)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _owner(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text().strip() or "unknown"
    return "unknown"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
