from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from coaug import params as P
from coaug.cli import main
from coaug.evaluation import report
from coaug.evaluation.report import comparisons_table, markdown_table, policy_block
from coaug.evaluation.significance import holm_adjust
from coaug.params_schema import typed_params

from ..conftest import REPO

CHECKSUM = "c0ffee" * 10 + "beef"
OTHER_CHECKSUM = "0123456789ab" * 5 + "cdef"
CURRENT = {"dataset_checksum": CHECKSUM, "split": "test"}


def report_params(tmp_path: Path, **evaluation) -> dict:
    """This repo's params with a prepared dataset of checksum CHECKSUM (its test split) and every output in ``tmp_path``."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    prepared = tmp_path / "data"
    (prepared / "qrels").mkdir(parents=True)
    (prepared / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    (prepared / "stats.json").write_text(json.dumps({"checksum": CHECKSUM}))
    params["dataset"].update(prepared_dir=str(prepared), eval_split="test")
    params["outputs"].update(
        metrics_dir=str(tmp_path / "metrics"),
        reports_dir=str(tmp_path / "reports"),
        results_page=str(tmp_path / "docs" / "results.md"),
        readme=None,
    )
    params["evaluation"].update(metrics=["NDCG@10"], bootstrap_samples=50, **evaluation)
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    return params


def write_metrics(params: dict, name: str, values: dict[str, float], labels: dict | None = CURRENT) -> None:
    """The two files `coaug evaluate` writes for ``name``; ``labels=None`` writes one from before metrics were
    labelled with their dataset (a split, no checksum)."""
    folder = Path(params["outputs"]["metrics_dir"])
    folder.mkdir(exist_ok=True)
    identity = {"system": name, "split": "test"} if labels is None else {"system": name, **labels}
    summary = {**identity, "queries": len(values), "NDCG@10": sum(values.values()) / len(values)}
    (folder / f"{name}.json").write_text(json.dumps(summary))
    (folder / f"{name}.perquery.tsv").write_text(
        "query_id\tNDCG@10\n" + "".join(f"{q}\t{v}\n" for q, v in values.items())
    )


def write_report(params: dict, systems: list[str]):
    typed = typed_params(params)
    return report.write_report(
        systems, typed.evaluation, typed.outputs, typed.dataset, typed.systems, typed.augmented_systems
    )


def scores(*values: float) -> dict[str, float]:
    return {f"q{i}": value for i, value in enumerate(values)}


SUMMARY = {
    "bm25_flat": {"NDCG@10": 0.32181, "Recall@100": 0.2457},
    "dense": {
        "NDCG@10": 0.31594,
        "Recall@100": 0.3115,
        "vs_bm25_flat": {
            "metric": "NDCG@10",
            "mean_diff": -0.00587,
            "p_ttest": 0.71,
            "p_bootstrap": 0.7,
            "p_ttest_holm": 0.71,
            "p_bootstrap_holm": 0.7,
        },
    },
    "better": {
        "NDCG@10": 0.4,
        "Recall@100": 0.3,
        "vs_bm25_flat": {
            "metric": "NDCG@10",
            "mean_diff": 0.0782,
            "p_ttest": 0.001,
            "p_bootstrap": 0.0,
            "p_ttest_holm": 0.002,
            "p_bootstrap_holm": 0.0,
        },
    },
    "raw_only": {
        "NDCG@10": 0.35,
        "Recall@100": 0.25,
        "vs_bm25_flat": {
            "metric": "NDCG@10",
            "mean_diff": 0.03,
            "p_ttest": 0.03,
            "p_bootstrap": 0.02,
            "p_ttest_holm": 0.09,
            "p_bootstrap_holm": 0.06,
        },
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
    block = {
        "flat": {"baseline": "bm25_flat", "trained": "better", "control": "absent"},
        "dense": {"baseline": "dense"},
    }
    assert policy_block(SUMMARY, block, "NDCG@10") == (
        "| retriever | baseline | trained | control |\n"
        "|---|---|---|---|\n"
        "| flat | 0.3218 | 0.4000 |  |\n"
        "| dense | 0.3159 |  |  |\n"
    )


def test_report_names_systems_not_evaluated_yet(tmp_path):
    params = report_params(tmp_path)
    write_metrics(params, "bm25_flat", scores(0.5, 0.1))
    write_metrics(params, "dense", scores(0.7, 0.3))
    summary, paths = write_report(params, ["bm25_flat", "dense", "both_coaug_flat"])
    assert list(summary) == ["bm25_flat", "dense"]
    assert summary["dense"]["vs_bm25_flat"]["mean_diff"] == pytest.approx(0.2)
    assert paths["table"].read_text().endswith("\nNot evaluated yet: both_coaug_flat.\n")


def test_comparisons_table_lists_evaluated_pairs_only():
    summary = {
        "trained": {
            "vs_untrained": {
                "metric": "NDCG@10",
                "mean_diff": 0.0072,
                "p_ttest": 0.02,
                "p_bootstrap": 0.03,
                "p_ttest_holm": 0.04,
                "p_bootstrap_holm": 0.03,
            }
        },
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
    params = report_params(tmp_path, comparisons=[["dense", "bm25_multifield"]])
    for name, values in {"bm25_flat": (0.5, 0.1), "bm25_multifield": (0.25, 0.25), "dense": (0.75, 0.25)}.items():
        write_metrics(params, name, scores(*values))
    summary, paths = write_report(params, ["bm25_flat", "bm25_multifield", "dense"])
    assert summary["dense"]["vs_bm25_multifield"]["mean_diff"] == pytest.approx(0.25)
    assert "\n| dense | bm25_multifield | +0.2500 |" in paths["table"].read_text()
    # Three tests in the family (bm25_multifield and dense vs bm25_flat, dense vs bm25_multifield), Holm-adjusted.
    tests = [
        summary["bm25_multifield"]["vs_bm25_flat"],
        summary["dense"]["vs_bm25_flat"],
        summary["dense"]["vs_bm25_multifield"],
    ]
    assert [t["p_ttest_holm"] for t in tests] == pytest.approx(holm_adjust([t["p_ttest"] for t in tests]))
    assert "Holm–Bonferroni adjusted over all 3 tests" in paths["table"].read_text()


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        # The case: the committed NFCorpus metrics/dense.json in another dataset's report.
        (
            {"dataset_checksum": OTHER_CHECKSUM, "split": "test"},
            "is from dataset 0123456789ab, not the prepared c0ffeec0ffee",
        ),
        ({"dataset_checksum": CHECKSUM, "split": "dev"}, "is from split 'dev', not dataset.eval_split 'test'"),
        (None, "is unlabelled (no dataset checksum)"),
    ],
    ids=["other-dataset", "other-split", "unlabelled"],
)
def test_report_leaves_out_metrics_of_another_dataset_or_split_and_says_why(labels, reason, tmp_path):
    params = report_params(tmp_path)
    write_metrics(params, "bm25_flat", scores(0.5, 0.1))
    write_metrics(params, "bm25_multifield", scores(0.25, 0.25))
    write_metrics(params, "dense", {"PLAIN-1": 0.31, "PLAIN-2": 0.32}, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the numpy "invalid value" warning from a test over no queries
        summary, paths = write_report(params, ["bm25_flat", "bm25_multifield", "dense"])
    assert list(summary) == ["bm25_flat", "bm25_multifield"]
    # The labels are not metrics: only evaluation.metrics (and the tests) reach the summary and MLflow.
    assert summary["bm25_flat"] == {"NDCG@10": pytest.approx(0.3)}
    table = paths["table"].read_text()
    systems_table = table.split("\n\n")[1]
    assert [row.split(" | ")[0] for row in systems_table.splitlines()[2:]] == ["| bm25_flat", "| bm25_multifield"]
    assert table.endswith(
        "\nLeft out, their metrics do not belong to this dataset and split:\n\n"
        f"- dense: {tmp_path}/metrics/dense.json {reason} — rerun `coaug evaluate --system dense`\n"
    )


def test_a_baseline_of_another_dataset_fails_the_report_in_one_line(tmp_path, capsys):
    params = report_params(tmp_path)
    write_metrics(params, "bm25_flat", scores(0.5, 0.1), labels=None)
    write_metrics(params, "dense", scores(0.7, 0.3))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--params", str(tmp_path / "params.yaml"), "report", "--systems", "bm25_flat", "dense"]) == 2
    assert capsys.readouterr().err == (
        f"coaug report: error: baseline 'bm25_flat' cannot be reported: {tmp_path}/metrics/bm25_flat.json is "
        "unlabelled (no dataset checksum) — rerun `coaug evaluate --system bm25_flat`\n"
    )
    assert not (tmp_path / "reports").exists() and not (tmp_path / "mlruns").exists()


def test_evaluate_labels_its_metrics_with_the_dataset_and_split_and_the_report_accepts_them(
    tiny_beir, tmp_path, monkeypatch
):
    from coaug.data.prepare import prepare
    from coaug.evaluation import evaluate as evaluation

    prepared = tmp_path / "data"
    stats = prepare(str(tiny_beir), None, ["test"], 0, prepared)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(prepared_dir=str(prepared), eval_split="test")
    params["outputs"].update(
        metrics_dir=str(tmp_path / "metrics"),
        reports_dir=str(tmp_path / "reports"),
        results_page=str(tmp_path / "docs" / "results.md"),
        readme=None,
    )
    params["evaluation"].update(metrics=["NDCG@10"], bootstrap_samples=50)
    params["systems"]["bm25_flat"].update(
        corpus=str(prepared / "corpus.jsonl"), queries=str(prepared / "queries.jsonl")
    )
    # The retriever is not under test here: Q1 and Q2 ranked perfectly, Q3 unanswered.
    run = {"Q1": [("D5", 2.0), ("D1", 1.0)], "Q2": [("D2", 1.0)], "Q3": []}
    monkeypatch.setattr(evaluation, "retrieve", lambda system, index, queries, retrieval, bm25, dense: run)
    metrics, per_query = tmp_path / "metrics" / "bm25_flat.json", tmp_path / "metrics" / "bm25_flat.perquery.tsv"
    typed = typed_params(params)
    evaluation.evaluate_system(
        "bm25_flat",
        P.system(typed, "bm25_flat"),
        tmp_path / "index",
        tmp_path / "run.trec",
        metrics,
        per_query,
        typed.dataset,
        typed.evaluation,
        typed.retrieval,
        typed.bm25,
        typed.dense,
    )
    # The keys DVC shows as metrics are kept; the identity is added beside them.
    assert json.loads(metrics.read_text()) == {
        "system": "bm25_flat",
        "split": "test",
        "dataset_checksum": stats["checksum"],
        "queries": 3,
        "NDCG@10": pytest.approx(2 / 3),
    }
    summary, _ = write_report(params, ["bm25_flat"])
    assert summary == {"bm25_flat": {"NDCG@10": pytest.approx(2 / 3)}}
