"""Commands bound by permission bits, whoever runs the tests.

Root passes every permission bit through three capabilities (override file and folder permissions, read and
search any folder, act as any file's owner). A command run with those dropped from its bounding set meets the
bits as any user does, so the tests of read-only folders and unreadable files are real in a root container too.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PR_CAPBSET_DROP = 24  # <linux/prctl.h>
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3  # <linux/capability.h>


def drop_permission_overrides() -> None:
    """In the child before exec: the program it runs gets none of the three capabilities, even as root."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {capability})")


def run_bound(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` with this checkout's coaug, bound by permission bits."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    overrides = drop_permission_overrides if os.geteuid() == 0 else None
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=overrides,
    )


def coaug_bound(params: Path, *args: str) -> tuple[int, str]:
    """``coaug --params PARAMS ARGS`` bound by permission bits: its exit code and the last line on stderr."""
    done = run_bound(["-m", "coaug.cli", "--params", str(params), *args], params.parent)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, (done.stderr.splitlines() or [""])[-1]
