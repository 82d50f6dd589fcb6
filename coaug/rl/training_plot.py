"""The training figure (curves.png beside curves.csv): rewards per role, in-batch NDCG@10 per step and the
real-index dev curve."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from coaug.atomic_io import atomic_open  # noqa: E402


def training_curves(
    csv_path: str | Path, validation_path: str | Path, dev_curve_path: str | Path, path: str | Path
) -> None:
    """Left: mean reward per role against the step. Middle: in-batch NDCG@10 of the sampled training
    rollouts (noisy: a new batch every step) and of the greedy rollouts on the fixed validation batches.
    Right: the real-index dev NDCG@10 of each curve system (coaug.rl.index_curve), the curve that decides."""

    def rows_of(csv_file: str | Path) -> list[dict[str, str]]:
        with open(csv_file, encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    rows, validation, dev = rows_of(csv_path), rows_of(validation_path), rows_of(dev_curve_path)
    steps = [int(r["step"]) for r in rows]
    fig, (left, right, dev_axis) = plt.subplots(1, 3, figsize=(15, 3.6))
    for column in [c for c in rows[0] if c.startswith("reward_")] if rows else []:
        left.plot(steps, [float(r[column]) for r in rows], label=column.removeprefix("reward_").removesuffix("_mean"))
    left.set_title("mean reward per role (training batches)")
    left.set_xlabel("step")
    left.legend(fontsize=8)
    right.plot(steps, [float(r["ndcg_in_batch"]) for r in rows], color="0.6", label="training (sampled)")
    right.plot(
        [int(r["step"]) for r in validation],
        [float(r["val_ndcg_in_batch"]) for r in validation],
        color="black",
        marker="o",
        label="validation (greedy, fixed)",
    )
    right.set_title("in-batch NDCG@10 of query rollouts")
    right.set_xlabel("step (validation: after N updates)")
    right.legend(fontsize=8)
    for system in [c for c in dev[0] if c != "step"] if dev else []:
        dev_axis.plot([int(r["step"]) for r in dev], [float(r[system]) for r in dev], marker="o", label=system)
    dev_axis.set_title("real-index dev NDCG@10 (greedy query augmentations)")
    dev_axis.set_xlabel("step (after N updates)")
    if dev:
        dev_axis.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
