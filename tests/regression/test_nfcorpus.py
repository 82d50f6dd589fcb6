"""Real-data regression tier: NFCorpus test split against published numbers (pyserini 2CR, MTEB).

Runs the stage commands exactly as dvc.yaml does, on the real collection, in a scratch folder.
"""

from __future__ import annotations

import json

import pytest
import yaml

from coaug.cli import main

from ..conftest import NFCORPUS, REPO

pytestmark = pytest.mark.slow

# pyserini's BEIR regressions (Lucene BM25 k1 0.9, b 0.4, top 1000, trec_eval).
PUBLISHED_BM25 = {
    "bm25_flat": {"NDCG@10": 0.3218, "Recall@100": 0.2457, "Recall@1000": 0.3704},
    "bm25_multifield": {"NDCG@10": 0.3254, "Recall@100": 0.2500, "Recall@1000": 0.3718},
}
MTEB_MINILM_NDCG10 = 0.3143
DENSE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("nfcorpus")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["source"] = str(NFCORPUS)
    params["dense"]["cache_dir"] = str(root / "embeddings")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def evaluated(project):
    """Run prepare, then index + evaluate for every system, as `dvc repro` would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        assert main(["prepare"]) == 0
        for system in ("bm25_flat", "bm25_multifield", "dense"):
            assert main(["index", "--system", system]) == 0
            assert main(["evaluate", "--system", system]) == 0
        assert main(["report"]) == 0
    return {s: json.loads((project / "metrics" / f"{s}.json").read_text()) for s in ("bm25_flat", "bm25_multifield", "dense")}


def test_prepared_counts_match_beir(project, evaluated):
    stats = json.loads((project / "data" / "nfcorpus" / "stats.json").read_text())
    assert (stats["docs"], stats["queries"]) == (3633, 3237)
    assert stats["splits"]["test"]["queries"] == 323
    assert stats["splits"]["test"]["judgements"] == 12334
    assert stats["splits"]["train"]["judgements"] == 110575


@pytest.mark.parametrize("system", sorted(PUBLISHED_BM25))
def test_bm25_reproduces_pyserini_regressions(evaluated, system):
    measured = {metric: round(evaluated[system][metric], 4) for metric in PUBLISHED_BM25[system]}
    assert measured == PUBLISHED_BM25[system]
    assert evaluated[system]["queries"] == 323


def test_dense_minilm_is_close_to_mteb(evaluated):
    assert abs(evaluated["dense"]["NDCG@10"] - MTEB_MINILM_NDCG10) <= DENSE_TOLERANCE


def test_report_tests_every_system_against_bm25_flat(project, evaluated):
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert list(summary) == ["bm25_flat", "bm25_multifield", "dense"]
    assert summary["dense"]["vs_bm25_flat"]["queries"] == 323
    assert 0.0 <= summary["dense"]["vs_bm25_flat"]["p_ttest"] <= 1.0
