"""Multi-process training: ``coaug train`` with ``train.num_processes`` > 1 relaunches itself through
``accelerate launch`` (one process per GPU); the trainer's Accelerator then splits each update's
mini-batches between the processes and averages their gradients (coaug.rl.trainer).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping

from coaug.errors import CoaugError

logger = logging.getLogger(__name__)

# Set in every process that `accelerate launch` starts (torchrun's LOCAL_RANK/WORLD_SIZE for several
# processes, ACCELERATE_MIXED_PRECISION always); any of them means this process is already launched.
LAUNCHED_ENV = ("ACCELERATE_MIXED_PRECISION", "LOCAL_RANK", "WORLD_SIZE")


def needs_launch(num_processes: int, environ: Mapping[str, str]) -> bool:
    """Whether ``coaug train`` must relaunch itself: several processes asked for, and not yet launched."""
    if not isinstance(num_processes, int) or num_processes < 1:
        raise CoaugError(f"params: train.num_processes must be an integer >= 1, got {num_processes!r}")
    return num_processes > 1 and not is_launched(environ)


def is_launched(environ: Mapping[str, str]) -> bool:
    """Whether `accelerate launch` started this process."""
    return any(name in environ for name in LAUNCHED_ENV)


def is_main_process(environ: Mapping[str, str]) -> bool:
    """Rank 0 of a launched group (or an unlaunched process): the one that logs to MLflow and registers."""
    return environ.get("RANK", "0") == "0"


def launch_command(python: str, num_processes: int, params_file: str, verbose: bool, variant: str) -> list[str]:
    """``accelerate launch`` running ``coaug train --variant`` with the same params file in ``num_processes`` processes."""
    coaug = [
        "-m",
        "coaug.cli",
        "--params",
        params_file,
        *(["--verbose"] if verbose else []),
        "train",
        "--variant",
        variant,
    ]
    return [python, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes), *coaug]


def relaunch(num_processes: int, params_file: str, verbose: bool, variant: str) -> None:
    """Run the training under ``accelerate launch`` and wait for it; a failure is one line (the processes
    have logged their own errors)."""
    command = launch_command(sys.executable, num_processes, params_file, verbose, variant)
    logger.info("relaunching: %s", " ".join(command))
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise CoaugError(f"accelerate launch of {num_processes} training processes exited with code {code}")
