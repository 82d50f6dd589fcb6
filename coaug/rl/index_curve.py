"""The real-index dev curve: what the policy in training does to retrieval as the evaluation measures it.

At step 0, every ``eval_every`` steps and at the end, every query judged in ``train.validation_split`` is
augmented by the current policy with the inference settings (params.yaml ``generation``, greedy, batches of
``augment.batch_size``) and searched on the real index of each of ``train.curve_systems``, whose documents are
held as the pipeline indexed them. NDCG@10 per query is computed as ``coaug evaluate`` computes it (the run
file's rounding, trec_eval semantics), so the step-0 point is that stage's score of the untrained
query-side system on the same split.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from coaug.data.beir import Qrels
from coaug.evaluation.metrics import per_query
from coaug.params import SystemRecipe
from coaug.params_schema import Bm25, Dense, Retrieval
from coaug.policy.generation import GenerationParams, generate_batches
from coaug.policy.model import Policy
from coaug.policy.parsing import parse_response
from coaug.policy.prompts import Prompt, conversation
from coaug.retrieval.combine import augmented_query
from coaug.retrieval.retrievers import retrieve
from coaug.retrieval.trec_run import read_run, write_run

CURVE_METRIC = "NDCG@10"


@dataclass(frozen=True)
class CurveSystem:
    """A system of ``train.curve_systems``: its recipe (retriever, query weighting) and its built index."""

    name: str
    recipe: SystemRecipe
    index_dir: Path


@dataclass(frozen=True)
class RetrievalSettings:
    """The retrieval knobs ``coaug evaluate`` searches with."""

    retrieval: Retrieval
    bm25: Bm25
    dense: Dense


class DevCurve:
    """``curve(policy) -> {system: {qid: NDCG@10}}`` over the judged queries of ``qrels``."""

    def __init__(
        self,
        systems: list[CurveSystem],
        queries: dict[str, str],
        qrels: Qrels,
        prompt: Prompt,
        generation: GenerationParams,
        batch_size: int,
        settings: RetrievalSettings,
    ):
        self.systems, self.qrels, self.prompt = systems, qrels, prompt
        self.queries = {qid: queries[qid] for qid in qrels if qid in queries}
        self.generation, self.batch_size, self.settings = generation, batch_size, settings

    def augment(self, policy: Policy) -> dict[str, str]:
        """Each judged query's augmentation by ``policy``, decoded as the augment stage decodes."""
        qids = list(self.queries)
        conversations = [conversation(self.prompt, self.queries[qid]) for qid in qids]
        augmentations = {}
        for indices, completions in generate_batches(
            policy, conversations, self.generation, self.batch_size, "dev curve"
        ):
            for index, completion in zip(indices, completions):
                augmentations[qids[index]] = parse_response(completion.text, self.prompt.format).augmentation
        return augmentations

    def __call__(self, policy: Policy) -> dict[str, dict[str, float]]:
        return self.score(self.augment(policy))

    def score(self, augmentations: dict[str, str]) -> dict[str, dict[str, float]]:
        """``{system: {qid: NDCG@10}}`` of the judged queries with these augmentations."""
        scores = {}
        for system in self.systems:
            recipe = system.recipe
            texts = {
                qid: augmented_query(query, augmentations[qid], recipe.retriever, recipe.query_repeat)
                for qid, query in self.queries.items()
            }
            settings = self.settings
            run = retrieve(recipe, system.index_dir, texts, settings.retrieval, settings.bm25, settings.dense)
            with tempfile.TemporaryDirectory(prefix="coaug-curve-") as folder:
                # Scored from the file as written, like `coaug evaluate`: its rounding decides trec_eval's ties.
                path = Path(folder) / "run.trec"
                write_run(path, run, tag=system.name)
                scores[system.name] = per_query(self.qrels, read_run(path), [CURVE_METRIC])[CURVE_METRIC]
        return scores
