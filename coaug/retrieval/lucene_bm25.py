"""Lucene's BM25 score of any text against any query, with an index's collection statistics held fixed.

The index reward (coaug.rl.index_reward) asks what a document's ranking would be if its indexed text were
another one, without re-indexing. Lucene scores a document from its term frequencies, its length (stored
lossily in one byte) and the collection's document frequencies, document count and mean length; with those
statistics fixed, the score of a replaced text is this module's, to float32 rounding (tests compare it with
a real re-index).

Lucene's BM25Similarity (since 8.0, no (k1 + 1) factor):
  idf(t)   = ln(1 + (N − df + 0.5) / (df + 0.5))
  norm(d)  = 1 / (k1 · (1 − b + b · quantised_length(d) / avgdl))
  score    = Σ_t boost(t) · idf(t) · (1 − 1 / (1 + tf(t, d) · norm(d)))
Anserini's bag-of-words query boosts each distinct analysed query term by its count in the query.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coaug import runtime_env
from coaug.errors import CoaugError
from coaug.retrieval.anserini_searcher import AnseriniSearcher

# org.apache.lucene.util.SmallFloat: a length below NUM_FREE_VALUES is stored exactly, longer ones with a
# 4-bit mantissa (3 stored bits and an implicit leading one).
_MANTISSA_BITS = 4
_INT_MAX = 2**31 - 1


def _long_to_int4(value: int) -> int:
    bits = value.bit_length()
    if bits < _MANTISSA_BITS:
        return value
    shift = bits - _MANTISSA_BITS
    return ((value >> shift) & 0x07) | (shift + 1) << 3


def _int4_to_long(encoded: int) -> int:
    bits, shift = encoded & 0x07, (encoded >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(_INT_MAX)  # 24


def quantised_length(length: int) -> int:
    """The document length Lucene's BM25 sees: ``SmallFloat.byte4ToInt(SmallFloat.intToByte4(length))``."""
    if length < _NUM_FREE_VALUES:
        return length
    return _NUM_FREE_VALUES + _int4_to_long(_long_to_int4(length - _NUM_FREE_VALUES))


@dataclass(frozen=True)
class CollectionStats:
    """What Lucene's BM25 reads of a collection: document count, mean length and each term's document
    frequency (a term the collection lacks has frequency 0)."""

    documents: int
    average_length: float
    document_frequency: dict[str, int]

    def idf(self, terms: list[str]) -> np.ndarray:
        df = np.array([self.document_frequency.get(t, 0) for t in terms], dtype=np.float64)
        return np.log(1.0 + (self.documents - df + 0.5) / (df + 0.5)).astype(np.float32)


def bm25_scores(
    queries: list[list[str]], documents: list[list[str]], stats: CollectionStats, k1: float, b: float
) -> np.ndarray:
    """(queries, documents) float32 Lucene BM25 scores of analysed query terms against analysed document
    terms; a document that shares no term with a query scores 0."""
    vocabulary = sorted({t for terms in queries for t in terms})
    column = {t: i for i, t in enumerate(vocabulary)}
    boosts = np.zeros((len(queries), len(vocabulary)), dtype=np.float32)
    for row, terms in enumerate(queries):
        for term, count in Counter(terms).items():
            boosts[row, column[term]] = count
    tf = np.zeros((len(documents), len(vocabulary)), dtype=np.float32)
    lengths = np.empty(len(documents), dtype=np.float32)
    for row, terms in enumerate(documents):
        lengths[row] = quantised_length(len(terms))
        for term, count in Counter(t for t in terms if t in column).items():
            tf[row, column[term]] = count
    norm = np.float32(1.0) / (
        np.float32(k1) * (np.float32(1 - b) + np.float32(b) * lengths / np.float32(stats.average_length))
    )
    saturation = np.float32(1.0) - np.float32(1.0) / (np.float32(1.0) + tf * norm[:, None])
    return (boosts * stats.idf(vocabulary)[None, :]) @ saturation.T


class LuceneIndex:
    """A flat Lucene index opened for the index reward: its analyser, its BM25 collection statistics (read
    once) and a quiet batch search (no progress bar: it runs every training step)."""

    def __init__(self, index_dir: str | Path, k1: float, b: float):
        if not any(Path(index_dir).glob("segments_*")):
            raise CoaugError(f"{index_dir}: not a Lucene index (run `coaug index` first)")
        runtime_env.configure()
        from pyserini.index.lucene import LuceneIndexReader

        # Absolute, as AnseriniSearcher opens it: the JVM keeps the working directory it started in.
        self._reader = LuceneIndexReader(str(Path(index_dir).resolve()))
        self._searcher = AnseriniSearcher(index_dir, k1, b)
        self.k1, self.b = k1, b
        totals = self._reader.stats()
        frequencies = {term.term: term.df for term in self._reader.terms()}
        # A flat index has one field, so the index's totals are the field's (BM25's docCount and avgdl).
        self.stats = CollectionStats(totals["documents"], totals["total_terms"] / totals["documents"], frequencies)

    def analyze(self, text: str) -> list[str]:
        """``text`` as the index's analyser (Porter stemming, English stopwords) splits it."""
        return list(self._reader.analyze(text))

    def search(self, texts: list[str], hits: int, threads: int) -> list[list[tuple[str, float]]]:
        """The top ``hits`` ``(doc_id, score)`` of each query text, in order."""
        labels = [str(i) for i in range(len(texts))]
        results = self._searcher.batch_search(texts, labels, hits, threads)
        return [results.get(label, []) for label in labels]

    def scores(self, queries: list[str], documents: list[str]) -> np.ndarray:
        """(queries, documents) BM25 scores of document TEXTS as if indexed in place of what the index holds."""
        analysed = {text: self.analyze(text) for text in {*queries, *documents}}
        return bm25_scores(
            [analysed[q] for q in queries], [analysed[d] for d in documents], self.stats, self.k1, self.b
        )
