"""Where the index and evaluate stages put a system's outputs (dvc.yaml names the same paths)."""

from __future__ import annotations

from pathlib import Path

from coaug.params_schema import Outputs


def output_paths(outputs: Outputs, system_name: str) -> dict[str, Path]:
    metrics_dir = Path(outputs.metrics_dir)
    return {
        "index": Path(outputs.indexes_dir) / system_name,
        "run": Path(outputs.runs_dir) / f"{system_name}.trec",
        "metrics": metrics_dir / f"{system_name}.json",
        "per_query": metrics_dir / f"{system_name}.perquery.tsv",
    }
