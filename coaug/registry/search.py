"""``coaug search``: answer ad-hoc queries with the served champion, the way its system was evaluated.

Construction is the warm-up, done once: the serving manifest, the registry check that the alias still
points at the served version, the policy (its weights packed and its prompt prefix prefilled:
coaug.augment.query_augmenter), the index and the document titles. Each query is then
augmented by the policy with the manifest's query prompt, joined to the query as the system does
(coaug.retrieval.combine, e.g. ``query_repeat``) and searched in the served index.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coaug.augment.query_augmenter import QueryAugmenter
from coaug.augment.run import generation_params
from coaug.data.beir import read_corpus
from coaug.errors import CoaugError
from coaug.params_schema import Bm25, Dense, Params
from coaug.policy.model import load_policy
from coaug.policy.quantize import quantized
from coaug.registry.aliases import aliased_version, registered_aliases
from coaug.registry.serving import pick_system, query_prompt, read_manifest, served_index
from coaug.retrieval import dense, lucene
from coaug.retrieval.combine import augmented_query
from coaug.tracking import configure_mlflow

logger = logging.getLogger(__name__)

# The id an ad-hoc query carries through the retrievers' batch interfaces.
QUERY_ID = "query"

Ranking = list[tuple[str, float]]


@dataclass(frozen=True)
class Hit:
    rank: int
    doc_id: str
    score: float
    title: str


@dataclass(frozen=True)
class Result:
    """One answered query; ``query_text`` is what the retriever searched with (query + augmentation)."""

    query: str
    augmentation: str
    query_text: str
    hits: list[Hit]
    seconds: float
    augment_seconds: float


class ServedSearch:
    """The served champion, loaded once; :meth:`search` answers one query. ``policy.packed_weights`` false
    keeps the policy's plain Linear layers, ``greedy_loop`` false decodes with ``model.generate`` instead of
    coaug's own loop and ``scripted_loop`` false runs that loop's layers as eager Python instead of TorchScript
    (same answers either way, slower: benchmarks/search_latency.py compares)."""

    def __init__(
        self, params: Params, alias: str, dense_retriever: bool, greedy_loop: bool = True, scripted_loop: bool = True
    ):
        serving_dir = Path(params.promotion.serving_dir)
        manifest = read_manifest(serving_dir)
        name = manifest["model_name"]
        client = configure_mlflow(params.mlflow, params.dataset).MlflowClient()
        version = aliased_version(registered_aliases(client, name, params.mlflow.tracking_uri), name, alias)
        require_served(manifest, alias, version, serving_dir)
        self.system = pick_system(manifest, dense_retriever)
        self._entry = manifest["systems"][self.system]
        # Queries are augmented only when the evaluated system augmented them.
        prompt = query_prompt(manifest) if self._entry["augment_queries"] else None
        self._augment_query = None
        if prompt is not None:
            policy = load_policy(f"models:/{name}/{version}", params.policy.cache_dir, params.policy.dtype)
            self._augment_query = QueryAugmenter(
                quantized(policy, params.policy.quantize),
                prompt,
                generation_params(params.generation),
                params.policy.packed_weights,
                greedy_loop,
                scripted_loop,
            )
        index_dir = served_index(serving_dir, self.system)
        self._retrieve = _retriever(manifest, self.system, index_dir, params.bm25, params.dense)
        corpus = read_corpus(Path(manifest["prepared_dir"]) / "corpus.jsonl")
        self._titles = {doc_id: doc["title"] for doc_id, doc in corpus.items()}
        packed = self._augment_query is not None and self._augment_query.packed
        own_loop = self._augment_query is not None and self._augment_query.own_loop
        logger.info(
            "serving %s v%s (@%s) with %s (packed weights: %s, own decoding loop: %s)",
            name,
            version,
            alias,
            self.system,
            packed,
            own_loop,
        )

    def search(self, query: str, k: int) -> Result:
        if not query.strip():
            raise CoaugError("empty query")
        if k < 1:
            raise CoaugError(f"k must be >= 1, got {k}")
        started = time.perf_counter()
        augmentation = self._augment(query)
        augment_seconds = time.perf_counter() - started
        text = augmented_query(query, augmentation, self._entry["retriever"], self._entry["query_repeat"])
        ranking = self._retrieve(text, k)
        hits = [Hit(rank, doc_id, score, self._title(doc_id)) for rank, (doc_id, score) in enumerate(ranking, start=1)]
        seconds = time.perf_counter() - started
        logger.info("%.3f s (augment %.3f s) for %r", seconds, augment_seconds, query)
        return Result(query, augmentation, text, hits, seconds, augment_seconds)

    def _augment(self, query: str) -> str:
        return "" if self._augment_query is None else self._augment_query(query)

    def _title(self, doc_id: str) -> str:
        if doc_id not in self._titles:
            raise CoaugError(
                f"document '{doc_id}' of the served index is not in the prepared corpus: run `coaug promote` again"
            )
        return self._titles[doc_id]


def require_served(manifest: dict[str, Any], alias: str, version: str, serving_dir: Path) -> None:
    """The alias must point at the version whose bundle is served, or answers would mix two policies."""
    if manifest["version"] != version:
        raise CoaugError(
            f"@{alias} of '{manifest['model_name']}' is v{version} but {serving_dir} serves v{manifest['version']}: "
            "re-run `coaug promote`"
        )


def result_json(result: Result) -> dict[str, Any]:
    return {
        "query": result.query,
        "augmentation": result.augmentation,
        "hits": [dataclasses.asdict(hit) for hit in result.hits],
        "seconds": result.seconds,
    }


def result_line(result: Result) -> str:
    """The result as one JSON line, with the control characters that JSON leaves raw (DEL, C1) escaped too."""
    text = json.dumps(result_json(result), ensure_ascii=False)
    return "".join(f"\\u{ord(char):04x}" if unicodedata.category(char) == "Cc" else char for char in text) + "\n"


def result_table(result: Result) -> str:
    rows = [f"{hit.rank}\t{hit.doc_id}\t{hit.score:.4f}\t{printable(hit.title)}" for hit in result.hits]
    return "\n".join([
        f"query: {printable(result.query)} ({result.seconds:.2f} s)", "rank\tdoc_id\tscore\ttitle", *rows,
        f"augmented query: {printable(result.query_text)}",
    ]) + "\n"  # fmt: skip


def printable(text: str) -> str:
    """``text`` with each control character escaped as Python writes it (``\\x1b``, ``\\n``): a query or title
    echoed to a terminal must not move its cursor, change its colours or break the table's lines."""
    return "".join(
        char.encode("unicode_escape").decode() if unicodedata.category(char) == "Cc" else char for char in text
    )


def _retriever(
    manifest: dict[str, Any], system: str, index_dir: Path, bm25_params: Bm25, dense_params: Dense
) -> Callable[[str, int], Ranking]:
    """``(query text, k) -> ranking`` over the served index, with the retrieval knobs of the manifest (and the
    throughput knobs and cache of params.yaml)."""
    retriever = manifest["systems"][system]["retriever"]
    knobs = manifest["retrieval"]
    if retriever == "dense":
        encoder = dense.Encoder(
            knobs["dense"]["encoder"],
            max_seq_length=knobs["dense"]["max_seq_length"],
            batch_size=dense_params.batch_size,
            cache_dir=dense_params.cache_dir,
        )
        chunk_size = dense_params.cache_chunk_size
        return lambda text, k: dense.search(index_dir, {QUERY_ID: text}, encoder, k, chunk_size)[QUERY_ID]
    bm25 = knobs["bm25"]
    fields = bm25["multifield_weights"] if retriever == "bm25_multifield" else None
    searcher = lucene.Bm25Searcher(index_dir, bm25["k1"], bm25["b"], fields)
    threads, batch_size = bm25_params.search_threads, bm25_params.search_batch_size
    return lambda text, k: searcher.search({QUERY_ID: text}, k, threads, batch_size)[QUERY_ID]
