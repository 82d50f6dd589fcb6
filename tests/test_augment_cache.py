from __future__ import annotations

import json

import pytest

from coaug.augment_cache import AugmentCache, cache_key
from coaug.errors import DataError


def entry(key: str, text: str) -> dict:
    return {"key": key, "id": key, "augmentation": text}


def test_key_depends_on_every_part():
    base = cache_key("D1", "text", "p", "m", {"max_new_tokens": 8})
    assert base == cache_key("D1", "text", "p", "m", {"max_new_tokens": 8})
    variants = [
        cache_key("D2", "text", "p", "m", {"max_new_tokens": 8}),
        cache_key("D1", "text cut shorter", "p", "m", {"max_new_tokens": 8}),
        cache_key("D1", "text", "q", "m", {"max_new_tokens": 8}),
        cache_key("D1", "text", "p", "n", {"max_new_tokens": 8}),
        cache_key("D1", "text", "p", "m", {"max_new_tokens": 9}),
    ]
    assert len({base, *variants}) == 6


def test_entries_survive_reopen_and_are_never_duplicated(tmp_path):
    cache = AugmentCache(tmp_path / "aug.jsonl")
    cache.append([entry("a", "x"), entry("b", "y")])
    cache.append([entry("a", "other"), entry("c", "z")])
    reopened = AugmentCache(tmp_path / "aug.jsonl")
    assert {k: reopened.get(k)["augmentation"] for k in "abc"} == {"a": "x", "b": "y", "c": "z"}
    assert len((tmp_path / "aug.jsonl").read_text().splitlines()) == 3


def test_torn_last_line_is_dropped(tmp_path, caplog):
    path = tmp_path / "aug.jsonl"
    path.write_text(json.dumps(entry("a", "x")) + "\n" + '{"key": "b", "augm')
    cache = AugmentCache(path)
    assert "a" in cache and "b" not in cache
    assert path.read_text() == json.dumps(entry("a", "x")) + "\n"
    assert "dropping a torn last line" in caplog.text


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "aug.jsonl"
    path.write_text(json.dumps(entry("a", "x")) + "\nnot json\n" + json.dumps(entry("b", "y")) + "\n")
    with pytest.raises(DataError) as error:
        AugmentCache(path)
    assert str(error.value) == f"{path}:2: corrupt cache entry (delete the file to regenerate)"


def test_key_is_stable_across_releases():
    # Caches of whole corpus passes are keyed by this; a change would silently regenerate all of them.
    generation = {"max_new_tokens": 24, "repetition_penalty": 1.2, "do_sample": False}
    key = cache_key("D1", "Doc 1. text", "pppppppp", "0123456789abcdef", generation)
    assert key == "a59d459eb1452e57cf6ee4a045f20a49326aeed5876671f7986ca266867d55c8"
