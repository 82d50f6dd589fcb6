"""Run one configuration of experiments/learning.yaml: ``python experiments/learning.py NAME [--steps N]``.

Writes ``experiments/params/NAME.yaml`` (params.yaml with the run's train overrides and the yaml's extra
``systems``; policy and checkpoints
outside git, the curves and summary in ``experiments/reports/NAME/``, the policy registered under its own
registry name so no experiment touches the pipeline's @challenger) and runs ``coaug train`` on it. A rerun
resumes from the run's checkpoints; ``--steps N`` ends a run at a checkpointed step N (a shorter rerun of a
longer run trains afresh unless a checkpoint at N exists).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "experiments"
REGISTRY_NAME = "coaug-experiments"
VARIANT = "experiment"


def run_params(name: str, steps: int | None) -> Path:
    """Write the run's params file and return its path."""
    sweep = yaml.safe_load((HERE / "learning.yaml").read_text())
    if name not in sweep["runs"]:
        sys.exit(f"experiments/learning.yaml: no run '{name}' (runs: {', '.join(sweep['runs'])})")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({**sweep["common"], **sweep["runs"][name]})
    params["augmented_systems"].update(sweep.get("systems", {}))
    if steps is not None:
        params["train"]["steps"] = steps
    # One variant with no overrides of its own: the run's train section is all there is (a variant such as
    # coaug's `reward_control: none` would override the run's).
    params["train_variants"] = {VARIANT: {}}
    params["train_outputs"] = {
        "checkpoints_dir": f"checkpoints/experiments/{name}", "policies_dir": f"experiments/policies/{name}",
        "reports_dir": f"experiments/reports/{name}",
    }  # fmt: skip
    params["registry"]["model_name"] = REGISTRY_NAME
    path = HERE / "params" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a run of experiments/learning.yaml")
    parser.add_argument("--steps", type=int, help="end the run at this step (default: the yaml's)")
    args = parser.parse_args()
    params = run_params(args.name, args.steps)
    return subprocess.call(
        ["coaug", "--params", str(params.relative_to(ROOT)), "train", "--variant", VARIANT], cwd=ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
