from __future__ import annotations

import pytest

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


def test_report_names_systems_not_evaluated_yet(tmp_path):
    import json

    import yaml

    from coaug.report import write_report

    from .conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["outputs"].update(metrics_dir=str(tmp_path / "metrics"), reports_dir=str(tmp_path / "reports"))
    params["evaluation"].update(metrics=["NDCG@10"], bootstrap_samples=50)
    (tmp_path / "metrics").mkdir()
    for name, values in {"bm25_flat": (0.5, 0.1), "dense": (0.7, 0.3)}.items():
        (tmp_path / "metrics" / f"{name}.json").write_text(json.dumps({"NDCG@10": sum(values) / 2}))
        (tmp_path / "metrics" / f"{name}.perquery.tsv").write_text(
            "query_id\tNDCG@10\n" + "".join(f"q{i}\t{v}\n" for i, v in enumerate(values))
        )
    summary, paths = write_report(params, ["bm25_flat", "dense", "coaug_trained_flat"])
    assert list(summary) == ["bm25_flat", "dense"]
    assert summary["dense"]["vs_bm25_flat"]["mean_diff"] == pytest.approx(0.2)
    assert paths["table"].read_text().endswith("\nNot evaluated yet: coaug_trained_flat.\n")
