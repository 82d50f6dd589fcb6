from __future__ import annotations

import json

import pytest

from coaug.augment.cache import AugmentCache, cache_key


def entry(key: str, text: str) -> dict:
    return {"key": key, "id": key, "augmentation": text, "format_valid": True, "new_tokens": 2}


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


def test_an_entry_with_a_unicode_line_separator_survives_reopen(tmp_path):
    AugmentCache(tmp_path / "aug.jsonl").append([entry("a", "one\u2028two\x85three")])
    assert AugmentCache(tmp_path / "aug.jsonl").get("a")["augmentation"] == "one\u2028two\x85three"


def test_torn_last_line_is_dropped(tmp_path, caplog):
    path = tmp_path / "aug.jsonl"
    path.write_text(json.dumps(entry("a", "x")) + "\n" + '{"key": "b", "augm')
    cache = AugmentCache(path)
    assert "a" in cache and "b" not in cache
    assert path.read_text() == json.dumps(entry("a", "x")) + "\n"
    assert "dropping a torn last line" in caplog.text


def test_corrupt_complete_lines_are_skipped_and_their_texts_regenerated(tmp_path, caplog):
    from types import SimpleNamespace

    from coaug.augment.run import augment_texts
    from coaug.policy.generation import Completion, GenerationParams
    from coaug.policy.prompts import Prompt

    path = tmp_path / "aug.jsonl"
    texts = {"D1": "one", "D2": "two", "D3": "three", "D4": "four"}
    generated = []

    def generate(policy, conversations, generation, batch_size, desc):
        users = [c[-1]["content"] for c in conversations]
        generated.extend(users)
        yield list(range(len(users))), [Completion(f"aug {text}", 2) for text in users]

    def augment(cache: AugmentCache) -> dict[str, str]:
        policy, prompt = SimpleNamespace(fingerprint="m"), Prompt("p", "plain", "Expand.")
        results = augment_texts(policy, prompt, texts, GenerationParams(), cache, 8, "docs", generate, "transformers")
        return {text_id: result["augmentation"] for text_id, result in results.items()}

    augment(AugmentCache(path))
    lines = path.read_bytes().split(b"\n")
    # Not what a crash leaves (that is a torn last line): a bit flip, an interleaved write, a bad byte.
    lines[1], lines[2] = b"not json", b'{"key": "\xff"}'
    path.write_bytes(b"\n".join(lines))
    generated.clear()
    caplog.clear()
    cache = AugmentCache(path)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"{path}: skipped 2 corrupt lines of 4 (first: line 2); their texts will be generated again")
    ]
    assert augment(cache) == {"D1": "aug one", "D2": "aug two", "D3": "aug three", "D4": "aug four"}
    assert generated == ["two", "three"]
    # The good entries were kept, the two regenerated ones appended: all four are cached now.
    assert sum(key in AugmentCache(path) for key in cache.entries) == 4


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: {k: v for k, v in e.items() if k != "augmentation"},
        lambda e: {**e, "augmentation": None},
        lambda e: {k: v for k, v in e.items() if k != "new_tokens"},
        lambda e: {**e, "format_valid": "yes"},
        lambda e: [e],
    ],
    ids=["no augmentation", "augmentation null", "no new_tokens", "format_valid a string", "no object"],
)
def test_a_valid_json_line_without_an_entrys_fields_is_corrupt(tmp_path, caplog, damage):
    path = tmp_path / "aug.jsonl"
    AugmentCache(path).append([entry("a", "x"), entry("b", "y"), entry("c", "z")])
    lines = path.read_text().splitlines()
    lines[1] = json.dumps(damage(json.loads(lines[1])))
    path.write_text("\n".join(lines) + "\n")
    caplog.clear()
    cache = AugmentCache(path)
    # Skipped like a garbled line, so "b" is generated again instead of failing the pass that reads it.
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: skipped 1 corrupt line of 3 (first: line 2); their texts will be generated again"
    ]


def test_key_is_stable_across_releases():
    # Caches of whole corpus passes are keyed by this; a change would silently regenerate all of them.
    generation = {"max_new_tokens": 24, "repetition_penalty": 1.2, "do_sample": False}
    key = cache_key("D1", "Doc 1. text", "pppppppp", "0123456789abcdef", generation)
    assert key == "a59d459eb1452e57cf6ee4a045f20a49326aeed5876671f7986ca266867d55c8"
