from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from coaug import runtime_env
from coaug.params_schema import Params

runtime_env.configure()

REPO = Path(__file__).resolve().parents[1]
TINY_BEIR = Path(__file__).parent / "fixtures" / "tiny_beir"
NFCORPUS = REPO.parent / "shared" / "datasets" / "nfcorpus"


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """A writable copy of the 5-doc BEIR fixture."""
    target = tmp_path / "tiny_beir"
    shutil.copytree(TINY_BEIR, target)
    return target


class Flag(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged."""

    def __init__(self, text: str, event: threading.Event):
        super().__init__()
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def lock_waits(caplog):
    """An event set when some process or thread logs that it waits for a lock (coaug.locks)."""
    caplog.set_level(logging.INFO, logger="coaug.locks")
    waiting = threading.Event()
    handler = Flag("waiting for", waiting)
    logging.getLogger("coaug.locks").addHandler(handler)
    yield waiting
    logging.getLogger("coaug.locks").removeHandler(handler)


def edited(params: Params, section: str, **changes: Any) -> Params:
    """``params`` with ``changes`` to one section: a typed one, or a mapping such as ``train``."""
    value = getattr(params, section)
    value = dataclasses.replace(value, **changes) if dataclasses.is_dataclass(value) else {**value, **changes}
    return dataclasses.replace(params, **{section: value})
