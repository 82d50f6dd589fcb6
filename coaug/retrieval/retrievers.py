"""One interface over the three frozen retrievers: build an index for a system, then retrieve with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coaug.retrieval import dense, lucene

from coaug import params as P
from coaug.augment.files import read_augmentations
from coaug.data.beir import Corpus, read_corpus, read_queries
from coaug.retrieval.combine import augmented_doc, augmented_query
from coaug.retrieval.trec_run import Run, remove_self_hits


def _encoder(params: dict[str, Any]) -> dense.Encoder:
    return dense.Encoder(
        P.get(params, "dense.encoder"),
        max_seq_length=P.get(params, "dense.max_seq_length"),
        batch_size=P.get(params, "dense.batch_size"),
        cache_dir=P.get(params, "dense.cache_dir"),
    )


def system_corpus(config: dict[str, Any]) -> Corpus:
    """The documents as the system's retriever sees them (augmented when the system says so)."""
    corpus = read_corpus(Path(config["corpus"]))
    if not config["doc_augmentation"]:
        return corpus
    augmentations = read_augmentations(config["doc_augmentation"])
    return {i: augmented_doc(doc, augmentations.get(i, ""), config["retriever"]) for i, doc in corpus.items()}


def system_queries(config: dict[str, Any], qids: list[str]) -> dict[str, str]:
    """The query strings the system searches with, for ``qids`` present in its queries file."""
    queries = read_queries(Path(config["queries"]))
    augmentations = read_augmentations(config["query_augmentation"]) if config["query_augmentation"] else {}
    return {
        q: augmented_query(queries[q], augmentations.get(q, ""), config["retriever"], config["query_repeat"])
        for q in qids
        if q in queries
    }


def build_index(params: dict[str, Any], system_name: str, index_dir: str | Path) -> int:
    """Index the system's corpus; returns the number of documents."""
    config = P.system(params, system_name)
    corpus = system_corpus(config)
    retriever = config["retriever"]
    if retriever == "dense":
        texts = [lucene.flat_contents(doc) for doc in corpus.values()]
        dense.build_index(list(corpus), texts, _encoder(params), index_dir, P.get(params, "dense.cache_chunk_size"))
    else:
        layout = retriever.removeprefix("bm25_")
        lucene.build_index(corpus.items(), layout, index_dir, P.get(params, "bm25.index_threads"))
    return len(corpus)


def retrieve(params: dict[str, Any], system_name: str, index_dir: str | Path, queries: dict[str, str]) -> Run:
    config = P.system(params, system_name)
    hits = P.get(params, "retrieval.hits")
    remove_self = P.get(params, "retrieval.remove_self_hits")
    # One extra hit so removing a self-hit still leaves `hits` results.
    depth = hits + 1 if remove_self else hits
    if config["retriever"] == "dense":
        run = dense.search(index_dir, queries, _encoder(params), depth, P.get(params, "dense.cache_chunk_size"))
    else:
        fields = P.get(params, "bm25.multifield_weights") if config["retriever"] == "bm25_multifield" else None
        searcher = lucene.Bm25Searcher(index_dir, P.get(params, "bm25.k1"), P.get(params, "bm25.b"), fields)
        run = searcher.search(
            queries, depth, P.get(params, "bm25.search_threads"), P.get(params, "bm25.search_batch_size")
        )
    return remove_self_hits(run, hits) if remove_self else {q: r[:hits] for q, r in run.items()}
