"""The unbatched reference path: one plain ``model.generate`` per conversation, no padding, greedy.

The batched engine (coaug.policy.generation) must reproduce its outputs (tests/policy/test_generation.py).
"""

from __future__ import annotations

from coaug.policy.generation import GenerationParams, tokenize_conversations
from coaug.policy.model import Policy


def generate_one_at_a_time(
    policy: Policy, conversations: list[list[dict]], params: GenerationParams
) -> list[list[int]]:
    """The new token ids of each conversation, generated alone (dynamic KV cache)."""
    import torch

    outputs = []
    for ids in tokenize_conversations(policy, conversations):
        prompt = torch.tensor([ids])
        with torch.inference_mode():
            output = policy.model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=params.max_new_tokens,
                repetition_penalty=params.repetition_penalty,
                do_sample=False,
            )
        outputs.append(output[0, prompt.shape[1] :].tolist())
    return outputs
