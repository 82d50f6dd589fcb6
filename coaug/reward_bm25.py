"""In-batch BM25 for the training reward (METHOD §4, sparse): tokenizer, corpus IDF, score matrix.

This is the *training* BM25 of the authors' reward (their ``text_sim.py``): IDF from the original corpus,
avgdl from the batch's document strings, k1 1.2, b 0.75. It is not the Lucene BM25 the evaluation uses
(``coaug.lucene``: k1 0.9, b 0.4, Lucene's own analyzer and IDF).
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

Idf = dict[str, float]


def tokenize(text: str) -> list[str]:
    """The paper's tokenizer: drop punctuation, lowercase, split on whitespace (METHOD §4).

    Punctuation is deleted, not replaced by a space ("covid-19" -> "covid19"), and it is deleted before
    lowercasing, both as in the reference.
    """
    return _PUNCTUATION.sub("", text).lower().split()


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


def _term_frequencies(token_lists: Sequence[list[str]], vocabulary: dict[str, int]) -> sparse.csr_matrix:
    """Texts × vocabulary counts; ``vocabulary`` must already hold every token."""
    lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
    token_ids = np.fromiter(map(vocabulary.__getitem__, chain.from_iterable(token_lists)), dtype=np.int64)
    text_ids = np.repeat(np.arange(len(token_lists)), lengths)
    counts = sparse.csr_matrix(
        (np.ones(len(token_ids)), (text_ids, token_ids)), shape=(len(token_lists), len(vocabulary))
    )
    counts.sum_duplicates()
    return counts


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
    query_tokens = [tokenize(text) for text in query_texts]
    doc_tokens = [tokenize(text) for text in doc_texts]
    all_tokens = chain.from_iterable((*query_tokens, *doc_tokens))
    vocabulary = {word: index for index, word in enumerate(dict.fromkeys(all_tokens))}
    if not vocabulary:
        return np.zeros((len(query_texts), len(doc_texts)))

    word_idf = np.fromiter((idf.get(word, 0.0) for word in vocabulary), dtype=np.float64, count=len(vocabulary))
    query_weights = _term_frequencies(query_tokens, vocabulary)
    query_weights.data *= word_idf[query_weights.indices]

    doc_tf = _term_frequencies(doc_tokens, vocabulary)
    doc_lengths = np.asarray(doc_tf.sum(axis=1)).ravel()
    average_length = doc_lengths.mean()
    entry_lengths = np.repeat(doc_lengths, np.diff(doc_tf.indptr))
    tf = doc_tf.data
    # Only stored (non-zero tf) entries are touched, so avgdl > 0 wherever it is divided by.
    doc_tf.data = (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * entry_lengths / average_length))

    return np.asarray((query_weights @ doc_tf.T).toarray(), dtype=np.float64)
