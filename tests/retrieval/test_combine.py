"""How an augmentation joins its original text."""

from __future__ import annotations

from coaug.retrieval.combine import augmented_query, sparse_query


def test_a_sparse_query_repeats_the_original_before_the_augmentation():
    assert sparse_query("statin cancer", "mortality", 1) == "statin cancer mortality"
    assert sparse_query("statin", "mortality risk", 3) == "statin statin statin mortality risk"


def test_query_repeat_0_searches_the_augmentation_alone():
    assert sparse_query("statin cancer", " mortality ", 0) == "mortality"
    assert sparse_query("statin cancer", "", 0) == ""


def test_a_dense_query_joins_once_whatever_the_repeat():
    assert augmented_query("statin", "mortality", "dense", 5) == "statin mortality"
    assert augmented_query("statin", "mortality", "bm25_flat", 2) == "statin statin mortality"
