"""Every kind of bad input fails with one line naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coaug.data.beir import load_dataset
from coaug.errors import DataError


def replace_line(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


def load(folder: Path, max_unknown: int = 0):
    return load_dataset(folder, ["train", "test"], max_unknown)


def test_valid_fixture_loads_with_string_ids(tiny_beir):
    data = load(tiny_beir)
    assert list(data.corpus) == ["D1", "D2", "D3", "D4", "D5"]
    assert data.corpus["D2"] == {
        "title": "Vitamin D and bone health",
        "text": "Vitamin D supplements improve bone density in older adults.",
    }
    assert data.queries["Q3"] == "asthma diet"
    assert data.qrels["test"] == {"Q1": {"D5": 2, "D1": 1}, "Q2": {"D2": 1}, "Q3": {"D4": 1}}
    assert data.qrels["train"] == {"Q4": {"D3": 1}}


def test_numeric_ids_stay_strings_without_reformatting(tiny_beir):
    replace_line(tiny_beir / "corpus.jsonl", 2, json.dumps({"_id": "0002", "title": "", "text": "zero padded"}))
    replace_line(tiny_beir / "corpus.jsonl", 3, json.dumps({"_id": 17, "title": "", "text": "integer id"}))
    corpus = load(tiny_beir, max_unknown=5).corpus
    assert "0002" in corpus and "17" in corpus


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"_id": "D2", "text": }', "corpus.jsonl:2: invalid JSON (Expecting value at column 23)"),
        ('{"title": "t", "text": "x"}', "corpus.jsonl:2: field '_id': missing"),
        ('{"_id": "D2", "title": "t"}', "corpus.jsonl:2: field 'text': missing"),
        (
            '{"_id": "D1", "title": "t", "text": "x"}',
            "corpus.jsonl:2: field '_id': duplicate id 'D1' (first on line 1)",
        ),
        ('{"_id": "D2", "title": "t", "text": 5}', "corpus.jsonl:2: field 'text': must be a string, got int"),
        ('{"_id": null, "text": "x"}', "corpus.jsonl:2: field '_id': must be a non-empty string, got None"),
        ('["D2"]', "corpus.jsonl:2: expected a JSON object"),
    ],
)
def test_corpus_errors_name_file_line_and_field(tiny_beir, line, expected):
    replace_line(tiny_beir / "corpus.jsonl", 2, line)
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/{expected}"


ID_PROBLEM = "must not contain whitespace or control characters, got"


@pytest.mark.parametrize(
    ("name", "line_no", "line", "expected"),
    [
        ("corpus.jsonl", 2, '{"_id": "D 2", "text": "x"}', f"corpus.jsonl:2: field '_id': {ID_PROBLEM} 'D 2'"),
        ("corpus.jsonl", 2, '{"_id": "D2\\n", "text": "x"}', f"corpus.jsonl:2: field '_id': {ID_PROBLEM} 'D2\\n'"),
        ("corpus.jsonl", 2, '{"_id": "D\\t2", "text": "x"}', f"corpus.jsonl:2: field '_id': {ID_PROBLEM} 'D\\t2'"),
        (
            "queries.jsonl",
            3,
            '{"_id": "Q\\u001b3", "text": "asthma diet"}',
            f"queries.jsonl:3: field '_id': {ID_PROBLEM} 'Q\\x1b3'",
        ),
        (
            "queries.jsonl",
            3,
            '{"_id": "Q\\u00a03", "text": "asthma diet"}',
            f"queries.jsonl:3: field '_id': {ID_PROBLEM} 'Q\\xa03'",
        ),
        ("qrels/test.tsv", 2, "Q 1\tD5\t2", f"qrels/test.tsv:2: field 'query-id': {ID_PROBLEM} 'Q 1'"),
        ("qrels/test.tsv", 3, "Q1\tD1 \t1", f"qrels/test.tsv:3: field 'corpus-id': {ID_PROBLEM} 'D1 '"),
    ],
)
def test_ids_with_whitespace_or_control_characters_are_refused(tiny_beir, name, line_no, line, expected):
    # A TREC run splits its lines on whitespace: `evaluate` would fail on such an id a stage later.
    replace_line(tiny_beir / name, line_no, line)
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/{expected}"


def test_ids_with_slashes_and_dots_are_kept_as_written(tiny_beir):
    replace_line(tiny_beir / "corpus.jsonl", 2, json.dumps({"_id": "../D2", "title": "", "text": "up a folder"}))
    replace_line(tiny_beir / "corpus.jsonl", 3, json.dumps({"_id": "a/b.c", "title": "", "text": "a path"}))
    corpus = load(tiny_beir, max_unknown=5).corpus
    assert "../D2" in corpus and "a/b.c" in corpus


def test_empty_corpus(tiny_beir):
    (tiny_beir / "corpus.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"corpus.jsonl: empty corpus: no documents$"):
        load(tiny_beir)


def test_query_errors(tiny_beir):
    replace_line(tiny_beir / "queries.jsonl", 3, '{"_id": "Q3", "text": "  "}')
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/queries.jsonl:3: field 'text': empty query text"


def test_non_integer_score(tiny_beir):
    replace_line(tiny_beir / "qrels" / "test.tsv", 3, "Q1\tD1\t0.5")
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/qrels/test.tsv:3: field 'score': not an integer: '0.5'"


def test_wrong_header(tiny_beir):
    replace_line(tiny_beir / "qrels" / "test.tsv", 1, "qid\tdocid\tscore")
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == (
        f"{tiny_beir}/qrels/test.tsv:1: expected header 'query-id<TAB>corpus-id<TAB>score', got 'qid\\tdocid\\tscore'"
    )


def test_wrong_field_count(tiny_beir):
    replace_line(tiny_beir / "qrels" / "test.tsv", 4, "Q2 D2 1")
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/qrels/test.tsv:4: expected 3 tab-separated fields, got 1"


def test_missing_split(tiny_beir):
    (tiny_beir / "qrels" / "train.tsv").unlink()
    with pytest.raises(DataError) as error:
        load(tiny_beir)
    assert str(error.value) == f"{tiny_beir}/qrels/train.tsv: missing split 'train'"


def test_crlf_qrels_are_accepted(tiny_beir):
    path = tiny_beir / "qrels" / "test.tsv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load(tiny_beir).qrels["test"]["Q1"] == {"D5": 2, "D1": 1}


def test_unknown_ids_fail_above_threshold(tiny_beir):
    with (tiny_beir / "qrels" / "test.tsv").open("a") as handle:
        handle.write("Q1\tD9\t1\nQ77\tD1\t1\n")
    with pytest.raises(DataError) as error:
        load(tiny_beir, max_unknown=1)
    assert str(error.value) == (
        f"{tiny_beir}/qrels/test.tsv: 2 judgements name unknown query or doc ids (e.g. 'D9'), "
        "more than max_unknown_qrels=1"
    )


def test_unknown_ids_within_threshold_are_dropped_with_warning(tiny_beir, caplog):
    with (tiny_beir / "qrels" / "test.tsv").open("a") as handle:
        handle.write("Q1\tD9\t1\nQ77\tD1\t1\n")
    data = load(tiny_beir, max_unknown=2)
    assert data.qrels["test"] == {"Q1": {"D5": 2, "D1": 1}, "Q2": {"D2": 1}, "Q3": {"D4": 1}}
    assert data.dropped_qrels == {"train": 0, "test": 2}
    assert "dropped 2 judgements naming unknown ids" in caplog.text
