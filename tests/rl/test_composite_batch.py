from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from coaug.errors import CoaugError
from coaug.rl.composite_batch import (
    NEGATIVE,
    POSITIVE,
    QUERY,
    negative_pool,
    sample_composite_batch,
    training_queries,
    validation_batches,
)

QRELS = {"q1": {"d1": 1, "d2": 2, "d9": 0}, "q2": {"d3": 1}, "q3": {"d4": 0}}
DOCS = ["d1", "d2", "d3", "d4", "d5", "d6", "d9"]


def test_negative_pool_excludes_every_positive():
    assert negative_pool(QRELS, DOCS) == ["d4", "d5", "d6", "d9"]


def test_training_queries_need_a_positive():
    assert training_queries(QRELS) == ["q1", "q2"]


def test_batch_layout_per_query():
    rng = np.random.default_rng(0)
    slots = sample_composite_batch(
        ["q1", "q2"], QRELS, negative_pool(QRELS, DOCS), rng, k_pos=3, k_hardneg=1, k_randneg=2
    )
    by_group = [[s for s in slots if s.group == g] for g in (0, 1)]
    # q1: query + 3 positives + 1 hard negative (d9) + 2 random = 7; q2 has no hard negative -> 1 more random.
    assert [len(g) for g in by_group] == [7, 7]
    assert [s.role for s in by_group[0]] == [QUERY] + [POSITIVE] * 3 + [NEGATIVE] * 3
    assert by_group[0][0].text_id == "q1" and by_group[0][0].relevance == 0
    assert all(s.text_id in {"d1", "d2"} and s.relevance == QRELS["q1"][s.text_id] for s in by_group[0][1:4])
    assert by_group[0][4].text_id == "d9"
    assert all(s.text_id in {"d4", "d5", "d6", "d9"} and s.relevance == 0 for s in by_group[1][4:])
    assert Counter(s.role for s in by_group[1]) == {QUERY: 1, POSITIVE: 3, NEGATIVE: 3}


def test_query_without_positives_gets_random_negatives_instead():
    slots = sample_composite_batch(["q3"], QRELS, ["d5"], np.random.default_rng(1), k_pos=2, k_hardneg=0, k_randneg=1)
    assert [(s.text_id, s.role) for s in slots] == [
        ("q3", QUERY),
        ("d5", NEGATIVE),
        ("d5", NEGATIVE),
        ("d5", NEGATIVE),
    ]


def test_defaults_give_sixteen_texts_per_query_and_are_seeded():
    first = sample_composite_batch(["q1"], QRELS, ["d5", "d6"], np.random.default_rng(3))
    assert len(first) == 16
    assert first == sample_composite_batch(["q1"], QRELS, ["d5", "d6"], np.random.default_rng(3))


def test_empty_negative_pool_is_an_error():
    with pytest.raises(CoaugError, match="no random negatives"):
        sample_composite_batch(["q1"], QRELS, [], np.random.default_rng(0))


def test_validation_batches_hold_distinct_queries_and_are_drawn_once_from_the_seed():
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(10)} | {"q_unjudged": {"d0": 0}}
    docs = [f"d{i}" for i in range(20)]

    def draw(seed):
        return validation_batches(
            qrels, docs, np.random.default_rng(seed), batches=3, queries_per_batch=3, k_pos=1, k_hardneg=0, k_randneg=2
        )

    batches = draw(0)
    queries = [slot.text_id for batch in batches for slot in batch if slot.role == QUERY]
    # 3 full batches of 3 (the tenth query is left out), no query twice, only queries with a positive.
    assert [len(b) for b in batches] == [12, 12, 12] and len(set(queries)) == 9 and "q_unjudged" not in queries
    assert all(slot.group == i // 4 for batch in batches for i, slot in enumerate(batch))
    assert draw(0) == batches and draw(1) != batches
    # A split smaller than asked gives fewer batches; smaller than one batch is an error.
    rng = np.random.default_rng(0)
    fewer = validation_batches(qrels, docs, rng, batches=9, queries_per_batch=4, k_pos=1, k_hardneg=0, k_randneg=1)
    assert len(fewer) == 2
    with pytest.raises(CoaugError, match="validation: 10 queries with a positive judgement, a batch needs 11"):
        validation_batches(
            qrels, docs, np.random.default_rng(0), batches=1, queries_per_batch=11, k_pos=1, k_hardneg=0, k_randneg=1
        )
