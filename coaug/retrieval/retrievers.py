"""One interface over the three frozen retrievers: build an index for a system, then retrieve with it."""

from __future__ import annotations

from pathlib import Path

from coaug.augment.files import read_augmentations
from coaug.data.beir import Corpus, read_corpus, read_queries
from coaug.params import SystemRecipe
from coaug.params_schema import Bm25, Dense, Retrieval
from coaug.retrieval import dense, lucene
from coaug.retrieval.combine import augmented_doc, augmented_query
from coaug.retrieval.trec_run import Run, remove_self_hits


def _encoder(dense_params: Dense) -> dense.Encoder:
    return dense.Encoder(
        dense_params.encoder,
        max_seq_length=dense_params.max_seq_length,
        batch_size=dense_params.batch_size,
        cache_dir=dense_params.cache_dir,
    )


def system_corpus(system: SystemRecipe) -> Corpus:
    """The documents as the system's retriever sees them (augmented when the system says so)."""
    corpus = read_corpus(Path(system.corpus))
    if not system.doc_augmentation:
        return corpus
    augmentations = read_augmentations(system.doc_augmentation)
    return {i: augmented_doc(doc, augmentations.get(i, ""), system.retriever) for i, doc in corpus.items()}


def system_queries(system: SystemRecipe, qids: list[str]) -> dict[str, str]:
    """The query strings the system searches with, for ``qids`` present in its queries file."""
    queries = read_queries(Path(system.queries))
    augmentations = read_augmentations(system.query_augmentation) if system.query_augmentation else {}
    return {
        q: augmented_query(queries[q], augmentations.get(q, ""), system.retriever, system.query_repeat)
        for q in qids
        if q in queries
    }


def build_index(system: SystemRecipe, index_dir: str | Path, bm25: Bm25, dense_params: Dense) -> int:
    """Index the system's corpus; returns the number of documents."""
    corpus = system_corpus(system)
    if system.retriever == "dense":
        texts = [lucene.flat_contents(doc) for doc in corpus.values()]
        dense.build_index(list(corpus), texts, _encoder(dense_params), index_dir, dense_params.cache_chunk_size)
    else:
        layout = system.retriever.removeprefix("bm25_")
        lucene.build_index(corpus.items(), layout, index_dir, bm25.index_threads)
    return len(corpus)


def retrieve(
    system: SystemRecipe,
    index_dir: str | Path,
    queries: dict[str, str],
    retrieval: Retrieval,
    bm25: Bm25,
    dense_params: Dense,
) -> Run:
    hits = retrieval.hits
    remove_self = retrieval.remove_self_hits
    # One extra hit so removing a self-hit still leaves `hits` results.
    depth = hits + 1 if remove_self else hits
    if system.retriever == "dense":
        run = dense.search(index_dir, queries, _encoder(dense_params), depth, dense_params.cache_chunk_size)
    else:
        fields = bm25.multifield_weights if system.retriever == "bm25_multifield" else None
        searcher = lucene.Bm25Searcher(index_dir, bm25.k1, bm25.b, fields)
        run = searcher.search(queries, depth, bm25.search_threads, bm25.search_batch_size)
    return remove_self_hits(run, hits) if remove_self else {q: r[:hits] for q, r in run.items()}
