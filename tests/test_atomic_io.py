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

from coaug.atomic_io import atomic_directory, atomic_open, require_writable, restore_directory
from coaug.errors import CoaugError

from .conftest import REPO
from .permissions import run_bound

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


@pytest.mark.parametrize(
    ("point", "survivor", "left"),
    [
        ("in", "old", [".lock", ".old", ".tmp"]),
        ("cleanup", "new", [".lock", ".old"]),
    ],
)
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


def test_a_commit_that_fails_puts_the_old_folder_back(tmp_path):
    target = tmp_path / "out"
    write_folder(target, "old")

    def commit() -> None:
        assert (target / "v").read_text() == "new"  # runs with the new folder in place
        raise RuntimeError("the registry is down")

    with pytest.raises(RuntimeError), atomic_directory(target, commit=commit) as staging:
        (staging / "v").write_text("new")
    assert (target / "v").read_text() == "old" and os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize(
    ("in_place", "wanted", "survivor"),
    [
        (None, "old", "old"),
        (None, "new", "old"),  # killed between the renames: the old folder is all there is
        ("new", "old", "old"),  # killed after them, before the commit: the new folder is not wanted yet
        ("new", "new", "new"),  # killed after the commit
        ("", "old", "old"),  # an empty folder made where the old one was missing
    ],
)
def test_restore_puts_back_the_wanted_folder_and_clears_the_rest(tmp_path, in_place, wanted, survivor):
    target = tmp_path / "out"
    gone = subprocess.Popen(["true"])
    gone.wait()
    aside = tmp_path / f".out.{gone.pid}.k2j3h4g5.old"
    aside.mkdir()
    (aside / "v").write_text("old")
    (tmp_path / f".out.{gone.pid}.a1b2c3d4.tmp").mkdir()
    if in_place is not None:
        target.mkdir()
        if in_place:
            (target / "v").write_text(in_place)

    restore_directory(target, lambda folder: (folder / "v").is_file() and (folder / "v").read_text() == wanted)

    assert (target / "v").read_text() == survivor and os.listdir(tmp_path) == ["out"]


def test_restore_makes_an_empty_folder_where_there_is_none(tmp_path):
    restore_directory(tmp_path / "out")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("umask", "file_mode", "folder_mode"), [(0o002, 0o664, 0o775), (0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_outputs_are_created_as_the_umask_says(tmp_path, umask, file_mode, folder_mode):
    previous = os.umask(umask)
    try:
        with atomic_open(tmp_path / "file.json") as handle:
            handle.write("{}")
        write_folder(tmp_path / "folder", "v")
    finally:
        os.umask(previous)
    # As open() and mkdir() create them, and DVC and git: a teammate of the group can read a shared cache.
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == folder_mode


def test_writable_folders_pass_and_keep_nothing_of_the_check(tmp_path):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    require_writable([tmp_path / "cache" / "not" / "made" / "yet"], [tmp_path / "out", tmp_path / "new"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["out", "out/sub"]


def test_a_folder_below_a_regular_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CoaugError) as error:
        require_writable([tmp_path / "file" / "cache"])
    assert str(error.value) == f"{tmp_path}/file/cache: cannot be created: {tmp_path}/file is not a folder"


def test_a_read_only_folder_in_an_output_is_refused_in_one_line_even_for_root(tmp_path):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "sub").chmod(0o555)
    check = "from coaug.atomic_io import require_writable\nrequire_writable(replaced=['out'])"
    try:
        done = run_bound(["-c", check], tmp_path)
    finally:
        (tmp_path / "out" / "sub").chmod(0o755)
    assert done.stderr.splitlines()[-1] == "coaug.errors.CoaugError: out/sub: not writable (Permission denied)"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["out", "out/sub"]
