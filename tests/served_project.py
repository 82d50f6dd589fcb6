"""A scratch project for the promote and search tests, built through the real stages.

Prepared tiny BEIR data, the ``trained_sparse`` augmentation written by a tiny local policy, real Lucene
and faiss indexes of the trained systems, and a private MLflow store per project. Per-query evaluations are
written with the evaluate stage's own writer, with chosen values, so that each test knows the decision.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from coaug import params as P
from coaug.augment.run import run_augmentation
from coaug.data.prepare import prepare
from coaug.evaluation.per_query_file import write_per_query
from coaug.params_schema import Params
from coaug.registry.register import register_policy
from coaug.retrieval.retrievers import build_index
from coaug.tracking import stage_run

from .conftest import REPO, TINY_BEIR, edited
from .tiny_models import build_tiny_word_llama

MODEL = "coaug-policy"
SYSTEM = "both_coaug_flat"
DENSE_SYSTEM = "both_coaug_dense"
BASELINE = "bm25_flat"
# The test split of the tiny collection; multiples of 1/64 survive the 6-decimal per-query file exactly.
BASELINE_SCORES = {"Q1": 0.5, "Q2": 0.25, "Q3": 0.75}
V1_SCORES = {"Q1": 0.75, "Q2": 0.5, "Q3": 0.875}  # beats the baseline: Δ +0.2083, p 0.038


def build_shared(root: Path) -> Params:
    """Data, two tiny policies, augmentations and indexes, shared read-only by every project of a module."""
    prepare(str(TINY_BEIR), None, ["train", "test"], 0, root / "data")
    policy = build_tiny_word_llama(root / "policy-a", seed=0)
    build_tiny_word_llama(root / "policy-b", seed=1)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="tiny", prepared_dir=str(root / "data"))
    params["policy"].update(model=str(policy), cache_dir=str(root / "policies"))
    params["trained_augmentations"]["trained_sparse"]["policy"] = str(policy)
    params["generation"]["max_new_tokens"] = 6
    params["augment"].update(
        prompts_dir=str(REPO / "prompts"),
        cache_dir=str(root / "augment-cache"),
        out_dir=str(root / "augmented"),
        doc_max_tokens=16,
    )
    params["dense"]["cache_dir"] = str(root / "embeddings")
    params["outputs"]["indexes_dir"] = str(root / "indexes")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    params = load(root / "params.yaml")
    run_augmentation(
        "trained_sparse",
        P.augmentation(params, "trained_sparse"),
        root / "augmented" / "trained_sparse",
        params.policy,
        params.generation,
        params.augment,
        params.dataset,
    )
    for system in (SYSTEM, DENSE_SYSTEM):
        build_index(P.system(params, system), root / "indexes" / system, params.bm25, params.dense)
    return params


def project_params(shared: Params, root: Path) -> Path:
    """A project over the shared data with its own MLflow store, metrics, reports and serving folder;
    returns its params file."""
    params = edited(
        shared, "mlflow", tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db", artifact_root=str(root / "mlruns")
    )
    params = edited(
        params,
        "outputs",
        runs_dir=str(root / "runs"),
        metrics_dir=str(root / "metrics"),
        reports_dir=str(root / "reports"),
    )
    params = edited(params, "promotion", serving_dir=str(root / "serving"))
    path = root / "params.yaml"
    save(params, path)
    return path


def save(params: Params, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(params), sort_keys=False))


def load(path: Path) -> Params:
    return P.load_params(path)


def write_scores(params: Params, system: str, scores: dict[str, float]) -> None:
    write_per_query(Path(params.outputs.metrics_dir) / f"{system}.perquery.tsv", {"NDCG@10": scores})


def register(params: Params, policy_dir: Path) -> str:
    """Register ``policy_dir`` as the new @challenger, as the train stage does; returns its version."""
    with stage_run(params, "train", []) as mlflow:
        return register_policy(mlflow, policy_dir, MODEL, {})
