"""A folder a command cannot write is refused in one line naming it, before any work: no traceback at the end,
no corpus pass lost, no old folder left aside. Read-only folders bind root too (tests/permissions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coaug.cli import main
from coaug.data.prepare import prepare

from .conftest import REPO
from .permissions import coaug_bound

FOLDERS = ["data", "augmented", "cache/augmentations", "indexes", "runs", "metrics", "reports", "serving", "mlruns"]


@pytest.fixture
def project(tiny_beir, tmp_path) -> Path:
    """The tiny fixture prepared, every output, cache and store in a folder of ``tmp_path``; returns the params
    file. The policy does not exist: a command that loaded it before checking its folders would fail on that."""
    prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "data" / "tiny")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(source=str(tiny_beir), prepared_dir=str(tmp_path / "data" / "tiny"), splits=["test"])
    params["mlflow"].update(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=str(tmp_path / "mlruns")
    )
    params["policy"]["model"] = str(tmp_path / "no-policy")
    params["augment"].update(cache_dir=str(tmp_path / "cache" / "augmentations"), out_dir=str(tmp_path / "augmented"))
    outputs = ("indexes_dir", "runs_dir", "metrics_dir", "reports_dir")
    params["outputs"].update({key: str(tmp_path / key.removesuffix("_dir")) for key in outputs})
    params["promotion"]["serving_dir"] = str(tmp_path / "serving")
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


@pytest.mark.parametrize(
    ("command", "folder"),
    [
        (["prepare"], "data"),  # beside the prepared folder: its staging folder, its lock, the old one set aside
        (["prepare"], "data/tiny"),  # the prepared folder itself, which the swap deletes
        (["prepare"], "data/tiny/qrels"),  # and every folder in it
        (["prepare"], "mlruns"),  # the MLflow store every stage writes
        (["augment", "--name", "untrained"], "augmented"),
        (["augment", "--name", "untrained"], "cache/augmentations"),  # the cache, and its lock
        (["augment", "--name", "untrained", "--shard", "0/2"], "cache/augmentations"),
        (["index", "--system", "bm25_flat"], "indexes"),
        (["evaluate", "--system", "bm25_flat"], "runs"),
        (["report"], "reports"),
        (["promote"], "serving"),
    ],
    ids=lambda value: value if isinstance(value, str) else value[0],
)
def test_a_read_only_folder_is_refused_in_one_line_before_any_work(project, command, folder):
    root = project.parent
    before = sorted(path.relative_to(root) for path in root.rglob("*"))
    (root / folder).chmod(0o555)
    try:
        code, last = coaug_bound(project, *command)
    finally:
        (root / folder).chmod(0o755)
    assert (code, last) == (2, f"coaug {command[0]}: error: {root / folder}: not writable (Permission denied)")
    # Nothing was started: no staging or old folder, no MLflow run, no policy loaded (it does not exist).
    assert sorted(path.relative_to(root) for path in root.rglob("*")) == before


def test_a_cache_below_a_regular_file_is_refused_in_one_line(project, capsys):
    params = yaml.safe_load(project.read_text())
    blocker = project.parent / "cache" / "file"
    blocker.write_text("")
    params["augment"]["cache_dir"] = str(blocker / "augmentations")
    project.write_text(yaml.safe_dump(params))
    assert main(["--params", str(project), "augment", "--name", "untrained"]) == 2
    assert capsys.readouterr().err == (
        f"coaug augment: error: {blocker / 'augmentations'}: cannot be created: {blocker} is not a folder\n"
    )
