"""dvc.yaml cannot drift from the code: every stage lists the coaug modules its command imports and the
params.yaml keys its code reads, as found in the code itself (tests/stage_reads.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from .stage_reads import imported_modules, module_tree, params_read

DVC_YAML = Path(__file__).resolve().parents[1] / "dvc.yaml"
STAGES = yaml.safe_load(DVC_YAML.read_text())["stages"]

# Modules that decide how a stage runs and is recorded, never what it writes: argument parsing and dispatch,
# exception types, file locks, atomic file replacement, the offline/Java environment, MLflow bookkeeping (its
# dataset label is read from the prepared stats.json, a dep) and the multi-process launcher.
NOT_SHAPING_OUTPUTS = {"cli", "errors", "locks", "atomic_io", "runtime_env", "tracking", "rl.launcher"}
# Keys that name where things live: DVC tracks those paths themselves, as the stage's deps and outs.
LOCATIONS = {
    "dataset.prepared_dir",
    "augment.out_dir",
    "augment.cache_dir",
    "policy.cache_dir",
    "dense.cache_dir",
    "train_outputs",
    "outputs.indexes_dir",
    "outputs.metrics_dir",
    "outputs.runs_dir",
    "outputs.reports_dir",
    "mlflow.tracking_uri",  # the registry promote reads, which is no DVC dep (dvc.yaml says why)
}
# Throughput knobs: batching and threads change how fast, not what comes out.
THROUGHPUT = {"dense.batch_size", "dense.cache_chunk_size", "bm25.search_batch_size", "bm25.search_threads"}
# A system looks its augmentation up only to fail early on an unknown name: what it reads is the
# augmentation's output folder, a dep of the stage.
CHECK_ONLY_CALLS = {(("params", "system"), ("params", "augmentation"))}
# A foreach item is looked up by name across the sections that can hold it; a name may be in only one of them
# (params.py), so the item's stage reads the other section only to find the name absent.
LOOKUP_SECTIONS = [{"systems", "augmented_systems"}, {"augmentations", "trained_augmentations"}]


def stage_body(name: str) -> dict:
    return STAGES[name].get("do", STAGES[name])


def command_entry(name: str) -> str:
    """The cli function a stage's command runs: ``coaug train --variant X`` -> ``cmd_train``."""
    program, subcommand, *_ = stage_body(name)["cmd"].split()
    assert program == "coaug", f"{name}: {program}"
    return f"cmd_{subcommand}"


def entry_node(name: str):
    (node,) = [n for n in module_tree("cli").body if getattr(n, "name", None) == command_entry(name)]
    return node


def within(key: str, names: set[str]) -> bool:
    """``key`` is one of ``names`` or a key inside one of them (``train_outputs.policies_dir`` in ``train_outputs``)."""
    return any(key == name or key.startswith(name + ".") for name in names)


def covered(key: str, declared: list[str]) -> bool:
    """A declared key covers its sub-keys; ``section.${key}`` covers the foreach item, which is looked up in
    ``section`` and the sections beside it."""
    sections = next((group for group in LOOKUP_SECTIONS if key in group), {key})
    return any(key == d or key.startswith(d + ".") or d in {f"{s}.${{key}}" for s in sections} for d in declared)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_depends_on_every_coaug_module_its_command_imports(stage):
    cli_imports = ast.Module(
        body=[n for n in module_tree("cli").body if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[]
    )
    needed = (imported_modules(cli_imports) | imported_modules(entry_node(stage))) - NOT_SHAPING_OUTPUTS
    listed = {
        d.removeprefix("coaug/").removesuffix(".py").replace("/", ".")
        for d in stage_body(stage)["deps"]
        if isinstance(d, str) and d.startswith("coaug/")
    }
    assert (sorted(needed - listed), sorted(listed - needed)) == ([], []), (
        f"dvc.yaml stage {stage}: (missing deps, deps not imported)"
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_declares_every_params_key_its_code_reads(stage):
    read = {
        key
        for key in params_read("cli", command_entry(stage), NOT_SHAPING_OUTPUTS, CHECK_ONLY_CALLS)
        if not within(key, LOCATIONS | THROUGHPUT)
    }
    declared = [
        entry if isinstance(entry, str) else next(iter(entry)) for entry in stage_body(stage).get("params", [])
    ]
    assert sorted(k for k in read if not covered(k, declared)) == [], f"dvc.yaml stage {stage}: params its code reads"


def test_the_walk_finds_reads_through_calls_and_stops_at_unreached_functions():
    # cmd_index -> retrievers.build_index -> params.system, dense.Encoder, ...: no bm25.k1 (read only when
    # retrieving), no retrieval.hits.
    assert params_read("cli", "cmd_index", NOT_SHAPING_OUTPUTS, CHECK_ONLY_CALLS) == {
        "augment.out_dir",
        "augmented_systems",
        "bm25.index_threads",
        "dataset.prepared_dir",
        "dense.batch_size",
        "dense.cache_chunk_size",
        "dense.cache_dir",
        "dense.encoder",
        "dense.max_seq_length",
        "outputs.indexes_dir",
        "outputs.metrics_dir",
        "outputs.runs_dir",
        "systems",
    }
    assert imported_modules(entry_node("prepare")) == {
        "atomic_io",
        "data.beir",
        "data.fetch",
        "data.prepare",
        "errors",
        "locks",
        "params",
        "params_schema",
        "runtime_env",
        "tracking",
    }
