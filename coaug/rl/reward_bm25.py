"""In-batch BM25 for the training reward (METHOD §4, sparse): tokenizer, corpus IDF, score matrix.

This is the *training* BM25 of the authors' reward (their ``text_sim.py``): IDF from the original corpus,
avgdl from the batch's document strings, k1 1.2, b 0.75. It is not the Lucene BM25 the evaluation uses
(``coaug.retrieval.lucene``: k1 0.9, b 0.4, Lucene's own analyzer and IDF).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
from scipy import sparse

BM25_K1 = 1.2  # METHOD §4, reference default
BM25_B = 0.75  # METHOD §4, reference default

_PUNCTUATION = re.compile(r"[^\w\s]")
# The same class restricted to ASCII, for bytes.translate: several times faster than the regex.
_ASCII_PUNCTUATION = bytes(code for code in range(128) if _PUNCTUATION.match(chr(code)))

Idf = dict[str, float]


def _strip_punctuation(text: str) -> str:
    if text.isascii():
        return text.encode("ascii").translate(None, _ASCII_PUNCTUATION).decode("ascii")
    return _PUNCTUATION.sub("", text)


def tokenize(text: str) -> list[str]:
    """The paper's tokenizer: drop punctuation, lowercase, split on whitespace (METHOD §4).

    Punctuation = ``[^\\w\\s]`` as in the reference; it is deleted, not replaced by a space ("covid-19" ->
    "covid19"), and deleted before lowercasing, both as in the reference.
    """
    return _strip_punctuation(text).lower().split()


def corpus_idf(documents: Iterable[str]) -> Idf:
    """IDF of every word of the ORIGINAL corpus: ``ln((N - n_w + 0.5) / (n_w + 0.5) + 1)`` (METHOD §4).

    ``n_w`` counts the documents containing ``w``. Words absent from the table weigh 0 in ``bm25_matrix``.
    """
    document_frequency: Counter[str] = Counter()
    num_documents = 0
    for text in documents:
        document_frequency.update(set(tokenize(text)))
        num_documents += 1
    words = list(document_frequency)
    counts = np.fromiter(document_frequency.values(), dtype=np.float64, count=len(words))
    weights = np.log((num_documents - counts + 0.5) / (counts + 0.5) + 1.0)
    return dict(zip(words, weights.tolist()))


def _count_matrix(item_lists: Sequence[list[str]], item_ids: dict[str, int]) -> sparse.csr_matrix:
    """(lists × ids) matrix counting how often each item occurs in each list."""
    lengths = np.fromiter(map(len, item_lists), dtype=np.int64, count=len(item_lists))
    ids = np.fromiter(map(item_ids.__getitem__, chain.from_iterable(item_lists)), dtype=np.int64)
    owners = np.repeat(np.arange(len(item_lists)), lengths)
    counts = sparse.csr_matrix((np.ones(len(ids)), (owners, ids)), shape=(len(item_lists), len(item_ids)))
    counts.sum_duplicates()
    return counts


def _numbered(items: Iterable[str]) -> dict[str, int]:
    """Distinct items numbered in order of first appearance."""
    return {item: index for index, item in enumerate(dict.fromkeys(items))}


def _batch_term_frequencies(texts: Sequence[str]) -> tuple[sparse.csr_matrix, list[str]]:
    """(texts × vocabulary) term counts of the batch, and its vocabulary.

    Each distinct line is tokenized once: a batch repeats every original text in its n rollout strings,
    and "\n" is whitespace, so no token spans two lines and per-line tokens add up exactly.
    """
    text_lines = [text.split("\n") for text in texts]
    line_ids = _numbered(chain.from_iterable(text_lines))
    line_tokens = [tokenize(line) for line in line_ids]
    word_ids = _numbered(chain.from_iterable(line_tokens))
    term_counts = _count_matrix(text_lines, line_ids) @ _count_matrix(line_tokens, word_ids)
    return term_counts.tocsr(), list(word_ids)


def bm25_matrix(
    query_texts: Sequence[str],
    doc_texts: Sequence[str],
    idf: Idf,
    *,
    k1: float = BM25_K1,
    b: float = BM25_B,
) -> np.ndarray:
    """BM25 of every query string (rows) against every document string (columns) of one batch (METHOD §4).

    ``S[q, d] = Σ_w qtf(w, q) · idf(w) · tf(w, d)(k1 + 1) / (tf(w, d) + k1(1 − b + b·|d| / avgdl))``,
    avgdl = mean token count of ``doc_texts``; words missing from ``idf`` weigh 0. One sparse product over a
    vocabulary shared by the batch, no loop over pairs. Returns a dense float64 array.
    """
    term_counts, vocabulary = _batch_term_frequencies([*query_texts, *doc_texts])
    if not vocabulary or not doc_texts:
        return np.zeros((len(query_texts), len(doc_texts)))

    word_idf = np.fromiter((idf.get(word, 0.0) for word in vocabulary), dtype=np.float64, count=len(vocabulary))
    query_weights = term_counts[: len(query_texts)]
    query_weights.data *= word_idf[query_weights.indices]

    doc_tf = term_counts[len(query_texts) :]
    doc_lengths = np.asarray(doc_tf.sum(axis=1)).ravel()
    average_length = doc_lengths.mean()
    entry_lengths = np.repeat(doc_lengths, np.diff(doc_tf.indptr))
    tf = doc_tf.data
    # Only stored (non-zero tf) entries are touched, so avgdl > 0 wherever it is divided by.
    doc_tf.data = (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * entry_lengths / average_length))

    return np.asarray((query_weights @ doc_tf.T).toarray(), dtype=np.float64)
