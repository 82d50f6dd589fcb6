"""Shards of an augmentation: the split is a partition, shard files are named beside the main cache, and
absorbing them is exact and crash-safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coaug.augment.cache import AugmentCache
from coaug.augment.shards import ShardCache, absorb_shards, parse_shard, shard_cache_path, shard_cache_paths, shard_ids
from coaug.errors import CoaugError


def entry(key: str) -> dict:
    return {"key": key, "id": key, "augmentation": f"aug {key}", "format_valid": True, "new_tokens": 2}


def write_entries(path: Path, keys: str) -> None:
    path.write_text("".join(json.dumps(entry(k)) + "\n" for k in keys))


def keys_in(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def test_parse_shard():
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard("3/4") == (3, 4)
    for spec, problem in [
        ("4/4", "I must be in 0..K-1"),
        ("0/0", "I must be in 0..K-1"),
        ("1", "expected I/K, e.g. 0/4"),
        ("-1/2", "expected I/K, e.g. 0/4"),
        ("a/b", "expected I/K, e.g. 0/4"),
    ]:
        with pytest.raises(CoaugError) as error:
            parse_shard(spec)
        assert str(error.value) == f"--shard '{spec}': {problem}"


def test_shards_split_round_robin():
    ids = [f"D{i}" for i in range(7)]
    assert [shard_ids(ids, i, 3) for i in range(3)] == [["D0", "D3", "D6"], ["D1", "D4"], ["D2", "D5"]]
    assert shard_ids(ids, 0, 1) == ids


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("size", [0, 1, 7, 20])
def test_shards_are_a_partition_of_the_ids(size, count):
    ids = [f"id{i * 7919 % 101}" for i in range(size)]
    shards = [shard_ids(ids, index, count) for index in range(count)]
    assert sorted(i for shard in shards for i in shard) == sorted(ids)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == [shard_ids(ids, index, count) for index in range(count)]


def test_shard_files_sit_beside_the_main_cache(tmp_path):
    main = tmp_path / "0123abcd.jsonl"
    assert shard_cache_path(main, 1, 4) == tmp_path / "0123abcd.shard-1-of-4.jsonl"
    for name in (
        "0123abcd.jsonl",
        "0123abcd.shard-0-of-2.jsonl",
        "0123abcd.shard-2-of-3.jsonl",
        "ffff.shard-0-of-2.jsonl",
    ):
        (tmp_path / name).write_text("")
    assert shard_cache_paths(main) == [
        tmp_path / "0123abcd.shard-0-of-2.jsonl",
        tmp_path / "0123abcd.shard-2-of-3.jsonl",
    ]


def test_a_shard_reads_the_main_cache_and_writes_only_its_file(tmp_path):
    write_entries(tmp_path / "m.jsonl", "a")
    cache = ShardCache(AugmentCache(tmp_path / "m.jsonl"), AugmentCache(tmp_path / "m.shard-0-of-2.jsonl"))
    cache.append([entry("a"), entry("b")])
    assert "a" in cache and "b" in cache and "c" not in cache
    assert cache.get("a") == entry("a") and cache.get("b") == entry("b")
    assert keys_in(tmp_path / "m.jsonl") == ["a"]
    assert keys_in(tmp_path / "m.shard-0-of-2.jsonl") == ["b"]


def test_absorb_appends_new_entries_once_and_deletes_the_shard_files(tmp_path):
    write_entries(tmp_path / "m.jsonl", "a")
    write_entries(tmp_path / "m.shard-0-of-2.jsonl", "ab")
    write_entries(tmp_path / "m.shard-1-of-2.jsonl", "cd")
    write_entries(tmp_path / "other.shard-0-of-2.jsonl", "x")
    cache = AugmentCache(tmp_path / "m.jsonl")
    assert absorb_shards(cache) == 3
    assert keys_in(tmp_path / "m.jsonl") == ["a", "b", "c", "d"]
    assert all(key in cache for key in "abcd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "other.shard-0-of-2.jsonl"]
    assert absorb_shards(AugmentCache(tmp_path / "m.jsonl")) == 0


def test_absorb_that_dies_before_deleting_still_ends_with_every_entry_once(tmp_path, monkeypatch):
    write_entries(tmp_path / "m.jsonl", "a")
    write_entries(tmp_path / "m.shard-0-of-2.jsonl", "bc")
    write_entries(tmp_path / "m.shard-1-of-2.jsonl", "de")

    def crash(self, missing_ok=False):
        raise KeyboardInterrupt("killed between append and unlink")

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        absorb_shards(AugmentCache(tmp_path / "m.jsonl"))
    assert keys_in(tmp_path / "m.jsonl") == ["a", "b", "c"]  # appended, shard file still there
    monkeypatch.undo()

    assert absorb_shards(AugmentCache(tmp_path / "m.jsonl")) == 2
    assert keys_in(tmp_path / "m.jsonl") == ["a", "b", "c", "d", "e"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_absorb_after_a_torn_append_ends_with_every_entry_once(tmp_path):
    write_entries(tmp_path / "m.jsonl", "ab")
    with (tmp_path / "m.jsonl").open("a") as handle:
        handle.write(json.dumps(entry("c"))[:9])  # the crash tore the shard's append
    write_entries(tmp_path / "m.shard-0-of-1.jsonl", "bcd")
    assert absorb_shards(AugmentCache(tmp_path / "m.jsonl")) == 2
    assert keys_in(tmp_path / "m.jsonl") == ["a", "b", "c", "d"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]
