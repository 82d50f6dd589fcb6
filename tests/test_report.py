from __future__ import annotations

import pytest

from coaug.report import comparisons_table, markdown_table, policy_block
from coaug.significance import holm_adjust

SUMMARY = {
    "bm25_flat": {"NDCG@10": 0.32181, "Recall@100": 0.2457},
    "dense": {
        "NDCG@10": 0.31594,
        "Recall@100": 0.3115,
        "vs_bm25_flat": {"metric": "NDCG@10", "mean_diff": -0.00587, "p_ttest": 0.71, "p_bootstrap": 0.7,
                         "p_ttest_holm": 0.71, "p_bootstrap_holm": 0.7},
    },
    "better": {
        "NDCG@10": 0.4,
        "Recall@100": 0.3,
        "vs_bm25_flat": {"metric": "NDCG@10", "mean_diff": 0.0782, "p_ttest": 0.001, "p_bootstrap": 0.0,
                         "p_ttest_holm": 0.002, "p_bootstrap_holm": 0.0},
    },
    "raw_only": {
        "NDCG@10": 0.35,
        "Recall@100": 0.25,
        "vs_bm25_flat": {"metric": "NDCG@10", "mean_diff": 0.03, "p_ttest": 0.03, "p_bootstrap": 0.02,
                         "p_ttest_holm": 0.09, "p_bootstrap_holm": 0.06},
    },
}


def test_markdown_table_marks_rows_significant_after_the_holm_adjustment():
    assert markdown_table(SUMMARY, ["NDCG@10", "Recall@100"], "bm25_flat", 0.05) == (
        "| system | NDCG@10 | Recall@100 | Δ vs bm25_flat | p (t-test) | p (t, Holm) | p (bootstrap) | p (boot., Holm) |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| bm25_flat | 0.3218 | 0.2457 | — | — | — | — | — |\n"
        "| dense | 0.3159 | 0.3115 | -0.0059 | 0.71 | 0.71 | 0.7 | 0.7 |\n"
        "| better | 0.4000 | 0.3000 | +0.0782* | 0.001 | 0.002 | 0 | 0 |\n"
        "| raw_only | 0.3500 | 0.2500 | +0.0300 | 0.03 | 0.09 | 0.02 | 0.06 |\n"
    )


def test_policy_block_puts_retrievers_in_rows_and_policies_in_columns():
    block = {"flat": {"baseline": "bm25_flat", "trained": "better", "control": "absent"}, "dense": {"baseline": "dense"}}
    assert policy_block(SUMMARY, block, "NDCG@10") == (
        "| retriever | baseline | trained | control |\n"
        "|---|---|---|---|\n"
        "| flat | 0.3218 | 0.4000 |  |\n"
        "| dense | 0.3159 |  |  |\n"
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


def test_comparisons_table_lists_evaluated_pairs_only():
    summary = {
        "trained": {"vs_untrained": {"metric": "NDCG@10", "mean_diff": 0.0072, "p_ttest": 0.02, "p_bootstrap": 0.03,
                                     "p_ttest_holm": 0.04, "p_bootstrap_holm": 0.03}},
        "other": {},
    }
    pairs = [["trained", "untrained"], ["other", "x"], ["absent", "y"]]
    assert comparisons_table(summary, pairs, "NDCG@10", 0.05) == (
        "| system | against | Δ NDCG@10 | p (t-test) | p (t, Holm) | p (bootstrap) | p (boot., Holm) |\n"
        "|---|---|---|---|---|---|---|\n"
        "| trained | untrained | +0.0072* | 0.02 | 0.04 | 0.03 | 0.03 |\n"
    )
    assert comparisons_table(summary, [["other", "x"]], "NDCG@10", 0.05) == ""


def test_report_tests_each_comparison_pair(tmp_path):
    import json

    import yaml

    from coaug.report import write_report

    from .conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["outputs"].update(metrics_dir=str(tmp_path / "metrics"), reports_dir=str(tmp_path / "reports"))
    params["evaluation"].update(metrics=["NDCG@10"], bootstrap_samples=50, comparisons=[["dense", "bm25_multifield"]])
    (tmp_path / "metrics").mkdir()
    for name, values in {"bm25_flat": (0.5, 0.1), "bm25_multifield": (0.25, 0.25), "dense": (0.75, 0.25)}.items():
        (tmp_path / "metrics" / f"{name}.json").write_text(json.dumps({"NDCG@10": sum(values) / 2}))
        (tmp_path / "metrics" / f"{name}.perquery.tsv").write_text(
            "query_id\tNDCG@10\n" + "".join(f"q{i}\t{v}\n" for i, v in enumerate(values))
        )
    summary, paths = write_report(params, ["bm25_flat", "bm25_multifield", "dense"])
    assert summary["dense"]["vs_bm25_multifield"]["mean_diff"] == pytest.approx(0.25)
    assert "\n| dense | bm25_multifield | +0.2500 |" in paths["table"].read_text()
    # Three tests in the family (bm25_multifield and dense vs bm25_flat, dense vs bm25_multifield), Holm-adjusted.
    tests = [summary["bm25_multifield"]["vs_bm25_flat"], summary["dense"]["vs_bm25_flat"], summary["dense"]["vs_bm25_multifield"]]
    assert [t["p_ttest_holm"] for t in tests] == pytest.approx(holm_adjust([t["p_ttest"] for t in tests]))
    assert "Holm–Bonferroni adjusted over all 3 tests" in paths["table"].read_text()
