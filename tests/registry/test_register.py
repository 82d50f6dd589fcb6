"""Registering a policy is one step a rerun completes: a version never lacks its tags, and a rerun after a
kill before the alias was set finishes that version instead of registering the same weights again."""

from __future__ import annotations

import pytest
import yaml
from mlflow import MlflowClient

from coaug.params_schema import Params, typed_params
from coaug.registry.register import CHALLENGER, DIGEST_TAG, folder_sha256, register_policy
from coaug.tracking import configure_mlflow, stage_run

from ..conftest import REPO
from ..tiny_models import build_tiny_llama

MODEL = "coaug-policy"
TAGS = {"git_commit": "abc123", "params_hash": "0123456789abcdef"}


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs, and registration has no cleanup to undo it."""


@pytest.fixture
def params(tmp_path) -> Params:
    """Params with a private MLflow store; the process-wide tracking URI is restored afterwards."""
    import mlflow

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="tiny", prepared_dir=str(tmp_path / "data"))
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    previous = mlflow.get_tracking_uri()
    yield typed_params(params)
    mlflow.set_tracking_uri(previous)


def register(params: Params, policy_dir) -> str:
    with stage_run(params, "train", []) as mlflow:
        return register_policy(mlflow, policy_dir, MODEL, TAGS)


def versions(params: Params) -> dict[str, dict[str, str]]:
    client = configure_mlflow(params.mlflow, params.dataset).MlflowClient()
    return {str(v.version): v.tags for v in client.search_model_versions(f"name = '{MODEL}'")}


def test_a_rerun_after_a_kill_before_the_alias_finishes_the_version(params, tmp_path, monkeypatch):
    policy = build_tiny_llama(tmp_path / "policy")
    expected_tags = {**TAGS, DIGEST_TAG: folder_sha256(policy)}

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_registered_model_alias", killed)
        with pytest.raises(Killed):
            register(params, policy)
    assert versions(params) == {"1": expected_tags}  # created with its tags; only the alias is missing

    assert register(params, policy) == "1"
    client = configure_mlflow(params.mlflow, params.dataset).MlflowClient()
    assert versions(params) == {"1": expected_tags}
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER).version) == "1"

    other = build_tiny_llama(tmp_path / "other", seed=1)
    assert register(params, other) == "2"  # other weights, a new version
    assert str(client.get_model_version_by_alias(MODEL, CHALLENGER).version) == "2"
