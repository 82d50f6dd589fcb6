"""Completion-only log-probs equal the full-softmax reference; micro-batching changes nothing."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from coaug.rl.sequence_logprobs import (
    align_completions,
    completion_scores,
    full_softmax_scores,
    scoring_order,
    shared_prefix_length,
)

from ..tiny_models import build_tiny_llama

PAD = 0
# Prompts and completions of different lengths, so both paddings are exercised.
SEQUENCES = [([5, 6, 7, 8, 9], [10, 11]), ([12, 13], [14, 15, 16, 17]), ([18, 19, 20, 21], [22]), ([23], [24, 25, 26])]
# Prompts that start alike, as a chat template and system prompt make them: a long kind sharing 3 tokens, a
# short kind sharing 2 (one prompt nothing but them), and a prompt of its own. In scoring order, micro-batches
# of 3 are one kind each; micro-batches of 2 also mix kinds (nothing shared).
SHARED = [
    ([4, 5, 18, 19], [21, 22, 23]),
    ([1, 2, 3, 8, 9, 10], [11, 12]),
    ([4, 5], [26]),
    ([1, 2, 3, 13, 14, 15], [16]),
    ([27], [28, 29]),
    ([1, 2, 3, 17, 20], [24, 25, 30]),
    ([4, 5, 31], [32]),
]
# Rollouts: several completions of one prompt (each prompt computed once per micro-batch), prompts sharing a
# prefix, and one-token completions (in micro-batches of 2 the last holds only the one-token row of [4, 5]).
ROLLOUTS = [
    ([1, 2, 3, 8, 9], [10, 11]),
    ([1, 2, 3, 8, 9], [12]),
    ([1, 2, 3, 13], [14, 15, 16]),
    ([1, 2, 3, 8, 9], [17, 18, 19]),
    ([1, 2, 3, 13], [20]),
    ([4, 5], [21, 22]),
    ([4, 5], [23]),
]
KINDS = pytest.mark.parametrize(
    "sequences", [SEQUENCES, SHARED, ROLLOUTS], ids=["own prompts", "shared prefixes", "rollouts"]
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = build_tiny_llama(tmp_path_factory.mktemp("scores") / "tiny")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def test_completions_are_aligned_to_one_column():
    batch = align_completions([([1, 2, 3], [4, 5]), ([6], [7, 8, 9])], PAD)

    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 0], [0, 0, 6, 7, 8, 9]]
    assert batch.attention.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4, 4], [0, 0, 0, 1, 2, 3]]
    assert batch.targets.tolist() == [[4, 5, 0], [7, 8, 9]]
    assert batch.mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_a_shared_prefix_comes_first_then_each_prompt_left_padded():
    batch = align_completions([([1, 2, 3, 4], [5]), ([1, 2, 6], [7, 8])], PAD, prefix_length=2)

    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 0], [1, 2, 0, 6, 7, 8]]
    assert batch.attention.tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 0, 1, 1, 1]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4, 4], [0, 1, 1, 2, 3, 4]]
    assert batch.targets.tolist() == [[5, 0], [7, 8]]
    assert batch.prefix_length == 2


def test_rows_of_one_prompt_point_at_its_first_row():
    batch = align_completions([([1, 2], [3]), ([4], [5]), ([1, 2], [6, 7]), ([4], [8]), ([1, 2], [9])], PAD)

    assert batch.prompt_rows == [0, 1]
    assert batch.prompt_of_row.tolist() == [0, 1, 0, 1, 0]


def test_the_shared_prefix_leaves_every_prompt_its_last_token():
    assert shared_prefix_length([[1, 2, 3, 8], [1, 2, 3, 9, 10]]) == 3
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3, 9]]) == 2  # the first prompt keeps token 3
    assert shared_prefix_length([[1, 2], [3, 4]]) == 0
    assert shared_prefix_length([[1, 2, 3]]) == 0  # one row: nothing to share


def test_scoring_order_puts_the_longest_prompts_first():
    assert scoring_order([([1], [2]), ([1, 2, 3], [4]), ([5, 6], [7]), ([8, 9, 10], [11])]) == [1, 3, 2, 0]


def test_scoring_order_puts_the_rows_of_one_prompt_together():
    assert scoring_order([([8, 9], [1]), ([5, 6], [2]), ([8, 9], [3]), ([5, 6], [4]), ([7], [5])]) == [1, 3, 0, 2, 4]


@pytest.mark.parametrize("micro_batch_size", [1, 2, 3, 8])
@KINDS
def test_completion_only_scores_equal_the_full_softmax_reference(model, micro_batch_size, sequences):
    with torch.no_grad():
        reference = full_softmax_scores(model, sequences, PAD, temperature=1.2, with_entropy=True)
        fast = completion_scores(
            model, sequences, PAD, temperature=1.2, with_entropy=True, micro_batch_size=micro_batch_size
        )

    assert torch.equal(fast.mask, reference.mask)
    assert fast.mask.sum() == sum(len(c) for _, c in sequences)
    torch.testing.assert_close(fast.logprobs * fast.mask, reference.logprobs * reference.mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.entropy * fast.mask, reference.entropy * reference.mask, atol=1e-5, rtol=0)


@KINDS
def test_gradients_through_the_completion_only_scores_equal_the_reference(model, sequences):
    def grads(score):
        model.zero_grad()
        scores = score()
        ((scores.logprobs * scores.mask).sum() / scores.mask.sum()).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    reference = grads(lambda: full_softmax_scores(model, sequences, PAD, 1.0, with_entropy=False))
    fast = grads(lambda: completion_scores(model, sequences, PAD, 1.0, with_entropy=False, micro_batch_size=3))

    for name in reference:
        torch.testing.assert_close(fast[name], reference[name], atol=1e-5, rtol=1e-4)
