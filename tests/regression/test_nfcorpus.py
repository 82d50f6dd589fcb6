"""Real-data regression tier: NFCorpus test split against published numbers (pyserini 2CR, MTEB).

Runs the stage commands exactly as dvc.yaml does, on the real collection, in a scratch folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coaug.cli import main

from ..conftest import NFCORPUS, REPO

pytestmark = [pytest.mark.slow, pytest.mark.long]

EXPECTED = yaml.safe_load((Path(__file__).parent / "expected.yaml").read_text())["nfcorpus"]


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
    return {
        s: json.loads((project / "metrics" / f"{s}.json").read_text())
        for s in ("bm25_flat", "bm25_multifield", "dense")
    }


def test_prepared_counts_match_beir(project, evaluated):
    stats = json.loads((project / "data" / "nfcorpus" / "stats.json").read_text())
    assert (stats["docs"], stats["queries"]) == (3633, 3237)
    assert stats["splits"]["test"]["queries"] == 323
    assert stats["splits"]["test"]["judgements"] == 12334
    assert stats["splits"]["train"]["judgements"] == 110575


@pytest.mark.parametrize("system", sorted(EXPECTED))
def test_scores_reproduce_the_published_ones(evaluated, system):
    expected = dict(EXPECTED[system])
    tolerance = expected.pop("tolerance", 0.0)
    for metric, value in expected.items():
        assert abs(round(evaluated[system][metric], 4) - value) <= tolerance, (metric, evaluated[system][metric])
    assert evaluated[system]["queries"] == 323


def test_report_tests_every_system_against_bm25_flat(project, evaluated):
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert list(summary) == ["bm25_flat", "bm25_multifield", "dense"]
    assert summary["dense"]["vs_bm25_flat"]["queries"] == 323
    assert 0.0 <= summary["dense"]["vs_bm25_flat"]["p_ttest"] <= 1.0
