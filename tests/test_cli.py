"""`coaug --help` explains itself, and bad input ends in one line on stderr with exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from coaug.cli import main

from .conftest import REPO

STAGES = ["prepare", "index", "evaluate", "report"]


def test_top_level_help_lists_every_stage():
    result = subprocess.run([sys.executable, "-m", "coaug.cli", "--help"], capture_output=True, text=True, check=True)
    assert "coaug trains a small instruction LLM" in result.stdout
    for stage in STAGES:
        assert stage in result.stdout


def test_console_script_is_installed():
    script = shutil.which("coaug", path=str(REPO / ".venv" / "bin")) or shutil.which("coaug")
    assert script, "the `coaug` console script is not installed"
    assert subprocess.run([script, "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("stage", "phrase"),
    [
        ("prepare", "fails with one line naming file, line and field"),
        ("index", "bm25_multifield (title and text as separate fields)"),
        ("evaluate", "write the TREC run"),
        ("report", "paired"),
    ],
)
def test_subcommand_help_explains_the_stage(stage, phrase, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    assert phrase in " ".join(capsys.readouterr().out.split())


def test_missing_params_file_is_one_line(tmp_path, capsys):
    assert main(["--params", str(tmp_path / "nope.yaml"), "prepare"]) == 2
    assert capsys.readouterr().err == f"coaug prepare: error: {tmp_path / 'nope.yaml'}: params file not found\n"


def test_bad_dataset_is_one_line(tiny_beir, tmp_path, capsys, monkeypatch):
    (tiny_beir / "corpus.jsonl").write_text('{"_id": "D1", "title": "t"}\n')
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(source=str(tiny_beir), prepared_dir=str(tmp_path / "data"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert main(["prepare"]) == 2
    assert capsys.readouterr().err == f"coaug prepare: error: {tiny_beir}/corpus.jsonl:1: field 'text': missing\n"


def test_unknown_system_is_one_line(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["index", "--system", "bm25_typo"]) == 2
    assert capsys.readouterr().err.startswith("coaug index: error: params: unknown system 'bm25_typo' (defined: ")


@pytest.fixture
def tiny_params(tiny_beir, tmp_path, monkeypatch):
    """Params for the tiny fixture, prepared with its test split only, every output under ``tmp_path``
    (the working directory); returns the params and the file to save them to."""
    from coaug.data.prepare import prepare

    prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "data")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(source=str(tiny_beir), prepared_dir=str(tmp_path / "data"), splits=["test"])
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    params["policy"]["model"] = str(tmp_path / "no-policy")  # a check that came after loading it would fail on this
    monkeypatch.chdir(tmp_path)
    return params, tmp_path / "params.yaml"


@pytest.mark.parametrize(
    "command",
    [["evaluate", "--system", "bm25_flat"], ["report"], ["augment", "--name", "query2doc"]],
    ids=lambda c: c[0],
)
def test_an_eval_split_that_was_not_prepared_is_one_line(command, tiny_params, capsys):
    params, path = tiny_params
    params["dataset"]["eval_split"] = "dev"
    path.write_text(yaml.safe_dump(params))
    assert main(["--params", str(path), *command]) == 2
    qrels = path.parent / "data" / "qrels"
    assert capsys.readouterr().err == (
        f"coaug {command[0]}: error: params: dataset.eval_split 'dev' was not prepared (no {qrels}/dev.tsv; prepared "
        "splits: test): name one of those, or add it to dataset.splits and rerun `coaug prepare`\n"
    )
    assert not (path.parent / "mlruns").exists()  # refused before any MLflow run was opened


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "must be an integer >= 1"),
        (-1, "must be an integer >= 1"),
        (2.5, "must be an integer >= 1"),
        (True, "must be an integer >= 1"),
    ],
)
def test_a_batch_size_below_one_is_one_line(value, problem, tiny_params, capsys):
    params, path = tiny_params
    params["augment"]["batch_size"] = value
    path.write_text(yaml.safe_dump(params))
    lines = path.read_text().splitlines()
    line = lines.index(f"  batch_size: {yaml.safe_dump(value).splitlines()[0]}", lines.index("augment:")) + 1
    assert main(["--params", str(path), "augment", "--name", "untrained"]) == 2
    assert (
        capsys.readouterr().err
        == f"coaug augment: error: {path}:{line}: augment.batch_size: {problem}, got {value!r}\n"
    )


@pytest.mark.parametrize(
    ("section", "key", "value", "problem"),
    [
        ("train", "learning_rate", -1, "must be a finite number > 0, got -1"),
        ("train", "queries_per_step", 0, "must be an integer >= 1, got 0"),
        ("train", "steps", 0, "must be an integer >= 1, got 0"),
        ("train", "rollouts", 1, "must be an integer >= 2 (a group of one rollout has no baseline), got 1"),
        ("bm25", "k1", float("nan"), "must be a finite number >= 0, got nan"),
    ],
)
def test_a_param_out_of_range_is_one_line_before_training_loads_anything(
    section, key, value, problem, tiny_params, capsys
):
    params, path = tiny_params
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    lines = path.read_text().splitlines()
    line = next(i for i in range(lines.index(f"{section}:"), len(lines)) if lines[i].startswith(f"  {key}:")) + 1
    assert main(["--params", str(path), "train"]) == 2
    assert capsys.readouterr().err == f"coaug train: error: {path}:{line}: {section}.{key}: {problem}\n"
    # Refused before any MLflow run, and before the policy loaded: it does not exist.
    assert not (path.parent / "mlruns").exists()
