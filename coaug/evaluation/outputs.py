"""Where the index and evaluate stages put a system's outputs (dvc.yaml names the same paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coaug import params as P


def output_paths(params: dict[str, Any], system_name: str) -> dict[str, Path]:
    metrics_dir = Path(P.get(params, "outputs.metrics_dir"))
    return {
        "index": Path(P.get(params, "outputs.indexes_dir")) / system_name,
        "run": Path(P.get(params, "outputs.runs_dir")) / f"{system_name}.trec",
        "metrics": metrics_dir / f"{system_name}.json",
        "per_query": metrics_dir / f"{system_name}.perquery.tsv",
    }
