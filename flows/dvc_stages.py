"""What the flows need from DVC: the pipeline's stages in dependency order, and running one of them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from coaug.plan import dependency_order, stage_graph


def stage_order(repo: str | Path, targets: list[str] | None = None) -> list[str]:
    """Stage addresses (``index@bm25_flat``) in an order where every stage follows its dependencies.

    With ``targets``, only those stages and everything they depend on (what ``dvc repro TARGET`` would run).
    """
    with stage_graph(repo) as (_, graph, names):
        if targets:
            by_name = {name: stage for stage, name in names.items()}
            unknown = sorted(set(targets) - set(by_name))
            if unknown:
                raise ValueError(f"unknown DVC stage(s) {', '.join(unknown)}; stages: {', '.join(sorted(by_name))}")
            wanted = set().union(*({by_name[t], *nx.descendants(graph, by_name[t])} for t in targets))
            graph = graph.subgraph(wanted)
        return dependency_order(graph, names)


def repro_command(stage: str) -> list[str]:
    # --single-item: this stage only (its upstream ran as earlier tasks); DVC still skips it if unchanged.
    return [sys.executable, "-m", "dvc", "repro", "--single-item", stage]


def run_stage(
    repo: str | Path,
    stage: str,
    log_path: Path,
    tail_lines: int,
    on_line: Callable[[str], None],
    extra_env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run one stage, streaming its output line by line to ``log_path`` and ``on_line``.

    ``extra_env`` reaches the stage process (e.g. the MLflow parent run id). Returns the exit code and the
    last ``tail_lines`` lines.
    """
    env = {**os.environ, **(extra_env or {})}
    # dvc.yaml calls `coaug`; make the interpreter's own scripts folder win on PATH.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    with (
        log_path.open("a", encoding="utf-8") as log,
        subprocess.Popen(
            repro_command(stage),
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            tail.append(line.rstrip("\n"))
            on_line(line.rstrip("\n"))
    return process.returncode, "\n".join(tail)
