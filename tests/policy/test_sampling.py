"""The inverse-CDF sampler draws from softmax of the warped scores, one uniform per row."""

from __future__ import annotations

import pytest
import torch

from coaug.policy.sampling import CategoricalSampler, inverse_cdf_sample


def test_each_uniform_picks_the_token_whose_cumulative_mass_passes_it():
    probs = torch.tensor([[0.5, 0.25, 0.25]]).repeat(6, 1)  # cumulative 0.5, 0.75, 1.0: exact in binary
    uniforms = torch.tensor([0.0, 0.49, 0.5, 0.74, 0.75, 0.99])

    assert inverse_cdf_sample(probs, uniforms).tolist() == [0, 0, 1, 1, 2, 2]


def test_tokens_without_mass_are_never_drawn_and_rows_need_not_be_normalised():
    probs = torch.tensor([[0.0, 2.0, 0.0, 2.0, 0.0]] * 4)
    uniforms = torch.tensor([0.0, 0.4999, 0.5, 0.9999999])

    assert inverse_cdf_sample(probs, uniforms).tolist() == [1, 1, 3, 3]


def test_a_threshold_rounded_up_to_the_total_takes_the_last_token_with_mass():
    assert inverse_cdf_sample(torch.tensor([[0.5, 0.5, 0.0, 0.0]]), torch.tensor([1.0])).tolist() == [1]


def test_the_sampler_leaves_exactly_the_drawn_token_finite():
    torch.manual_seed(0)
    scores = CategoricalSampler(1.0, 0, 1.0)(torch.zeros((3, 1), dtype=torch.long), torch.randn(3, 10))

    assert torch.isfinite(scores).sum(dim=-1).tolist() == [1, 1, 1]
    assert scores[torch.isfinite(scores)].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.2, 0, 1.0), (1.0, 2, 1.0), (0.7, 0, 0.8)])
def test_draw_frequencies_follow_the_warped_softmax(temperature, top_k, top_p):
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    expected = torch.softmax(logits / temperature, dim=-1)
    if top_k:
        expected[expected.argsort(descending=True)[top_k:]] = 0.0
    if top_p < 1.0:  # keep the most likely tokens until their mass reaches top_p (transformers' rule)
        ordered = expected.argsort(descending=True)
        kept = ordered[: int((expected[ordered].cumsum(0) < top_p).sum()) + 1]
        expected[[i for i in range(len(logits)) if i not in kept.tolist()]] = 0.0
    expected = expected / expected.sum()
    draws = 40_000
    torch.manual_seed(0)
    scores = CategoricalSampler(temperature, top_k, top_p)(
        torch.zeros((draws, 1), dtype=torch.long), logits.repeat(draws, 1)
    )
    frequencies = torch.bincount(scores.argmax(-1), minlength=len(logits)) / draws

    assert frequencies[expected == 0].sum() == 0
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)
