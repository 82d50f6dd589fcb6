"""What ``make pipeline`` is about to do: the DVC stages it will run and roughly how long each takes.

``make pipeline`` runs the main job (params.yaml ``main_job``, :func:`main_targets`); ``make experiments`` runs
``dvc repro``, every stage.

Durations come from ``reports/stage_seconds.json``, recorded from the MLflow runs of the committed pipeline
runs (``coaug plan --record``: the longest finished run of each stage), so a fresh machine of the same class
knows up front what it is in for.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coaug.atomic_io import write_json
from coaug.errors import CoaugError
from coaug.params import check_main_job, main_job_systems
from coaug.params_schema import Dataset, Mlflow, Outputs, Params

DURATIONS_FILE = "stage_seconds.json"  # under outputs.reports_dir
# Run alone after the main job's targets (`dvc repro --single-item`): it depends on the whole metrics folder, so
# `dvc repro report` would run every stage.
REPORT_STAGE = "report"


def main_targets(params: Params) -> list[str]:
    """The DVC stages ``make pipeline`` reproduces, with everything upstream of them: the evaluation of every
    plain system and of every main-job system (coaug.params.main_job_systems), and promotion."""
    check_main_job(params)
    return [
        *(f"evaluate@{name}" for name in params.systems),
        *(f"evaluate_aug@{name}" for name in main_job_systems(params)),
        "promote",
    ]


@contextlib.contextmanager
def stage_graph(repo: str | Path) -> Iterator[tuple[Any, Any, dict[Any, str]]]:
    """(the open DVC repo, its stage graph, stage -> address such as ``index@bm25_flat``). The graph's edges
    point from a stage to the stages it depends on."""
    from dvc.repo import Repo

    # DVC addresses stages relative to the working directory: read them from the repo root.
    with contextlib.chdir(repo), Repo(".") as dvc_repo:
        graph = dvc_repo.index.graph
        yield dvc_repo, graph, {stage: stage.addressing for stage in graph.nodes}


def dependency_order(graph: Any, names: dict[Any, str]) -> list[str]:
    """The addresses of ``graph``'s stages, each after the stages it depends on (ties by name)."""
    import networkx as nx

    return [names[stage] for stage in nx.lexicographical_topological_sort(graph.reverse(copy=True), key=names.get)]


def stages_to_run(repo: str | Path) -> list[str]:
    """Stages ``dvc repro`` would run, in dependency order: the changed ones (``dvc status``) and everything
    downstream of them (an upper bound: DVC skips a downstream stage whose inputs come out unchanged)."""
    with stage_graph(repo) as (dvc_repo, graph, names):
        _, running = changed_and_downstream(dvc_repo, graph, names)
        return dependency_order(graph.subgraph(running), names)


def main_job_stages(repo: str | Path, targets: list[str]) -> tuple[list[str], list[str]]:
    """(the stages of :func:`stages_to_run` that ``make pipeline`` runs, the others), each in dependency order.

    ``make pipeline`` runs those that ``targets`` (:func:`main_targets`) are or depend on, then the report if
    it changed itself or one of them feeds it; ``make experiments`` runs the others."""
    import networkx as nx

    with stage_graph(repo) as (dvc_repo, graph, names):
        changed, running = changed_and_downstream(dvc_repo, graph, names)
        by_name = {name: stage for stage, name in names.items()}
        unknown = sorted(set(targets) - set(by_name))
        if unknown:
            raise CoaugError(f"the main job names no DVC stage {', '.join(unknown)} (dvc.yaml)")
        wanted = set().union(*({by_name[t], *nx.descendants(graph, by_name[t])} for t in targets))
        main = running & wanted
        report = by_name.get(REPORT_STAGE)
        if report in running and (report in changed or main & nx.descendants(graph, report)):
            main.add(report)
        return dependency_order(graph.subgraph(main), names), dependency_order(graph.subgraph(running - main), names)


def changed_and_downstream(dvc_repo: Any, graph: Any, names: dict[Any, str]) -> tuple[set[Any], set[Any]]:
    """(the stages ``dvc status`` finds changed, those and every stage downstream of them)."""
    import networkx as nx
    from dvc.lock import LockError

    try:
        changed = {name.split(":")[-1] for name in dvc_repo.status()}
    except LockError as exc:  # a running `dvc repro` holds its stages' outputs
        raise CoaugError(
            f"dvc status: {str(exc).splitlines()[0]} (a dvc command is running here: wait for it)"
        ) from None
    start = {stage for stage, name in names.items() if name in changed}
    return start, start.union(*(nx.ancestors(graph, stage) for stage in start))


def estimate(stages: list[str], recorded: dict[str, float]) -> list[tuple[str, float | None]]:
    """Seconds per stage: its recorded duration, else the median of its recorded ``foreach`` siblings
    (``evaluate@new`` from the other ``evaluate@*``), else None."""
    by_group: dict[str, list[float]] = {}
    for name, seconds in recorded.items():
        if "@" in name:  # a foreach stage; a plain stage of the same name is no sibling
            by_group.setdefault(name.split("@")[0], []).append(seconds)
    guesses = []
    for stage in stages:
        siblings = by_group.get(stage.split("@")[0])
        guesses.append((stage, recorded.get(stage, statistics.median(siblings) if siblings else None)))
    return guesses


def plan_text(guesses: list[tuple[str, float | None]], machine: str, command: str = "dvc repro") -> str:
    """The lines printed before ``command`` runs: a count, one line per stage, a total."""
    if not guesses:
        return f"{command}: every stage is up to date, nothing to run\n"
    lines = [f"{command} will run {len(guesses)} stage(s); durations as recorded on {machine}:"]
    lines += [f"  {stage:<44} {'?' if s is None else format_duration(s):>8}" for stage, s in guesses]
    lines.append(f"  total {total(guesses)}")
    return "\n".join(lines) + "\n"


def rest_text(guesses: list[tuple[str, float | None]]) -> str:
    """The line after the main job's plan: what ``make experiments`` would run on top of it."""
    if not guesses:
        return "make experiments: nothing more to run\n"
    return f"make experiments would then run {len(guesses)} more stage(s), outside main_job: {total(guesses)}\n"


def total(guesses: list[tuple[str, float | None]]) -> str:
    known = [seconds for _, seconds in guesses if seconds is not None]
    unknown = len(guesses) - len(known)
    return f"~{format_duration(sum(known))}" + (f" + {unknown} stage(s) never recorded" if unknown else "")


def format_duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def durations_path(outputs: Outputs) -> Path:
    return Path(outputs.reports_dir) / DURATIONS_FILE


def read_durations(outputs: Outputs) -> tuple[dict[str, float], str]:
    """(seconds per stage, the machine they were recorded on); empty when none were recorded."""
    path = durations_path(outputs)
    if not path.is_file():
        return {}, f"no machine yet ({path} is written by `coaug plan --record` after a run)"
    recorded = json.loads(path.read_text())
    return recorded["stages"], recorded["machine"]


def record_durations(store: Mlflow, dataset: Dataset, outputs: Outputs) -> dict[str, float]:
    """Write the wall time of the longest finished MLflow run of every DVC stage (tag ``dvc_stage``) to
    ``stage_seconds.json``, with this machine's description. The longest, not the newest: a rerun that finds
    its caches warm (augmentations, embeddings) takes seconds where a fresh machine takes minutes."""
    from coaug.policy.precision import describe_machine
    from coaug.tracking import configure_mlflow

    mlflow = configure_mlflow(store, dataset)
    experiment = mlflow.get_experiment_by_name(dataset.name)
    runs = mlflow.MlflowClient().search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=5000
    )
    seconds: dict[str, float] = {}
    for run in runs:
        stage = run.data.tags.get("dvc_stage")
        if stage and run.info.end_time:
            seconds[stage] = max(seconds.get(stage, 0.0), (run.info.end_time - run.info.start_time) / 1000)
    write_json(durations_path(outputs), {"machine": describe_machine(), "stages": dict(sorted(seconds.items()))})
    return seconds
