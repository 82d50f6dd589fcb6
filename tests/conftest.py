from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coaug import runtime_env
from coaug.params_schema import Params

runtime_env.configure()

REPO = Path(__file__).resolve().parents[1]
TINY_BEIR = Path(__file__).parent / "fixtures" / "tiny_beir"
NFCORPUS = REPO.parent / "shared" / "datasets" / "nfcorpus"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a ``long`` test first, each file's tests kept together and in order (a stable sort): with
    ``--dist loadfile --no-loadscope-reorder`` (make test) the workers start on them and the short files fill in
    around them, so both finish together. Among them the file with most tests first, as xdist orders by default:
    a worker takes a second file while its first has two tests or fewer left, so two long files of two tests
    would both go to the first worker."""
    tests_per_file = Counter(item.path for item in items)
    long_files = {item.path for item in items if item.get_closest_marker("long")}
    items.sort(key=lambda item: -tests_per_file[item.path] if item.path in long_files else 0)


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
