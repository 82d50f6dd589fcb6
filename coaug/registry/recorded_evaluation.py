"""A model version's evaluation, recorded on the registry as ``eval.*`` tags.

The per-query file itself is an artifact of the run named by ``eval.run_id``, so a later challenger is
compared with the champion's own scores, not with whatever the metrics folder holds today. Scores are only
comparable when system, split and dataset match: anything else compares different retrieval tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from coaug.errors import CoaugError

TAG_PREFIX = "eval."
ARTIFACT_DIR = "evaluation"
# What must match for two evaluations to be compared query by query.
COMPARABLE_FIELDS = ("system", "split", "dataset_checksum")


@dataclass(frozen=True)
class Evaluation:
    system: str
    split: str
    dataset_checksum: str
    ndcg_at_10: float
    run_id: str

    def tags(self) -> dict[str, str]:
        return {
            f"{TAG_PREFIX}system": self.system,
            f"{TAG_PREFIX}split": self.split,
            f"{TAG_PREFIX}dataset_checksum": self.dataset_checksum,
            f"{TAG_PREFIX}ndcg_at_10": str(self.ndcg_at_10),
            f"{TAG_PREFIX}run_id": self.run_id,
        }

    @property
    def artifact_path(self) -> str:
        return per_query_artifact(self.system)


def per_query_artifact(system: str) -> str:
    """Where the per-query file sits among the evaluation run's artifacts."""
    return f"{ARTIFACT_DIR}/{system}.perquery.tsv"


def evaluation_from_tags(tags: dict[str, str], who: str) -> Evaluation:
    """The evaluation recorded on a version (``who`` names it in errors, e.g. "champion v3")."""
    missing = [
        f"{TAG_PREFIX}{key}"
        for key in (*COMPARABLE_FIELDS, "ndcg_at_10", "run_id")
        if f"{TAG_PREFIX}{key}" not in tags
    ]
    if missing:
        raise CoaugError(
            f"{who} has no recorded evaluation (missing tags {', '.join(missing)}): it must be re-evaluated"
        )
    return Evaluation(
        system=tags[f"{TAG_PREFIX}system"],
        split=tags[f"{TAG_PREFIX}split"],
        dataset_checksum=tags[f"{TAG_PREFIX}dataset_checksum"],
        ndcg_at_10=float(tags[f"{TAG_PREFIX}ndcg_at_10"]),
        run_id=tags[f"{TAG_PREFIX}run_id"],
    )


def differences(recorded: Evaluation, current: Evaluation) -> list[str]:
    """``"field 'recorded' (now 'current')"`` for each comparable field that differs."""
    return [
        f"{field} '{getattr(recorded, field)}' (now '{getattr(current, field)}')"
        for field in COMPARABLE_FIELDS
        if getattr(recorded, field) != getattr(current, field)
    ]


def require_comparable(recorded: Evaluation, current: Evaluation, who: str) -> None:
    differing = differences(recorded, current)
    if differing:
        raise CoaugError(
            f"{who} was evaluated on another task ({'; '.join(differing)}): the champion must be re-evaluated on "
            f"{current.system} / {current.split} / dataset {current.dataset_checksum} before a challenger can be "
            "compared with it"
        )
