from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coaug import runtime_env

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
