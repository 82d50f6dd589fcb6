"""The augment stage on a tiny local model: complete outputs, cache reuse, and resume after kill -9."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from coaug import params as P
from coaug.augment import run as augment
from coaug.augment.files import read_augmentations
from coaug.augment.run import run_augmentation
from coaug.cli import main

from ..augment_project import cache_lines, make_project


@pytest.fixture
def project(tmp_path):
    """A scratch project (tests/augment_project.py) in ``tmp_path``."""

    def make(docs: int, max_new_tokens: int, batch_size: int) -> Path:
        return make_project(tmp_path, docs, max_new_tokens, batch_size)

    return make


def test_augment_writes_every_text_once_and_reuses_the_cache(project, monkeypatch, caplog):
    root = project(docs=7, max_new_tokens=6, batch_size=3)
    monkeypatch.chdir(root)
    assert main(["augment", "--name", "untrained"]) == 0
    docs = read_augmentations(root / "augmented" / "untrained" / "corpus.jsonl")
    queries = read_augmentations(root / "augmented" / "untrained" / "queries.jsonl")
    assert sorted(docs) == sorted(f"D{i}" for i in range(7)) and sorted(queries) == ["Q0", "Q1", "Q2", "Q3"]
    stats = json.loads((root / "augmented" / "untrained" / "stats.json").read_text())
    assert stats["doc"]["texts"] == 7 and stats["query"]["texts"] == 4
    assert 0 < stats["doc"]["mean_new_tokens"] <= 6
    assert len(cache_lines(root)) == 11

    caplog.clear()
    caplog.set_level(logging.INFO, logger="coaug")
    assert main(["augment", "--name", "untrained"]) == 0
    assert "untrained docs: 7 texts, 7 cached, 0 to generate" in caplog.text
    assert read_augmentations(root / "augmented" / "untrained" / "corpus.jsonl") == docs
    assert len(cache_lines(root)) == 11


def test_dtype_and_engine_are_recorded_and_separate_cache_entries(project, monkeypatch):
    root = project(docs=3, max_new_tokens=4, batch_size=3)
    monkeypatch.chdir(root)
    params = yaml.safe_load((root / "params.yaml").read_text())

    def run(dtype: str) -> dict:
        params["policy"]["dtype"] = dtype
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        assert main(["augment", "--name", "untrained"]) == 0
        return json.loads((root / "augmented" / "untrained" / "stats.json").read_text())

    fp32 = run("float32")
    bf16 = run("bfloat16")

    assert (fp32["dtype"], fp32["backend"], bf16["dtype"]) == ("float32", "transformers", "bfloat16")
    assert fp32["fingerprint"] != bf16["fingerprint"]
    # One cache file per fingerprint: the bf16 run generated its own 3 docs + 3 eval queries.
    assert sorted(len(path.read_text().splitlines()) for path in (root / "cache").glob("*.jsonl")) == [6, 6]


def test_packed_weights_write_the_plain_augmentations_into_cache_entries_of_their_own(project, monkeypatch):
    root = project(docs=5, max_new_tokens=6, batch_size=2)
    monkeypatch.chdir(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    out = root / "augmented" / "untrained"

    def run(packed: bool) -> tuple[dict, dict, dict]:
        params["policy"]["packed_weights"] = packed
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        assert main(["augment", "--name", "untrained"]) == 0
        stats = json.loads((out / "stats.json").read_text())
        return stats, read_augmentations(out / "corpus.jsonl"), read_augmentations(out / "queries.jsonl")

    plain_stats, plain_docs, plain_queries = run(False)
    packed_stats, packed_docs, packed_queries = run(True)

    assert (plain_stats["packed_weights"], packed_stats["packed_weights"]) == (False, True)
    assert packed_stats["fingerprint"] == plain_stats["fingerprint"] + "-packed"
    assert (packed_docs, packed_queries) == (plain_docs, plain_queries)
    # Each engine generated its own 5 docs + 4 eval queries.
    assert sorted(len(path.read_text().splitlines()) for path in (root / "cache").glob("*.jsonl")) == [9, 9]


def test_a_vllm_run_leaves_the_weights_it_does_not_decode_with_unpacked(project):
    params = P.load_params(project(docs=2, max_new_tokens=2, batch_size=2) / "params.yaml")

    def inputs(backend: str) -> augment.Inputs:
        entry = P.augmentation(params, "untrained")
        return augment.load_inputs(entry, params.policy, params.augment, params.dataset, backend)

    vllm, transformers = inputs("vllm"), inputs("transformers")
    assert (vllm.packed_weights, transformers.packed_weights) == (False, True)
    assert transformers.policy.fingerprint == vllm.policy.fingerprint + "-packed"


def test_cache_key_names_the_engine():
    from coaug.augment.cache import cache_key
    from coaug.augment.run import decoding_key
    from coaug.policy.generation import GenerationParams

    keys = {
        cache_key("D1", "text", "p", "m", decoding_key(GenerationParams(), backend))
        for backend in ("transformers", "vllm")
    }
    assert len(keys) == 2


def test_doc_only_augmentation_leaves_queries_empty(project, monkeypatch):
    root = project(docs=3, max_new_tokens=4, batch_size=2)
    monkeypatch.chdir(root)
    assert main(["augment", "--name", "doc2query"]) == 0
    assert read_augmentations(root / "augmented" / "doc2query" / "queries.jsonl") == {}
    assert len(read_augmentations(root / "augmented" / "doc2query" / "corpus.jsonl")) == 3


def test_kill_9_mid_run_then_rerun_completes_every_id_exactly_once(project):
    docs = 60
    root = project(docs=docs, max_new_tokens=8, batch_size=4)
    command = [sys.executable, "-m", "coaug.cli", "augment", "--name", "doc2query"]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(cache_lines(root)) < 12 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = len(cache_lines(root))
    assert 12 <= partial < docs, "the run must be killed part-way for this test to mean anything"
    assert not (root / "augmented" / "doc2query").exists()

    rerun = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{docs} texts, {partial} cached, {docs - partial} to generate" in rerun.stderr
    ids = [entry["id"] for entry in cache_lines(root)]
    assert sorted(ids) == sorted(f"D{i}" for i in range(docs))
    out = (root / "augmented" / "doc2query" / "corpus.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["_id"] for line in out) == sorted(f"D{i}" for i in range(docs))


def test_two_concurrent_runs_generate_each_text_once(project, monkeypatch, lock_waits, caplog):
    """The second run waits for the first (the cache's lock), then finds every text cached."""
    root = project(docs=5, max_new_tokens=4, batch_size=2)
    params, out_dir = P.load_params(root / "params.yaml"), root / "augmented" / "doc2query"

    def augment_docs() -> dict:
        return run_augmentation(
            "doc2query",
            P.augmentation(params, "doc2query"),
            out_dir,
            params.policy,
            params.generation,
            params.augment,
            params.dataset,
        )

    generated: list[str] = []  # the desc of each text generated, by either run
    second_run: dict = {}
    second_blocked_or_done = lock_waits  # also set when the second run returns, should it not wait

    def run_second() -> None:
        try:
            second_run["stats"] = augment_docs()
        finally:
            second_blocked_or_done.set()

    second = threading.Thread(target=run_second)
    real_generate = augment.generate_batches

    def generate(policy, conversations, generation, batch_size, desc):
        for indices, completions in real_generate(policy, conversations, generation, batch_size, desc):
            if not generated and not second.is_alive():  # the first run, part-way: start the second
                second.start()
                assert second_blocked_or_done.wait(timeout=120)
            generated.extend(desc for _ in completions)
            yield indices, completions

    monkeypatch.setattr(augment, "generate_batches", generate)
    caplog.set_level(logging.INFO, logger="coaug")
    first = augment_docs()
    second.join()

    assert generated == ["doc2query docs"] * 5
    assert "doc2query docs: 5 texts, 5 cached, 0 to generate" in caplog.text
    assert sorted(entry["id"] for entry in cache_lines(root)) == [f"D{i}" for i in range(5)]
    assert second_run["stats"]["doc"]["texts"] == first["doc"]["texts"] == 5
    assert sorted(read_augmentations(out_dir / "corpus.jsonl")) == [f"D{i}" for i in range(5)]


def test_unknown_augmentation_and_missing_model_are_one_line(project, monkeypatch, capsys):
    root = project(docs=2, max_new_tokens=2, batch_size=2)
    monkeypatch.chdir(root)
    capsys.readouterr()  # drop the fixture's progress output
    assert main(["augment", "--name", "nope"]) == 2
    assert capsys.readouterr().err.startswith("coaug augment: error: params: unknown augmentation 'nope' (defined: ")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["policy"]["model"] = str(root / "no-such-model")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["augment", "--name", "doc2query"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("coaug augment: error: ") and "no-such-model" in errors[0]
