"""A 5-doc collection indexed for real (Lucene BM25 flat + multifield, MiniLM + faiss): exact rankings."""

from __future__ import annotations

import pytest

from coaug import params as P
from coaug.errors import CoaugError
from coaug.params import load_params
from coaug.params_schema import AugmentedSystem, System
from coaug.retrieval import dense, retrievers

from ..conftest import REPO, TINY_BEIR, edited

QUERIES = {"Q1": "breast cancer cholesterol", "Q2": "vitamin D bone density", "D4": "asthma children"}


@pytest.fixture
def params(tmp_path):
    params = load_params(REPO / "params.yaml")
    systems = {
        name: System(name, str(TINY_BEIR / "corpus.jsonl"), str(TINY_BEIR / "queries.jsonl"))
        for name in ("bm25_flat", "bm25_multifield", "dense")
    }
    params = edited(params, "dense", cache_dir=str(tmp_path / "embeddings"))
    return edited(edited(params, "retrieval", hits=3), "systems", **systems)


def build_index(params, system, index_dir):
    return retrievers.build_index(P.system(params, system), index_dir, params.bm25, params.dense)


def retrieve(params, system, index_dir, queries):
    return retrievers.retrieve(
        P.system(params, system), index_dir, queries, params.retrieval, params.bm25, params.dense
    )


def ranking(run, qid):
    return [doc_id for doc_id, _ in run[qid]]


def test_bm25_flat_exact_ranking(params, tmp_path):
    assert build_index(params, "bm25_flat", tmp_path / "flat") == 5
    run = retrieve(params, "bm25_flat", tmp_path / "flat", QUERIES)
    assert ranking(run, "Q1") == ["D5", "D1", "D3"]
    assert ranking(run, "Q2") == ["D2"]
    scores = [score for _, score in run["Q1"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]


def test_self_hits_are_removed(params, tmp_path):
    build_index(params, "bm25_flat", tmp_path / "flat")
    # The query id D4 equals the id of the only matching document: BEIR drops that hit.
    assert ranking(retrieve(params, "bm25_flat", tmp_path / "flat", QUERIES), "D4") == []
    params = edited(params, "retrieval", remove_self_hits=False)
    assert ranking(retrieve(params, "bm25_flat", tmp_path / "flat", QUERIES), "D4") == ["D4"]


def test_bm25_multifield_weights_the_title(params, tmp_path):
    build_index(params, "bm25_multifield", tmp_path / "multi")
    run = retrieve(params, "bm25_multifield", tmp_path / "multi", {"q": "green tea"})
    assert ranking(run, "q") == ["D3"]
    params = edited(params, "bm25", multifield_weights={"title": 1.0})
    # "cholesterol" is in D3's text only and in D5's title: a title-only search finds D5 alone.
    run = retrieve(params, "bm25_multifield", tmp_path / "multi", {"q": "cholesterol"})
    assert ranking(run, "q") == ["D5"]


def test_dense_exact_ranking_and_cached_embeddings(params, tmp_path):
    build_index(params, "dense", tmp_path / "dense")
    run = retrieve(params, "dense", tmp_path / "dense", QUERIES)
    assert ranking(run, "Q2")[0] == "D2"
    assert ranking(run, "Q1")[:2] == ["D5", "D1"]
    assert all(-1.0 <= score <= 1.0 for _, score in run["Q1"])
    # A rebuild reads every embedding from the cache: no new chunk appears.
    chunks = sorted((tmp_path / "embeddings").rglob("*.npz"))
    build_index(params, "dense", tmp_path / "dense")
    assert sorted((tmp_path / "embeddings").rglob("*.npz")) == chunks


def test_missing_index_is_one_clear_error(params, tmp_path):
    with pytest.raises(CoaugError, match="not a Lucene index"):
        retrieve(params, "bm25_flat", tmp_path / "nothing", QUERIES)


def test_unknown_encoder_package():
    with pytest.raises(CoaugError, match="package 'no_such_pkg' is not installed"):
        dense.resolve_encoder_path("package:no_such_pkg")


@pytest.mark.parametrize(
    ("lookup", "sections"),
    [("system", ("systems", "augmented_systems")), ("augmentation", ("augmentations", "trained_augmentations"))],
)
def test_a_name_defined_in_two_sections_is_one_clear_error(lookup, sections):
    params = load_params(REPO / "params.yaml")
    first = getattr(params, sections[0])
    name = next(iter(first))
    params = edited(params, sections[1], **{name: first[name]})
    with pytest.raises(CoaugError) as raised:
        getattr(P, lookup)(params, name)
    assert (
        str(raised.value) == f"params: '{name}' is defined in both {sections[0]} and {sections[1]}: rename one of them"
    )


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({}, True),
        ({"augment_queries": False}, False),
        ({"retriever": "dense"}, False),
    ],
)
def test_query_repeat_0_needs_augmented_queries_on_bm25(params, changes, valid):
    """The augmentation alone is the whole search string: without augmented queries (or with a dense retriever,
    which ignores the repeat) the system would search nothing, or not what it says."""
    entry = AugmentedSystem(
        **{"retriever": "bm25_flat", "augmentation": "untrained", "augment_docs": False, "augment_queries": True,
           "query_repeat": 0, **changes}
    )  # fmt: skip
    params = edited(params, "augmented_systems", alone=entry)
    if valid:
        assert P.system(params, "alone").query_repeat == 0
    else:
        with pytest.raises(CoaugError, match=r"augmented_systems\.alone\.query_repeat: 0 \(the augmentation alone\)"):
            P.system(params, "alone")
