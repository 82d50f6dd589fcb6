"""The ``promote`` stage: record the @challenger's evaluation on the registry, decide, and serve a winner.

Every outcome is written down: the challenger version gets ``eval.*`` tags (its per-query file is an
artifact of this stage's MLflow run) and ``promotion.*`` tags with the decision and its reason, and
``reports/promotion.json`` holds the same fields for ``dvc metrics``. Only a promotion moves ``@champion``
and replaces the serving bundle, the bundle first: ``coaug search`` refuses to serve a champion whose
bundle is not in place, so the alias never points at something that cannot be served.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from coaug.atomic_io import write_json
from coaug.errors import CoaugError
from coaug.evaluation.outputs import output_paths
from coaug.evaluation.per_query_file import read_per_query
from coaug.params_schema import Outputs, Params
from coaug.registry.aliases import CHAMPION, aliased_version, registered_aliases
from coaug.registry.promotion_rule import METRIC, Champion, Decision, Scores, decide, mean_score, rule_from_params
from coaug.registry.recorded_evaluation import ARTIFACT_DIR, Evaluation, evaluation_from_tags, require_comparable
from coaug.registry.register import CHALLENGER
from coaug.registry.serving import build_manifest, restore, snapshot
from coaug.tracking import configure_mlflow, dataset_checksum, stage_run

REPORT_FILE = "promotion.json"
ALREADY_CHAMPION = "already champion"
# Report fields logged as MLflow metrics of the promote run.
NUMERIC_FIELDS = ("challenger_ndcg_at_10", "champion_ndcg_at_10", "baseline_ndcg_at_10", "delta", "p_value")


def promote(params: Params) -> dict[str, Any]:
    """Run the champion/challenger decision for ``registry.model_name``; returns the report written."""
    mlflow = configure_mlflow(params.mlflow, params.dataset)
    client = mlflow.MlflowClient()
    name = params.registry.model_name
    aliases = registered_aliases(client, name, params.mlflow.tracking_uri)
    challenger = aliased_version(aliases, name, CHALLENGER)
    champion = aliases.get(CHAMPION)
    serving_dir = Path(params.promotion.serving_dir)
    # Whatever this run decides, the champion's bundle is served afterwards, even after a promotion that a kill
    # cut short, and the folder exists: DVC declares it an output, even while nothing has been promoted.
    restore(serving_dir, champion)
    report_path = Path(params.outputs.reports_dir) / REPORT_FILE
    base = {"model_name": name, "challenger_version": challenger, "champion_version": champion}
    if champion == challenger:
        reason = f"challenger v{challenger} is already the champion"
        report = {**base, "decision": ALREADY_CHAMPION, "promote": False, "reason": reason}
        write_json(report_path, report)
        return report

    rule = rule_from_params(params.promotion)
    system, baseline = params.promotion.system, params.evaluation.baseline
    per_query_path = output_paths(params.outputs, system)["per_query"]
    challenger_scores = metric_scores(per_query_path)
    baseline_scores = metric_scores(output_paths(params.outputs, baseline)["per_query"])
    checksum = dataset_checksum(params.dataset)
    # Checked before anything is recorded, so a bad serve_systems param or a missing index fails without
    # side effects.
    manifest = build_manifest(params, name, challenger, checksum)
    index_dirs = served_indexes(params.outputs, manifest)
    with stage_run(params, "promote", ["promotion", "registry"]) as run:
        evaluation = Evaluation(
            system=system,
            split=params.dataset.eval_split,
            dataset_checksum=checksum,
            ndcg_at_10=mean_score(challenger_scores),
            run_id=run.active_run().info.run_id,
        )
        incumbent = None if champion is None else recorded_champion(client, name, champion, evaluation)
        decision = decide(challenger_scores, baseline_scores, incumbent, baseline, rule)
        run.log_artifact(str(per_query_path), artifact_path=ARTIFACT_DIR)
        _set_tags(client, name, challenger, evaluation.tags())
        if decision.promote:
            snapshot(
                serving_dir,
                index_dirs,
                manifest,
                champion,
                lambda: client.set_registered_model_alias(name, CHAMPION, challenger),
            )
        # Tagged last: a version tagged "promoted" is the champion and is served.
        _set_tags(client, name, challenger, decision_tags(decision))
        report = {**base, **decision_report(decision), "system": system, "split": evaluation.split}
        write_json(report_path, report)
        run.log_metrics({key: report[key] for key in NUMERIC_FIELDS if report[key] is not None})
        run.log_artifact(str(report_path))
    return report


def decision_tags(decision: Decision) -> dict[str, str]:
    """The ``promotion.*`` model-version tags (MLflow tags are strings; "none" when there is no champion)."""
    champion = "none" if decision.champion_score is None else str(decision.champion_score)
    return {
        "promotion.decision": _verdict(decision),
        "promotion.reason": decision.reason,
        "promotion.challenger_ndcg_at_10": str(decision.challenger_score),
        "promotion.champion_ndcg_at_10": champion,
        "promotion.p_value": str(decision.p_value),
        "promotion.delta": str(decision.delta),
        "promotion.compared_against": decision.compared_against,
    }


def decision_report(decision: Decision) -> dict[str, Any]:
    return {
        "decision": _verdict(decision),
        "promote": decision.promote,
        "reason": decision.reason,
        "challenger_ndcg_at_10": decision.challenger_score,
        "champion_ndcg_at_10": decision.champion_score,
        "baseline_ndcg_at_10": decision.baseline_score,
        "delta": decision.delta,
        "p_value": decision.p_value,
        "compared_against": decision.compared_against,
    }


def recorded_champion(client, name: str, version: str, current: Evaluation) -> Champion:
    """The champion's per-query scores from ITS recorded evaluation, refused unless it evaluated the same task."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    who = f"champion v{version}"
    recorded = evaluation_from_tags(client.get_model_version(name, version).tags, who)
    require_comparable(recorded, current, who)
    with tempfile.TemporaryDirectory(prefix="coaug-champion-") as folder:
        try:
            path = download_artifacts(run_id=recorded.run_id, artifact_path=recorded.artifact_path, dst_path=folder)
        except (MlflowException, OSError) as exc:
            problem = str(exc).splitlines()[0]
            raise CoaugError(
                f"{who}: its recorded evaluation (run {recorded.run_id}) cannot be read: {problem}"
            ) from None
        return Champion(version=version, scores=metric_scores(path))


def served_indexes(outputs: Outputs, manifest: dict[str, Any]) -> dict[str, Path]:
    """The evaluated index of each served system, which must exist."""
    index_dirs = {system: output_paths(outputs, system)["index"] for system in manifest["systems"]}
    for system, index_dir in index_dirs.items():
        if not index_dir.is_dir():
            raise CoaugError(
                f"{index_dir}: index of served system '{system}' is missing (run `dvc repro index_aug@{system}`)"
            )
    return index_dirs


def metric_scores(path: str | Path) -> Scores:
    """Per-query :data:`METRIC` from an ``evaluate`` per-query file."""
    if not Path(path).is_file():
        raise CoaugError(f"{path}: per-query metrics not found (run the system's evaluate stage first)")
    values = read_per_query(path)
    if METRIC not in values:
        raise CoaugError(f"{path}: no {METRIC} column (has: {', '.join(values) or 'none'})")
    return values[METRIC]


def _verdict(decision: Decision) -> str:
    return "promoted" if decision.promote else "rejected"


def _set_tags(client, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
