"""`coaug search` on a promoted champion: it answers as the evaluated system did, and refuses clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coaug import params as P
from coaug.augment.files import read_augmentations
from coaug.cli import main
from coaug.data.beir import read_corpus
from coaug.registry.search import Hit, Result, result_line, result_table
from coaug.retrieval.retrievers import retrieve, system_queries

from ..conftest import REPO, edited
from ..served_project import (
    BASELINE,
    BASELINE_SCORES,
    DENSE_SYSTEM,
    MODEL,
    SYSTEM,
    V1_SCORES,
    build_shared,
    load,
    project_params,
    register,
    save,
    write_scores,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """v1 promoted and served, v2 registered as @challenger; yields the project's params file."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    root = tmp_path_factory.mktemp("served")
    shared = build_shared(root)
    (root / "project").mkdir()
    path = project_params(shared, root / "project")
    params = load(path)
    write_scores(params, BASELINE, BASELINE_SCORES)
    write_scores(params, SYSTEM, V1_SCORES)
    policies = Path(params.policy.model).parent
    assert register(params, policies / "policy-a") == "1"
    assert main(["--params", str(path), "promote"]) == 0
    assert register(params, policies / "policy-b") == "2"
    yield path
    mlflow.set_tracking_uri(previous)


def evaluated(params, system: str, qid: str) -> tuple[str, list[tuple[str, float]]]:
    """The query text and ranking the evaluate stage gets for ``qid`` on ``system``'s index."""
    recipe = P.system(params, system)
    queries = system_queries(recipe, [qid])
    index = Path(params.outputs.indexes_dir) / system
    return queries[qid], retrieve(recipe, index, queries, params.retrieval, params.bm25, params.dense)[qid]


def titles(params) -> dict[str, str]:
    corpus = read_corpus(Path(params.dataset.prepared_dir) / "corpus.jsonl")
    return {doc_id: doc["title"] for doc_id, doc in corpus.items()}


def search(path: Path, *args: str) -> int:
    return main(["--params", str(path), "search", *args])


def error_line(capsys) -> str:
    """The CLI's one-line error: the last line on stderr (a new MLflow store logs its creation first)."""
    return capsys.readouterr().err.splitlines()[-1]


def test_search_prints_the_served_systems_ranking_with_titles(served, capsys):
    params = load(served)
    text, ranking = evaluated(params, SYSTEM, "Q1")
    capsys.readouterr()
    assert search(served, "breast cancer cholesterol", "--k", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("query: breast cancer cholesterol (") and lines[0].endswith(" s)")
    assert lines[1] == "rank\tdoc_id\tscore\ttitle"
    names = titles(params)
    expected = [
        f"{rank}\t{doc_id}\t{score:.4f}\t{names[doc_id]}" for rank, (doc_id, score) in enumerate(ranking[:3], start=1)
    ]
    assert len(expected) == 3 and lines[2:-1] == expected
    assert lines[-1] == f"augmented query: {text}"
    # query_repeat 5, then the policy's augmentation, as the evaluated system searched.
    assert text.startswith("breast cancer cholesterol " * 5)


def test_json_gives_one_object_per_query_with_the_champions_augmentation(served, capsys):
    params = load(served)
    augmentations = read_augmentations(Path(params.augment.out_dir) / "trained_sparse" / "queries.jsonl")
    expected = {qid: evaluated(params, SYSTEM, qid)[1][:2] for qid in ("Q1", "Q2")}
    capsys.readouterr()
    assert search(served, "breast cancer cholesterol", "vitamin D bone density", "--k", "2", "--json") == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = titles(params)
    for obj, qid, query in zip(
        objects, ("Q1", "Q2"), ("breast cancer cholesterol", "vitamin D bone density"), strict=True
    ):
        assert set(obj) == {"query", "augmentation", "hits", "seconds"}
        assert obj["query"] == query
        # v1 is the policy that wrote the evaluated augmentations: search reproduces them.
        assert obj["augmentation"] == augmentations[qid] != ""
        assert obj["hits"] == [
            {"rank": rank, "doc_id": doc_id, "score": score, "title": names[doc_id]}
            for rank, (doc_id, score) in enumerate(expected[qid], start=1)
        ]
        assert 0 < obj["seconds"] < 60


def test_dense_searches_the_served_dense_index(served, capsys):
    params = load(served)
    _, ranking = evaluated(params, DENSE_SYSTEM, "Q2")
    capsys.readouterr()
    assert search(served, "vitamin D bone density", "--dense", "--k", "3", "--json") == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [(hit["doc_id"], hit["score"]) for hit in hits] == ranking[:3]


def test_unknown_alias_lists_the_existing_ones(served, capsys):
    assert search(served, "asthma", "--alias", "nobody") == 2
    assert (
        error_line(capsys)
        == f"coaug search: error: model '{MODEL}' has no alias '@nobody' (aliases: @challenger, @champion)"
    )


def test_an_alias_on_another_version_than_the_served_one_is_refused(served, capsys):
    serving = load(served).promotion.serving_dir
    assert search(served, "asthma", "--alias", "challenger") == 2
    assert error_line(capsys) == (
        f"coaug search: error: @challenger of '{MODEL}' is v2 but {serving} serves v1: re-run `coaug promote`"
    )


def test_nothing_served_is_one_clear_error(served, tmp_path, capsys):
    params = load(served)
    params = edited(params, "promotion", serving_dir=str(tmp_path / "serving"))
    save(params, tmp_path / "params.yaml")
    assert search(tmp_path / "params.yaml", "asthma") == 2
    assert error_line(capsys) == (
        f"coaug search: error: no champion is being served: run `coaug promote` ({tmp_path}/serving/manifest.json is missing)"
    )


def test_an_empty_registry_is_one_clear_error(served, tmp_path, capsys):
    params = load(served)
    params = edited(params, "mlflow", tracking_uri=f"sqlite:///{tmp_path}/empty.db")
    save(params, tmp_path / "params.yaml")
    assert search(tmp_path / "params.yaml", "asthma") == 2
    assert error_line(capsys) == (
        f"coaug search: error: registry is empty: no model '{MODEL}' in sqlite:///{tmp_path}/empty.db; "
        "run `dvc repro train` first"
    )


def test_k_below_one_is_one_clear_error(served, capsys):
    assert search(served, "asthma", "--k", "0") == 2
    assert error_line(capsys) == "coaug search: error: k must be >= 1, got 0"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["a", "  ", "b"], "QUERY 2 of 3 is blank: every query needs some text"),
        (["", "a", "\t\n"], "QUERY 1, 3 of 3 are blank: every query needs some text"),
        (["a", "--k", "0"], "k must be >= 1, got 0"),
        # The bytes a Latin-1 terminal sends for "café au lait", as Python hands them over.
        (
            ["tea", os.fsdecode(b"caf\xe9 au lait")],
            "QUERY 2 of 2 is not UTF-8 (byte 0xe9 at column 4): pass queries in UTF-8",
        ),
    ],
)
def test_bad_arguments_are_refused_before_the_warm_up(args, error, monkeypatch, capsys):
    import coaug.registry.search

    from ..conftest import REPO

    def warm_up(*_):
        raise AssertionError("the served policy and index were loaded before the arguments were checked")

    monkeypatch.setattr(coaug.registry.search, "ServedSearch", warm_up)
    assert search(REPO / "params.yaml", *args) == 2
    assert capsys.readouterr() == ("", f"coaug search: error: {error}\n")


def test_a_query_that_is_not_utf8_on_the_command_line_is_one_line():
    command = [sys.executable, "-m", "coaug.cli", "--params", str(REPO / "params.yaml"), "search", b"caf\xe9 \xff"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        b"",
        b"coaug search: error: QUERY 1 of 1 is not UTF-8 (byte 0xe9 at column 4): pass queries in UTF-8\n",
    )


def test_control_characters_are_echoed_escaped(served, capsys):
    assert search(served, "asthma\x1b[2J diet\x07", "--k", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("query: asthma\\x1b[2J diet\\x07 (")
    assert "augmented query: asthma\\x1b[2J diet\\x07 " in out
    # Nothing that steers a terminal reaches it, nor breaks the table's lines.
    assert not any(char in out for char in "\x1b\x07") and len(out.splitlines()) == 4


def test_tables_and_json_lines_escape_every_control_character():
    hit = Hit(rank=1, doc_id="D1", score=1.5, title="Tea\x9b31m\r\n")
    result = Result("tea\x7f\t", "green", "tea\x7f\t green", [hit], seconds=0.25, augment_seconds=0.125)
    assert result_table(result) == (
        "query: tea\\x7f\\t (0.25 s)\nrank\tdoc_id\tscore\ttitle\n1\tD1\t1.5000\tTea\\x9b31m\\r\\n\n"
        "augmented query: tea\\x7f\\t green\n"
    )
    line = result_line(result)
    assert line.endswith("}\n") and line.count("\n") == 1 and "\x7f" not in line and "\x9b" not in line
    assert json.loads(line)["hits"][0]["title"] == "Tea\x9b31m\r\n" and json.loads(line)["query"] == "tea\x7f\t"
