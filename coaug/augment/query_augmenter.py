"""One query at a time with a policy loaded once: the augmentation ``coaug search`` writes per query.

Everything that does not depend on the query is done once, here: on a CPU the policy's Linear weights are
prepacked for oneDNN (coaug.policy.packed_linear; at batch 1 a decoding step streams every weight, and the
packed layout streams faster with the same greedy output), and the prompt's chat template and system
prompt, the same for every query, are prefilled once into a KV cache (coaug.policy.generation.PromptPrefix).
Each query is then one batch of one, decoded with the same rule as the corpus pass (repetition penalty over
prompt and output): where it gives ``model.generate``'s output token for token (a Llama or Qwen2 policy
with packed weights, greedy), by coaug's own loop without generate's per-step machinery
(coaug.policy.greedy_decoder), else by ``model.generate``.
"""

from __future__ import annotations

from coaug.policy.generation import (
    GenerationParams,
    PromptPrefix,
    completion_from_ids,
    generate_batches,
    template_prefix,
    tokenize_conversations,
)
from coaug.policy.greedy_decoder import GreedyDecoder, decodes, fuse_projections
from coaug.policy.model import Policy
from coaug.policy.packed_linear import pack_linear_layers
from coaug.policy.parsing import parse_response
from coaug.policy.prompts import Prompt, conversation


class QueryAugmenter:
    """``augmenter(query) -> augmentation`` for ``prompt``; ``packed`` says whether the weights were packed,
    ``own_loop`` whether queries are decoded by :class:`GreedyDecoder` (``greedy_loop`` false keeps
    ``model.generate``, ``scripted_loop`` false runs the loop's layers as eager Python: the same tokens,
    slower; benchmarks/search_latency.py compares).

    ``policy`` is modified in place when ``packed_weights`` packs it: it serves inference only from then on.
    """

    def __init__(
        self,
        policy: Policy,
        prompt: Prompt,
        generation: GenerationParams,
        packed_weights: bool,
        greedy_loop: bool = True,
        scripted_loop: bool = True,
    ):
        # The loop's fused matrices are made of the plain weights, before packing replaces them.
        fused = fuse_projections(policy) if greedy_loop and packed_weights and decodes(policy, generation) else None
        self.packed = packed_weights and pack_linear_layers(policy)
        self._decoder = GreedyDecoder(policy, generation, fused, scripted_loop) if fused is not None else None
        self.own_loop = self._decoder is not None
        self._policy, self._prompt, self._generation = policy, prompt, generation
        shared = template_prefix(policy, lambda text: conversation(prompt, text))
        self._prefix = PromptPrefix(policy, shared) if shared else None

    def __call__(self, query: str) -> str:
        conversations = [conversation(self._prompt, query)]
        if self._decoder is not None:
            (prompt,) = tokenize_conversations(self._policy, conversations)
            text = completion_from_ids(self._policy, self._decoder(prompt, self._prefix)).text
        else:
            ((_, completions),) = generate_batches(
                self._policy, conversations, self._generation, 1, "augment query", self._prefix
            )
            text = completions[0].text
        return parse_response(text, self._prompt.format).augmentation
