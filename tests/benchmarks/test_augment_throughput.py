"""benchmarks/augment_throughput.py times whole batches as a corpus pass forms them, not the file's first
documents (whose batch of 64 pads 19% of its prompt tokens on NFCorpus, a corpus pass 0.8%)."""

from __future__ import annotations

import importlib

import pytest

from ..conftest import REPO

BENCHMARKS = REPO / "benchmarks"


@pytest.fixture
def benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmarks run as scripts, importing their siblings
    return importlib.import_module("augment_throughput")


def test_sample_is_whole_length_batches_evenly_spaced(benchmark):
    lengths = [5, 10, 4, 9, 5, 8, 9, 5]  # length order (longest first, ties by index): 1, 3, 6, 5, 0, 4, 7, 2
    assert benchmark.corpus_pass_sample(lengths, 4, 2) == [6, 5, 7, 2]  # batches 2 and 4 of 4
    assert benchmark.corpus_pass_sample(lengths, 2, 2) == [0, 4]  # one batch: the middle one
    assert benchmark.corpus_pass_sample(lengths, 3, 2) == [6, 5, 7, 2]  # rounded up to whole batches
    assert benchmark.corpus_pass_sample(lengths, 100, 2) == [1, 3, 6, 5, 0, 4, 7, 2]  # at most the corpus


def test_padding_share_of_length_batches(benchmark):
    assert benchmark.padding_share([10, 8, 5, 5], 2) == pytest.approx(1 - 28 / 30)  # batches (10, 8) and (5, 5)
    assert benchmark.padding_share([7, 7, 7], 2) == 0.0
    assert benchmark.padding_share([10, 8, 5, 5], 4) == pytest.approx(1 - 28 / 40)
