"""Whether a system's metrics are current: what dvc.lock records for the system's evaluate stage.

A metrics file counts only when dvc.lock records it, byte for byte (its md5), for the system's evaluate stage,
and when nothing upstream of that stage was remade after it ran: each dep dvc.lock records for the stage, and
for every stage upstream of it, has the md5 recorded for the output of the stage that makes it. A partial run
(``make pipeline`` without ``make experiments``) can remake the untrained pass an ablation was trained against;
the ablation's rows are then stale, never old values shown as current. A dep inside a folder another stage
makes (a file of the prepared dataset) is not compared: the dataset checksum the metrics carry covers it
(coaug.evaluation.report.stale_reason).

The report reads dvc.lock without listing it as a dep: DVC rewrites the file after every stage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

LOCK = "dvc.lock"  # beside dvc.yaml and params.yaml


def read_lock(path: Path) -> dict[str, dict[str, Any]] | None:
    """dvc.lock's stage records by address (``evaluate@bm25_flat``), or None where there is no dvc.lock (stages
    run by hand: nothing to check the metrics against)."""
    if not path.is_file():
        return None
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["stages"]


def evaluate_stage(name: str, plain: dict[str, Any]) -> str:
    """The DVC stage that evaluates a system: ``evaluate@`` a plain system, ``evaluate_aug@`` an augmented one."""
    return f"{'evaluate' if name in plain else 'evaluate_aug'}@{name}"


def outdated_reason(stages: dict[str, dict[str, Any]], stage: str, files: list[Path]) -> str | None:
    """Why ``files``, written by ``stage``, are not its current outputs as dvc.lock (``stages``) records them,
    or None."""
    record = stages.get(stage)
    if record is None:
        return f"dvc.lock has no record of {stage}"
    recorded = {Path(out["path"]).name: out.get("md5") for out in record.get("outs", [])}
    for path in files:
        if recorded.get(path.name) != hashlib.md5(path.read_bytes()).hexdigest():
            return f"{path} is not the file dvc.lock records for {stage}"
    return remade_upstream(stages, stage)


def remade_upstream(stages: dict[str, dict[str, Any]], stage: str) -> str | None:
    """The first output upstream of ``stage`` that its maker remade after a consumer recorded it, or None."""
    made = {out["path"]: (name, out.get("md5")) for name, record in stages.items() for out in record.get("outs", [])}
    seen, todo = {stage}, [stage]
    while todo:
        consumer = todo.pop()
        for dep in stages[consumer].get("deps", []):
            maker, md5 = made.get(dep["path"], (None, None))
            if maker is None:
                continue
            if md5 != dep.get("md5"):
                return f"{maker} remade {dep['path']} after {consumer} ran"
            if maker not in seen:
                seen.add(maker)
                todo.append(maker)
    return None
