"""The real-index dev curve at step 0 is the pipeline's own evaluation of the untrained query-side system."""

from __future__ import annotations

from coaug.cli import main
from coaug.data.beir import read_qrels, read_queries
from coaug.evaluation.per_query_file import read_per_query
from coaug.params import load_params
from coaug.policy.model import load_policy
from coaug.policy.prompts import load_prompt
from coaug.rl.index_curve import CURVE_METRIC, DevCurve
from coaug.rl.run import real_indexes

from ..augment_project import make_project, read_params, write_params

SYSTEMS = ["query_untrained_flat", "both_untrained_multifield"]


def test_step_zero_equals_coaug_evaluate_of_the_untrained_query_side(tmp_path, monkeypatch):
    root = make_project(tmp_path, docs=12, max_new_tokens=6, batch_size=3)
    params = read_params(root)
    # Training keeps fp32 weights and packs none: the augment stage decodes the same way here.
    params["policy"].update(dtype="float32", packed_weights=False)
    params["outputs"].update(
        {name: str(root / name) for name in ("indexes_dir", "runs_dir", "metrics_dir", "reports_dir")}
    )
    params["train"].update(curve_systems=SYSTEMS, reward_system="query_untrained_flat")
    write_params(root, params)
    monkeypatch.chdir(root)
    assert main(["augment", "--name", "untrained"]) == 0
    for system in SYSTEMS:
        assert main(["index", "--system", system]) == 0
        assert main(["evaluate", "--system", system]) == 0

    typed = load_params(root / "params.yaml")
    indexes = real_indexes(typed, "query_untrained_flat", SYSTEMS)
    prepared = root / "data" / "synthetic"
    curve = DevCurve(
        indexes.curve_systems,
        read_queries(prepared / "queries.jsonl"),
        read_qrels(prepared / "qrels" / "test.tsv"),
        load_prompt(typed.augment.prompts_dir, "plain", "sparse_query"),
        indexes.generation,
        typed.augment.batch_size,
        indexes.settings,
    )
    scores = curve(load_policy(typed.policy.model, typed.policy.cache_dir, "float32"))
    for system in SYSTEMS:
        evaluated = read_per_query(root / "metrics_dir" / f"{system}.perquery.tsv")[CURVE_METRIC]
        # The per-query file holds six decimals.
        assert {qid: float(f"{value:.6f}") for qid, value in scores[system].items()} == evaluated
        assert len(scores[system]) == 4
