"""`coaug augment --shard I/K` on a tiny local model: K shards, then the unsharded stage, write exactly what
one unsharded run writes, and the stage generates nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from coaug.cli import main

from ..augment_project import make_project, read_params, write_params

OUTPUTS = ("corpus.jsonl", "queries.jsonl")


def use_dirs(root: Path, cache: str, out: str) -> None:
    params = read_params(root)
    params["augment"].update(cache_dir=str(root / cache), out_dir=str(root / out))
    write_params(root, params)


def entries_by_key(folder: Path) -> dict[str, dict]:
    lines = [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]
    by_key = {entry["key"]: entry for entry in lines}
    assert len(by_key) == len(lines), "a key is cached twice"
    return by_key


def test_two_shards_then_the_stage_write_what_one_run_writes(tmp_path, monkeypatch, caplog):
    root = make_project(tmp_path, docs=7, max_new_tokens=6, batch_size=3)
    monkeypatch.chdir(root)
    caplog.set_level(logging.INFO, logger="coaug")
    use_dirs(root, "cache-one", "out-one")
    assert main(["augment", "--name", "untrained"]) == 0
    fingerprint = json.loads((root / "out-one" / "untrained" / "stats.json").read_text())["fingerprint"]
    assert [p.name for p in (root / "cache-one").iterdir()] == [f"{fingerprint}.jsonl"]

    use_dirs(root, "cache-sharded", "out-sharded")
    caplog.clear()
    assert main(["augment", "--name", "untrained", "--shard", "0/2"]) == 0
    assert main(["augment", "--name", "untrained", "--shard", "1/2"]) == 0
    for line in (
        "untrained docs shard 0/2: 4 texts, 0 cached, 4 to generate",
        "untrained docs shard 1/2: 3 texts, 0 cached, 3 to generate",
        "untrained queries shard 0/2: 2 texts, 0 cached, 2 to generate",
        "untrained queries shard 1/2: 2 texts, 0 cached, 2 to generate",
    ):
        assert line in caplog.text
    assert not (root / "out-sharded").exists()
    shard_files = sorted(p.name for p in (root / "cache-sharded").iterdir())
    assert shard_files == [f"{fingerprint}.shard-0-of-2.jsonl", f"{fingerprint}.shard-1-of-2.jsonl"]
    assert [len((root / "cache-sharded" / f).read_text().splitlines()) for f in shard_files] == [6, 5]

    caplog.clear()
    assert main(["augment", "--name", "untrained"]) == 0
    assert "untrained docs: 7 texts, 7 cached, 0 to generate" in caplog.text
    assert "untrained queries: 4 texts, 4 cached, 0 to generate" in caplog.text
    assert [p.name for p in (root / "cache-sharded").iterdir()] == [f"{fingerprint}.jsonl"]
    assert entries_by_key(root / "cache-sharded") == entries_by_key(root / "cache-one")
    for name in OUTPUTS:
        sharded, one = root / "out-sharded" / "untrained" / name, root / "out-one" / "untrained" / name
        assert sharded.read_bytes() == one.read_bytes()


def test_a_shard_reuses_the_main_cache(tmp_path, monkeypatch, caplog):
    root = make_project(tmp_path, docs=5, max_new_tokens=4, batch_size=2)
    monkeypatch.chdir(root)
    assert main(["augment", "--name", "doc2query"]) == 0
    caplog.set_level(logging.INFO, logger="coaug")
    assert main(["augment", "--name", "doc2query", "--shard", "1/2"]) == 0
    assert "doc2query docs shard 1/2: 2 texts, 2 cached, 0 to generate" in caplog.text
    assert not list((root / "cache").glob("*.shard-*"))


def test_a_bad_shard_is_one_line(tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path, docs=2, max_new_tokens=2, batch_size=2)
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert main(["augment", "--name", "doc2query", "--shard", "2/2"]) == 2
    assert capsys.readouterr().err == "coaug augment: error: --shard '2/2': I must be in 0..K-1\n"
