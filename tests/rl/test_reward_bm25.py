"""In-batch similarity for the reward (METHOD §4): tokenizer, corpus IDF, BM25 matrix, cosine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.reward_loops import loop_bm25
from coaug.rl.reward_bm25 import bm25_matrix, corpus_idf, tokenize
from coaug.rl.reward_dense import cosine_matrix

RTOL = 1e-12


def test_tokenizer_drops_punctuation_lowercases_and_splits():
    assert tokenize("COVID-19: don't\tPanic!\n  Vitamin D3 (low-dose).") == [
        "covid19",
        "dont",
        "panic",
        "vitamin",
        "d3",
        "lowdose",
    ]
    assert tokenize(" ... ") == []


def test_corpus_idf_by_hand():
    idf = corpus_idf(["a b", "B c.", "b"])
    assert idf["b"] == pytest.approx(math.log(0.5 / 3.5 + 1), rel=RTOL)
    assert idf["a"] == pytest.approx(math.log(2.5 / 1.5 + 1), rel=RTOL)
    assert set(idf) == {"a", "b", "c"}


def test_unseen_word_weighs_zero():
    idf = corpus_idf(["apple pie", "cherry"])
    assert "durian" not in idf
    # "durian" is in both strings but not in the corpus: no score; "apple" is.
    assert bm25_matrix(["durian"], ["durian apple"], idf)[0, 0] == 0.0
    assert bm25_matrix(["durian apple"], ["durian apple"], idf)[0, 0] > 0.0


def test_two_by_two_bm25_by_hand():
    idf = {"apple": 1.0, "banana": 2.0}  # "cherry" unseen
    matrix = bm25_matrix(["Apple, banana!", "banana banana"], ["apple apple cherry", "Banana."], idf)
    # avgdl = (3 + 1) / 2 = 2; k1 = 1.2, b = 0.75.
    apple_in_doc0 = 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 2))
    banana_in_doc1 = 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / 2))
    expected = [[1.0 * apple_in_doc0, 2.0 * banana_in_doc1], [0.0, 2 * 2.0 * banana_in_doc1]]
    np.testing.assert_allclose(matrix, expected, rtol=RTOL)


def test_k1_and_b_are_arguments():
    idf = {"x": 1.0}
    # b = 0: no length normalisation, tf saturation only.
    assert bm25_matrix(["x"], ["x x", "x y z w"], idf, k1=2.0, b=0.0)[0, 0] == pytest.approx(2 * 3 / (2 + 2), rel=RTOL)


@pytest.mark.parametrize("seed", range(5))
def test_bm25_matrix_equals_loop_reference(seed):
    rng = np.random.default_rng(seed)
    words = ["Alpha", "beta,", "gamma", "delta!", "eps-ilon", "zeta", "eta", "theta", "iota", "kappa", "\n"]

    def text(low, high):
        return " ".join(rng.choice(words, size=int(rng.integers(low, high))))

    idf = corpus_idf([text(1, 6) for _ in range(20)])  # some words may be missing: weight 0
    queries = [text(0, 5) for _ in range(6)]
    # Rollout strings as in training: each original repeated with different augmentations.
    originals = [text(0, 12) for _ in range(3)]
    docs = [f"{originals[i % 3]}\n\n{text(0, 6)}" for i in range(9)] + [text(0, 15)]
    np.testing.assert_allclose(bm25_matrix(queries, docs, idf), np.array(loop_bm25(queries, docs, idf)), rtol=RTOL)


def test_empty_batch_strings_score_zero():
    assert np.array_equal(bm25_matrix(["", "!"], ["", "?"], {"a": 1.0}), np.zeros((2, 2)))


def test_cosine_normalises_inside():
    queries = np.array([[3.0, 4.0], [0.0, 0.0]])
    docs = np.array([[1.0, 0.0], [0.0, 10.0], [-6.0, -8.0]])
    np.testing.assert_allclose(cosine_matrix(queries, docs), [[0.6, 0.8, -1.0], [0.0, 0.0, 0.0]], rtol=RTOL)
