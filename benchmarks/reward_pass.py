"""Time one reward pass (METHOD §4–§5) on a reference-size batch built from real NFCorpus texts.

    .venv/bin/python -m benchmarks.reward_pass [--repeats 5] [--loop-samples 4] [--loop-rows 8]

Batch: 32 train queries × (1 query + 5 positives + 10 random negatives) × 5 rollouts = 2560 rollout
texts, 160 query rollouts × 2400 document rollouts, M = 512 joint samples (``batch_sampling``), BM25 with
the NFCorpus IDF. A rollout's "augmentation" is a random subset of words of its own text (a query borrows
words of one of its positives), appended as ``original + "\\n\\n" + augmentation``: rollouts differ.

Timed pass = BM25 matrix (tokenizing included) + layout + draws + NDCG/sums + per-rollout rewards.
The loop reference (benchmarks/reward_loops.py, the plain-loop port the tests also check against) is too slow for the
whole batch on 2 shared cores: its BM25 runs on ``--loop-rows`` query rollouts and its sampling on
``--loop-samples`` joint samples of the full batch, both scaled linearly to the full size (each is a sum of
independent per-row / per-sample terms).
Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.reward_loops import loop_batch_sampling, loop_bm25, loop_rewards
from coaug.data.beir import read_corpus, read_qrels, read_queries
from coaug.rl.reward import bm25_matrix, corpus_idf, sampled_rewards, sampling_layout
from coaug.rl.reward_sampling import draw_joint_samples, joint_sample_count, joint_sample_rewards

NFCORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nfcorpus"
QUERIES, POSITIVES, NEGATIVES, ROLLOUTS = 32, 5, 10, 5  # METHOD §3 reference batch
AUGMENTATION_WORDS = 40  # words per synthetic augmentation


def synthetic_augmentation(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    picked = rng.choice(len(words), size=min(AUGMENTATION_WORDS, len(words)), replace=False)
    return " ".join(words[i] for i in np.sort(picked))


def reference_batch(rng: np.random.Generator):
    """Retrieval strings and labels of one composite batch (METHOD §3)."""
    corpus = read_corpus(NFCORPUS / "corpus.jsonl")
    queries = read_queries(NFCORPUS / "queries.jsonl")
    qrels = read_qrels(NFCORPUS / "qrels" / "train.tsv")
    doc_text = {doc_id: f"{doc['title']}. {doc['text']}" for doc_id, doc in corpus.items()}
    positive_anywhere = {doc for judged in qrels.values() for doc, score in judged.items() if score > 0}
    negative_pool = sorted(set(corpus) - positive_anywhere)
    doc_ids = sorted(doc_text)
    doc_index = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    eligible = sorted(q for q, judged in qrels.items() if q in queries and any(s > 0 for s in judged.values()))

    query_strings, row_group, doc_strings, column_group, column_doc, relevance = [], [], [], [], [], []
    for group, qid in enumerate(rng.choice(eligible, size=QUERIES, replace=False)):
        positives = sorted(d for d, s in qrels[qid].items() if s > 0 and d in doc_text)
        picked = [(d, qrels[qid][d]) for d in rng.choice(positives, size=POSITIVES, replace=True)]
        picked += [(d, 0) for d in rng.choice(negative_pool, size=NEGATIVES, replace=False)]
        for _ in range(ROLLOUTS):
            borrowed = doc_text[picked[int(rng.integers(POSITIVES))][0]]
            query_strings.append(f"{queries[qid]}\n\n{synthetic_augmentation(borrowed, rng)}")
            row_group.append(group)
        for doc_id, score in picked:
            for _ in range(ROLLOUTS):
                doc_strings.append(f"{doc_text[doc_id]}\n\n{synthetic_augmentation(doc_text[doc_id], rng)}")
                column_group.append(group)
                column_doc.append(doc_index[doc_id])
                relevance.append(float(score))
    labels = tuple(np.array(x) for x in (row_group, column_group, column_doc, relevance))
    return doc_text.values(), query_strings, doc_strings, labels


def reward_pass(idf, query_strings, doc_strings, labels, seed: int, mode: str = "batch_sampling"):
    similarity = bm25_matrix(query_strings, doc_strings, idf)
    layout = sampling_layout(*labels)
    return sampled_rewards(similarity, layout, np.random.default_rng(seed), mode=mode)


def median_seconds(run, repeats: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds)), float(np.min(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loop-samples", type=int, default=4, help="joint samples the loop reference runs")
    parser.add_argument("--loop-rows", type=int, default=8, help="query rollouts the loop BM25 scores")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    corpus_texts, query_strings, doc_strings, labels = reference_batch(rng)
    started = time.perf_counter()
    idf = corpus_idf(corpus_texts)
    idf_seconds = time.perf_counter() - started
    rows, columns = len(query_strings), len(doc_strings)
    num_samples = joint_sample_count(rows + columns, rows)
    print(f"batch: {rows} query rollouts x {columns} document rollouts, M = {num_samples} joint samples")
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"IDF table of {len(idf)} words, built once per run: {idf_seconds:.2f} s")

    similarity = bm25_matrix(query_strings, doc_strings, idf)
    layout = sampling_layout(*labels)
    stages = {
        "bm25_matrix": lambda: bm25_matrix(query_strings, doc_strings, idf),
        "sampling_layout": lambda: sampling_layout(*labels),
        "sampled_rewards": lambda: sampled_rewards(similarity, layout, np.random.default_rng(args.seed)),
        "whole pass": lambda: reward_pass(idf, query_strings, doc_strings, labels, args.seed),
        "whole pass, sampling mode": lambda: reward_pass(
            idf, query_strings, doc_strings, labels, args.seed, mode="sampling"
        ),
    }
    timings = {name: median_seconds(stage, args.repeats) for name, stage in stages.items()}
    for name, (median, fastest) in timings.items():
        print(f"{name:>28}: median {median:.3f} s, min {fastest:.3f} s ({args.repeats} runs)")

    # Loop reference on a slice of the same batch, scaled to the full batch.
    loop_queries = query_strings[: args.loop_rows]
    started = time.perf_counter()
    loop_similarity = loop_bm25(loop_queries, doc_strings, idf)
    loop_bm25_seconds = (time.perf_counter() - started) * rows / args.loop_rows
    joint_columns = draw_joint_samples(layout, args.loop_samples, np.random.default_rng(args.seed))
    started = time.perf_counter()
    loop_sums = loop_batch_sampling(similarity, labels, joint_columns, 10, 10.0)
    loop_rewards(*loop_sums)
    loop_sampling_seconds = (time.perf_counter() - started) * num_samples / args.loop_samples
    fast_rewards = joint_sample_rewards(similarity, layout, joint_columns)
    for fast, loop in zip(fast_rewards, loop_rewards(*loop_sums)):
        np.testing.assert_allclose(fast, loop, rtol=1e-12)
    np.testing.assert_allclose(similarity[: args.loop_rows], loop_similarity, rtol=1e-12)
    print(
        f"loop reference, extrapolated: BM25 {loop_bm25_seconds:.1f} s (timed on {args.loop_rows} rows), "
        f"sampling + rewards {loop_sampling_seconds:.1f} s (timed on {args.loop_samples} joint samples)"
    )
    print(
        f"speed-up (median): BM25 {loop_bm25_seconds / timings['bm25_matrix'][0]:.0f}x, "
        f"sampling + rewards {loop_sampling_seconds / timings['sampled_rewards'][0]:.0f}x, "
        f"whole pass {(loop_bm25_seconds + loop_sampling_seconds) / timings['whole pass'][0]:.0f}x; "
        "vectorised = loop on the timed slices (rtol 1e-12)"
    )


if __name__ == "__main__":
    main()
