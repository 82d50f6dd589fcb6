"""The sharded-augmentation flow runs `coaug augment --shard I/K` as one Prefect task per shard, on a thread
pool or a Dask cluster, and the DVC stage after it only absorbs and writes."""

from __future__ import annotations

import logging
import sys

import psutil
import pytest
from distributed import LocalCluster
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness
from prefect_dask import DaskTaskRunner

from coaug.cli import main
from coaug.errors import CoaugError
from flows.sharded_augment import (
    ShardFailed,
    augment_stage_shards,
    augmentation_name,
    make_task_runner,
    shard_command,
    sharded_augment,
)

from ..augment_project import make_project, read_params, write_params


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness():
        yield


def shard_lines(root) -> dict[str, int]:
    return {
        p.name.split(".", 1)[1]: len(p.read_text().splitlines()) for p in sorted((root / "cache").glob("*.shard-*"))
    }


def test_shard_command_and_augment_stages():
    assert shard_command("/venv/bin/python", "params.yaml", "untrained", 1, 4) == [
        "/venv/bin/python", "-m", "coaug.cli", "--params", "params.yaml", "augment", "--name", "untrained",
        "--shard", "1/4",
    ]  # fmt: skip
    assert augmentation_name("augment@untrained") == "untrained"
    assert augmentation_name("augment_trained@trained_sparse") == "trained_sparse"
    assert [augmentation_name(s) for s in ("train", "index@bm25_flat", "index_aug@both_untrained_flat")] == [None] * 3


def test_task_runner_by_param(monkeypatch):
    assert isinstance(make_task_runner("local", None, 3), ThreadPoolTaskRunner)
    remote = make_task_runner("dask", "tcp://scheduler:8786", 3)
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler:8786"
    local = make_task_runner("dask", None, 3)
    assert local.address is None and local.cluster_kwargs == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": False,
        "dashboard_address": "127.0.0.1:8787",
        "worker_dashboard_address": "127.0.0.1:0",
    }
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # not importable, whatever this machine has
    with pytest.raises(CoaugError) as error:
        make_task_runner("ray", None, 2)
    assert str(error.value) == "task_runner 'ray' needs `pip install prefect-ray`"
    with pytest.raises(CoaugError) as error:
        make_task_runner("spark", None, 2)
    assert str(error.value) == "task_runner must be one of local, dask, ray, got 'spark'"


def listening_sockets() -> set[tuple[str, int]]:
    """The (address, port) pairs this process listens on."""
    sockets = psutil.Process().net_connections(kind="inet")
    return {(s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN}


def test_a_local_dask_cluster_listens_on_loopback_only():
    before = listening_sockets()
    with LocalCluster(**make_task_runner("dask", None, 2).cluster_kwargs):
        opened = listening_sockets() - before
    # The dashboard and the two workers' HTTP servers; Dask's defaults would bind them to 0.0.0.0 and ::.
    assert len(opened) == 3 and {address for address, _ in opened} == {"127.0.0.1"}


def test_one_shard_or_another_stage_runs_nothing(tmp_path):
    root = make_project(tmp_path, docs=2, max_new_tokens=2, batch_size=2)
    assert read_params(root)["augment"]["shards"] == 1
    assert augment_stage_shards(str(root), "augment@doc2query") == []
    assert augment_stage_shards(str(tmp_path / "no-project"), "index@bm25_flat") == []  # params not even read
    assert not (root / "cache").exists()


def test_local_runner_shards_then_the_stage_generates_nothing(prefect_server, tmp_path, monkeypatch, caplog):
    root = make_project(tmp_path, docs=6, max_new_tokens=4, batch_size=2)
    logs = sharded_augment(str(root), "doc2query", 2, "local")
    assert logs == [str(root / "logs" / f"augment-doc2query-shard-{i}-of-2.log") for i in range(2)]
    log = (root / "logs" / "augment-doc2query-shard-1-of-2.log").read_text()
    assert "doc2query docs shard 1/2: 3 texts, 0 cached, 3 to generate" in log
    assert shard_lines(root) == {"shard-0-of-2.jsonl": 3, "shard-1-of-2.jsonl": 3}

    monkeypatch.chdir(root)
    caplog.set_level(logging.INFO, logger="coaug")
    assert main(["augment", "--name", "doc2query"]) == 0
    assert "doc2query docs: 6 texts, 6 cached, 0 to generate" in caplog.text
    assert shard_lines(root) == {}


def test_dask_runner_from_params_before_the_stage(prefect_server, tmp_path):
    root = make_project(tmp_path, docs=5, max_new_tokens=4, batch_size=2)
    params = read_params(root)
    params["augment"].update(shards=2, task_runner="dask", runner_address=None)
    write_params(root, params)
    logs = augment_stage_shards(str(root), "augment@query2doc")
    assert logs == [str(root / "logs" / f"augment-query2doc-shard-{i}-of-2.log") for i in range(2)]
    assert shard_lines(root) == {"shard-0-of-2.jsonl": 2, "shard-1-of-2.jsonl": 2}  # the 4 test queries


def test_a_failing_shard_fails_the_flow(prefect_server, tmp_path):
    root = make_project(tmp_path, docs=2, max_new_tokens=2, batch_size=2)
    with pytest.raises(ShardFailed) as error:
        sharded_augment(str(root), "nope", 2, "local")
    log = root / "logs" / "augment-nope-shard-0-of-2.log"
    assert str(error.value) == f"shard 0/2 of nope failed with exit code 2; log: {log}"  # results are awaited in order
    assert "coaug augment: error: params: unknown augmentation 'nope'" in log.read_text()
