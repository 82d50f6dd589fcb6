"""A scratch augmentation project: synthetic BEIR data, prepared, a tiny Llama as the policy, params
pointing at both (the augment, shard and sharded-flow tests share it)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from coaug.data.prepare import prepare

from .conftest import REPO
from .tiny_models import build_tiny_llama

WORDS = "breast cancer statin cholesterol vitamin bone density green tea asthma children diet fruit".split()


def write_beir(folder: Path, docs: int) -> Path:
    """A synthetic BEIR collection of ``docs`` documents and 4 test queries."""
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for i in range(docs):
            text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 7))
            handle.write(json.dumps({"_id": f"D{i}", "title": f"Doc {i}", "text": text}) + "\n")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"Q{i}", "text": WORDS[i]}) + "\n" for i in range(4))
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"Q{i}\tD{i}\t1\n" for i in range(min(4, docs)))
    )
    return folder


def make_project(root: Path, docs: int, max_new_tokens: int, batch_size: int) -> Path:
    """Write the project into ``root`` (its params.yaml uses absolute paths) and return ``root``."""
    source = write_beir(root / "beir", docs)
    prepare(str(source), None, ["test"], 0, root / "data" / "synthetic")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="synthetic", prepared_dir=str(root / "data" / "synthetic"), splits=["test"])
    params["policy"].update(model=str(build_tiny_llama(root / "tiny-llama")), cache_dir=str(root / "policies"))
    params["generation"]["max_new_tokens"] = max_new_tokens
    params["augment"].update(
        batch_size=batch_size,
        prompts_dir=str(REPO / "prompts"),
        cache_dir=str(root / "cache"),
        out_dir=str(root / "augmented"),
    )
    params["mlflow"].update(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db", artifact_root=str(root / "mlruns"))
    write_params(root, params)
    return root


def read_params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def cache_lines(root: Path) -> list[dict]:
    """Every entry of every cache file (main and shards) of the project."""
    return [json.loads(line) for path in (root / "cache").glob("*.jsonl") for line in path.read_text().splitlines()]
