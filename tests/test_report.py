from __future__ import annotations

from coaug.report import markdown_table

SUMMARY = {
    "bm25_flat": {"NDCG@10": 0.32181, "Recall@100": 0.2457},
    "dense": {
        "NDCG@10": 0.31594,
        "Recall@100": 0.3115,
        "vs_bm25_flat": {"metric": "NDCG@10", "mean_diff": -0.00587, "p_ttest": 0.71, "p_bootstrap": 0.7},
    },
    "better": {
        "NDCG@10": 0.4,
        "Recall@100": 0.3,
        "vs_bm25_flat": {"metric": "NDCG@10", "mean_diff": 0.0782, "p_ttest": 0.001, "p_bootstrap": 0.0},
    },
}


def test_markdown_table_marks_significant_rows():
    assert markdown_table(SUMMARY, ["NDCG@10", "Recall@100"], "bm25_flat", 0.05) == (
        "| system | NDCG@10 | Recall@100 | Δ vs bm25_flat | p (t-test) | p (bootstrap) |\n"
        "|---|---|---|---|---|---|\n"
        "| bm25_flat | 0.3218 | 0.2457 | — | — | — |\n"
        "| dense | 0.3159 | 0.3115 | -0.0059 | 0.71 | 0.7 |\n"
        "| better | 0.4000 | 0.3000 | +0.0782* | 0.001 | 0 |\n"
    )
