"""params.yaml is checked once, on load, against coaug.params_schema: one line naming file, line and key."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from coaug.errors import CoaugError
from coaug.params import load_params
from coaug.params_schema import Augmentation, Bm25, System

from .conftest import REPO

PARAMS_TEXT = (REPO / "params.yaml").read_text()


def line_of(text: str) -> int:
    (index,) = [i for i, line in enumerate(PARAMS_TEXT.splitlines()) if line.startswith(text)]
    return index + 1


def test_the_committed_params_pass_and_load_as_typed_sections():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params.bm25, Bm25) and params.bm25.k1 == 0.9
    assert isinstance(params.systems["bm25_flat"], System)
    assert isinstance(params.trained_augmentations["trained_sparse"], Augmentation)
    assert params.train["steps"] == 30  # a mapping: coaug.rl.config.TrainConfig types it per variant
    # Every value of the file and nothing else, as YAML reads it: no default was added on the way.
    assert dataclasses.asdict(params) == yaml.safe_load(PARAMS_TEXT)


@pytest.mark.parametrize(
    ("line", "changed", "message"),
    [
        ("  max_new_tokens: 24", "  max_new_token: 24", "generation.max_new_token: unknown key (did you mean max_new_tokens?)"),
        ("  k1: 0.9", "  kl: 0.9", "bm25.kl: unknown key (did you mean k1?)"),
        ("  k1: 0.9", "  k1: abc", "bm25.k1: must be a number, got 'abc'"),
        ("  hits: 1000", "  hits: '10'", "retrieval.hits: must be an integer, got '10'"),
        ("  hits: 1000", "  hits: -5", "retrieval.hits: must be >= 1, got -5"),
        ("  hits: 1000", "  hits: 0", "retrieval.hits: must be >= 1, got 0"),
        ("  b: 0.4", "  b: 1.5", "bm25.b: must be between 0 and 1, got 1.5"),
        ("dataset:", "datset:", "datset: unknown key (did you mean dataset?)"),
        ("  sha256: null", "  sha256: 5", "dataset.sha256: must be a string or null, got 5"),
        ("    retriever: bm25_flat", "    retriever: bm26", "systems.bm25_flat.retriever: must be one of bm25_flat, bm25_multifield, dense, got 'bm26'"),
        ("  eval_split: test", "  # eval_split removed", "dataset.eval_split: missing (the split every system is evaluated on)"),
    ],
)  # fmt: skip
def test_a_wrong_key_is_one_line_naming_file_line_and_key(line, changed, message, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(changed if row.startswith(line) and row.split("#")[0].strip() == line.strip() else row
                              for row in PARAMS_TEXT.splitlines()))  # fmt: skip
    # A removed key is reported at its section's line.
    expected_line = line_of("dataset:") if changed.startswith("  #") else line_of(line)
    with pytest.raises(CoaugError) as raised:
        load_params(path)
    assert str(raised.value) == f"{path}:{expected_line}: {message}"
