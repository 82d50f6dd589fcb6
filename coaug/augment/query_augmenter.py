"""One query at a time with a policy loaded once: the augmentation ``coaug search`` writes per query.

Everything that does not depend on the query is done once, here: on a CPU the policy's Linear weights are
prepacked for oneDNN (coaug.policy.packed_linear; at batch 1 a decoding step streams every weight, and the
packed layout streams faster with the same greedy output), and the prompt's chat template and system
prompt, the same for every query, are prefilled once into a KV cache (coaug.policy.generation.PromptPrefix).
Each query is then one batch of one, decoded with the same rule as the corpus pass (repetition penalty over
prompt and output).
"""

from __future__ import annotations

from coaug.policy.generation import GenerationParams, PromptPrefix, generate_batches, template_prefix
from coaug.policy.model import Policy
from coaug.policy.packed_linear import pack_linear_layers
from coaug.policy.parsing import parse_response
from coaug.policy.prompts import Prompt, conversation


class QueryAugmenter:
    """``augmenter(query) -> augmentation`` for ``prompt``; ``packed`` says whether the weights were packed.

    ``policy`` is modified in place when ``packed_weights`` packs it: it serves inference only from then on.
    """

    def __init__(self, policy: Policy, prompt: Prompt, generation: GenerationParams, packed_weights: bool):
        self.packed = packed_weights and pack_linear_layers(policy)
        self._policy, self._prompt, self._generation = policy, prompt, generation
        shared = template_prefix(policy, lambda text: conversation(prompt, text))
        self._prefix = PromptPrefix(policy, shared) if shared else None

    def __call__(self, query: str) -> str:
        conversations = [conversation(self._prompt, query)]
        ((_, completions),) = generate_batches(self._policy, conversations, self._generation, 1, "augment query", self._prefix)
        return parse_response(completions[0].text, self._prompt.format).augmentation
