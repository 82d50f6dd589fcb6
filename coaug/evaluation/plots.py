"""Comparison plot: one group of bars per metric, one bar per system."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from coaug.atomic_io import atomic_open  # noqa: E402


def comparison_bars(results: dict[str, dict[str, float]], metrics: list[str], title: str, path: str | Path) -> None:
    systems = list(results)
    width = 0.8 / max(len(systems), 1)
    positions = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics)), 4.0))
    for i, name in enumerate(systems):
        heights = [results[name][m] for m in metrics]
        bars = ax.bar(positions + i * width - 0.4 + width / 2, heights, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(positions, metrics)
    ax.set_ylabel("score")
    ax.set_ylim(0, min(1.0, max(results[s][m] for s in systems for m in metrics) * 1.25))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
