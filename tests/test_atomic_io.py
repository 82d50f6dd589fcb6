"""atomic_directory under kill -9 and concurrent writers: the old or the new folder survives, leftovers of
killed writers are cleared, a live writer's are kept, and two writers of one folder take turns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from coaug.atomic_io import atomic_directory

from .conftest import REPO

# Writes "new" into TARGET through atomic_directory and kills itself (SIGKILL) at a chosen point of the swap:
# "in" when the new folder is about to be renamed into place, "cleanup" when the old one is about to be deleted.
KILLED_WRITER = """
import os, shutil, signal, sys
from pathlib import Path
from coaug.atomic_io import atomic_directory

target, point = Path(sys.argv[1]), sys.argv[2]

def killing(real, fires):
    def call(*args, **kwargs):
        if fires(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

if point == "in":
    os.replace = killing(os.replace, lambda src, dst: Path(dst) == target)
else:
    shutil.rmtree = killing(shutil.rmtree, lambda path, *rest: Path(path).name.endswith(".old"))
with atomic_directory(target) as staging:
    (staging / "v").write_text("new")
"""


def write_folder(target: Path, value: str) -> None:
    with atomic_directory(target) as staging:
        (staging / "v").write_text(value)


def kill_writer_at(target: Path, point: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's coaug, whatever the venv has installed
    command = [sys.executable, "-c", KILLED_WRITER, str(target), point]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


@pytest.mark.parametrize(("point", "survivor", "left"), [
    ("in", "old", [".lock", ".old", ".tmp"]), ("cleanup", "new", [".lock", ".old"]),
])
def test_kill_9_during_the_swap_leaves_the_old_or_the_new_folder(tmp_path, point, survivor, left):
    target = tmp_path / "out"
    write_folder(target, "old")
    kill_writer_at(target, point)

    # Killed between the renames the old folder waits aside; killed after them the new one is in place. The
    # lock file stays, but not the lock: the kernel drops it with the process.
    asides = [p for p in tmp_path.iterdir() if p.name.endswith(".old")]
    found = (target / "v").read_text() if target.exists() else asides[0].joinpath("v").read_text()
    assert found == survivor and sorted(Path(name).suffix for name in leftovers(tmp_path)) == left

    # The next writer, even one that fails, first puts the survivor in place and clears the rest.
    with pytest.raises(RuntimeError), atomic_directory(target):
        raise RuntimeError("the next writer fails")
    assert (target / "v").read_text() == survivor and os.listdir(tmp_path) == ["out"]


def test_leftovers_of_killed_writers_go_but_a_live_writers_stay(tmp_path):
    target = tmp_path / "out"
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    for name in (f".out.{gone.pid}.k2j3h4g5.tmp", ".out.a8b7c6d5.tmp", f".out.{os.getppid()}.x1y2z3w4.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights").write_bytes(b"\0" * 64)
    (tmp_path / ".out.json.q9r8s7t6.tmp").write_text("{}")  # atomic_open's temporary for a sibling file out.json

    write_folder(target, "new")

    # Dead pid and no pid (written before pids were recorded) go; the live parent's folder and the file stay.
    assert leftovers(tmp_path) == sorted([".out.json.q9r8s7t6.tmp", f".out.{os.getppid()}.x1y2z3w4.tmp"])
    assert (target / "v").read_text() == "new"


def test_a_second_writer_of_the_same_folder_waits_for_the_first(tmp_path, lock_waits):
    target = tmp_path / "out"
    order = []

    def second() -> None:
        with atomic_directory(target) as staging:
            order.append("second writes")
            (staging / "v").write_text("second")

    with atomic_directory(target) as staging:
        (staging / "v").write_text("first")
        thread = threading.Thread(target=second)
        thread.start()
        assert lock_waits.wait(timeout=60), "the second writer did not wait for the lock"
        order.append("first done")
    thread.join()

    assert order == ["first done", "second writes"]
    assert (target / "v").read_text() == "second" and os.listdir(tmp_path) == ["out"]  # no lock file left
