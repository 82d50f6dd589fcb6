"""Rollouts: one prefill per prompt gives generate_batches' samples; the recorded log-probs are the scorer's."""

from __future__ import annotations

import pytest
import torch

from coaug.policy.generation import GenerationParams, generate_batches, tokenize_conversations
from coaug.policy.model import load_policy
from coaug.rl.rollouts import SampledCompletion, recorded_scores, sample_rollouts
from coaug.rl.sequence_logprobs import full_softmax_scores

from ..policy.test_generation import conversations
from ..tiny_models import build_tiny_llama

ROLLOUTS = 3
TEMPERATURE = 1.2


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    folder = build_tiny_llama(tmp_path_factory.mktemp("rollouts") / "tiny")
    return load_policy(str(folder), tmp_path_factory.mktemp("cache"))


def params(do_sample: bool) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=10, do_sample=do_sample, temperature=TEMPERATURE, repetition_penalty=1.3, seed=5
    )


def rollouts_by_index(policy, convs, generation, batch_size, score_temperature=None) -> list[list[SampledCompletion]]:
    found: list[list[SampledCompletion]] = [[] for _ in convs]
    for indices, samples in sample_rollouts(policy, convs, ROLLOUTS, generation, batch_size, "t", score_temperature):
        assert len(indices) == len(samples) <= batch_size
        for index, sample in zip(indices, samples):
            found[index].append(sample)
    return found


@pytest.mark.parametrize("do_sample", [False, True])
@pytest.mark.parametrize("batch_size", [ROLLOUTS, 2 * ROLLOUTS])
def test_one_prefill_per_prompt_samples_what_repeated_prompts_sample(policy, do_sample, batch_size):
    convs = conversations(5)
    repeated = [conv for conv in convs for _ in range(ROLLOUTS)]
    expected: list[list] = [[] for _ in convs]
    for indices, completions in generate_batches(policy, repeated, params(do_sample), batch_size, "t"):
        for index, completion in zip(indices, completions):
            expected[index // ROLLOUTS].append(completion)

    found = rollouts_by_index(policy, convs, params(do_sample), batch_size)

    assert [[s.completion for s in samples] for samples in found] == expected
    assert all(s.logprobs is None and s.entropies is None for samples in found for s in samples)
    if do_sample:  # the rollouts of a prompt differ from one another
        assert all(len({s.completion.token_ids for s in samples}) > 1 for samples in found)


def test_recording_changes_no_sample(policy):
    convs = conversations(4)
    plain = rollouts_by_index(policy, convs, params(True), 2 * ROLLOUTS)
    recorded = rollouts_by_index(policy, convs, params(True), 2 * ROLLOUTS, score_temperature=TEMPERATURE)

    assert [[s.completion for s in r] for r in recorded] == [[s.completion for s in r] for r in plain]


def test_recorded_logprobs_and_entropies_equal_the_full_softmax_reference(policy):
    convs = conversations(4)
    prompts = tokenize_conversations(policy, convs)
    found = rollouts_by_index(policy, convs, params(True), 2 * ROLLOUTS, score_temperature=TEMPERATURE)
    samples = [s for per_prompt in found for s in per_prompt]
    sequences = [(prompts[i], list(s.completion.token_ids)) for i, per_prompt in enumerate(found) for s in per_prompt]
    assert all(len(s.logprobs) == len(s.entropies) == len(s.completion.token_ids) for s in samples)

    recorded = recorded_scores(samples, "cpu")
    with torch.no_grad():
        reference = full_softmax_scores(
            policy.model, sequences, policy.tokenizer.pad_token_id, TEMPERATURE, with_entropy=True
        )

    assert torch.equal(recorded.mask, reference.mask)
    torch.testing.assert_close(recorded.logprobs, reference.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(recorded.entropy * recorded.mask, reference.entropy * reference.mask, atol=1e-5, rtol=0)


def test_recorded_scores_are_laid_out_as_the_scorer_lays_them_out():
    def sample(values):
        return SampledCompletion(None, torch.tensor(values), torch.tensor(values) * 10)

    scores = recorded_scores([sample([-1.0, -2.0]), sample([-3.0]), sample([-4.0, -5.0, -6.0])], "cpu")

    assert scores.logprobs.tolist() == [[-1.0, -2.0, 0.0], [-3.0, 0.0, 0.0], [-4.0, -5.0, -6.0]]
    assert scores.entropy.tolist() == [[-10.0, -20.0, 0.0], [-30.0, 0.0, 0.0], [-40.0, -50.0, -60.0]]
    assert scores.mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_log_probs_are_recorded_only_while_sampling(policy):
    with pytest.raises(ValueError, match="while sampling"):
        next(sample_rollouts(policy, conversations(2), ROLLOUTS, params(False), 6, "t", score_temperature=1.0))
