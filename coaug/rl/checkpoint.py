"""Training checkpoints: weights (safetensors), optimizer state and loop state, written atomically.

``checkpoint_dir/step-000010/`` holds ``model/`` (a loadable HF folder), ``optimizer.pt`` and
``state.json`` (the step and what the caller passes: coaug.rl.run keeps the metric history and the settings
the weights were trained with); a checkpoint folder only exists once complete, so the newest one is always
usable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from coaug.atomic_io import atomic_directory, write_json

STEP_DIR = re.compile(r"^step-(\d+)$")


def save_checkpoint(
    checkpoint_dir: str | Path, step: int, model, tokenizer, optimizer, state: dict[str, Any], keep: int
) -> Path:
    target = Path(checkpoint_dir) / f"step-{step:06d}"
    with atomic_directory(target) as staging:
        model.save_pretrained(staging / "model", safe_serialization=True)
        tokenizer.save_pretrained(staging / "model")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        write_json(staging / "state.json", {"step": step, **state})
    for old in all_checkpoints(checkpoint_dir)[:-keep]:
        _remove_tree(old)
    return target


def all_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    checkpoints = all_checkpoints(checkpoint_dir)
    return checkpoints[-1] if checkpoints else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())


def remove_checkpoints(checkpoint_dir: str | Path) -> None:
    for checkpoint in all_checkpoints(checkpoint_dir):
        _remove_tree(checkpoint)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
