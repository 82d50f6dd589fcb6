"""Stage order read from this project's own dvc.yaml."""

from __future__ import annotations

import pytest

from flows.dvc_stages import stage_order

from ..conftest import REPO


def test_a_target_brings_only_its_upstream_in_dependency_order():
    assert stage_order(REPO, ["evaluate@bm25_flat"]) == ["prepare", "index@bm25_flat", "evaluate@bm25_flat"]
    assert stage_order(REPO, ["evaluate_aug@query2doc_flat"]) == [
        "prepare",
        "augment@query2doc",
        "index_aug@query2doc_flat",
        "evaluate_aug@query2doc_flat",
    ]


def test_every_stage_follows_its_dependencies():
    order = stage_order(REPO)
    assert order[0] == "prepare"
    assert (
        order.index("train@coaug")
        < order.index("augment_trained@trained_sparse")
        < order.index("index_aug@both_coaug_flat")
    )
    assert (
        order.index("train@control")
        < order.index("augment_trained@control_sparse")
        < order.index("index_aug@both_control_flat")
    )
    assert order.index("evaluate_aug@both_coaug_flat") < order.index("report")


def test_unknown_target_names_the_stage():
    with pytest.raises(ValueError, match="unknown DVC stage\\(s\\) evaluate@nope; stages: "):
        stage_order(REPO, ["evaluate@nope"])


def test_the_train_stage_depends_on_every_module_of_the_checkpoint_code_digest():
    import yaml

    from coaug.rl.run import TRAINING_CODE

    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["deps"]
    # A change that stops checkpoints from resuming must also make `dvc repro` rerun the stage.
    assert [f"coaug/{name}" for name in TRAINING_CODE if f"coaug/{name}" not in deps] == []
