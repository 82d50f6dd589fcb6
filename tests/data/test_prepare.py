"""`prepare`: normalised copy, exact statistics, and BEIR zip URLs verified by sha256."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
import yaml

from coaug.cli import main
from coaug.data import fetch
from coaug.data.prepare import prepare
from coaug.errors import CoaugError

from ..conftest import REPO


def test_prepare_writes_normalised_copy_and_stats(tiny_beir, tmp_path):
    out = tmp_path / "data" / "tiny"
    stats = prepare(str(tiny_beir), None, ["train", "test"], 0, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "corpus.jsonl",
        "qrels/test.tsv",
        "qrels/train.tsv",
        "queries.jsonl",
        "stats.json",
    ]
    first_doc = json.loads((out / "corpus.jsonl").read_text().splitlines()[0])
    assert first_doc == {
        "_id": "D1",
        "title": "Statins and breast cancer",
        "text": "Statin use was associated with lower breast cancer mortality in a Finnish cohort.",
    }
    qrels = (out / "qrels" / "test.tsv").read_text()
    assert qrels == "query-id\tcorpus-id\tscore\nQ1\tD5\t2\nQ1\tD1\t1\nQ2\tD2\t1\nQ3\tD4\t1\n"
    assert stats["docs"] == 5 and stats["queries"] == 4
    assert stats["splits"]["test"] == {
        "queries": 3,
        "judgements": 4,
        "relevant": 4,
        "judged_docs": 4,
        "score_counts": {"1": 3, "2": 1},
        "dropped_unknown": 0,
    }
    assert stats["query_length_words"] == {"p50": 3.5, "p90": 4.0, "p99": 4.0, "p100": 4.0}
    assert json.loads((out / "stats.json").read_text()) == stats


def test_checksum_is_stable_and_content_sensitive(tiny_beir, tmp_path):
    first = prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "a")["checksum"]
    assert prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "b")["checksum"] == first
    (tiny_beir / "queries.jsonl").write_text('{"_id": "Q1", "text": "changed"}\n')
    assert prepare(str(tiny_beir), None, ["test"], 3, tmp_path / "c")["checksum"] != first


def test_failed_prepare_leaves_previous_output_intact(tiny_beir, tmp_path):
    out = tmp_path / "data"
    prepare(str(tiny_beir), None, ["test"], 0, out)
    before = (out / "stats.json").read_text()
    (tiny_beir / "corpus.jsonl").write_text("not json\n")
    with pytest.raises(CoaugError):
        prepare(str(tiny_beir), None, ["test"], 0, out)
    assert (out / "stats.json").read_text() == before


@pytest.fixture
def served_zip(tiny_beir, tmp_path):
    """The fixture zipped like BEIR's archives (one top folder) and served on 127.0.0.1."""
    site = tmp_path / "site"
    site.mkdir()
    archive = Path(shutil.make_archive(str(site / "tiny"), "zip", tiny_beir.parent, tiny_beir.name))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/{archive.name}", hashlib.sha256(archive.read_bytes()).hexdigest()
    server.shutdown()


def test_zip_url_is_downloaded_verified_and_prepared(served_zip, tmp_path):
    url, sha256 = served_zip
    stats = prepare(url, sha256, ["train", "test"], 0, tmp_path / "data" / "tiny")
    assert stats["docs"] == 5 and stats["source"] == url


def test_zip_url_with_wrong_checksum_fails(served_zip, tmp_path):
    url, _ = served_zip
    with pytest.raises(CoaugError, match=r"sha256 [0-9a-f]{64} does not match dataset.sha256 0000"):
        prepare(url, "0000", ["test"], 0, tmp_path / "data" / "tiny")


def test_url_without_checksum_is_refused(tmp_path):
    with pytest.raises(CoaugError, match="dataset.sha256 must pin the archive"):
        prepare("https://example.invalid/nfcorpus.zip", None, ["test"], 0, tmp_path / "data")


def prepare_cli(tmp_path: Path, source: str, sha256: str, capsys) -> tuple[int, str]:
    """``coaug prepare`` on ``source``; returns the exit code and the last line on stderr (the download's
    progress bar comes before it)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(source=source, sha256=sha256, prepared_dir=str(tmp_path / "data" / "nfcorpus"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = main(["--params", str(tmp_path / "params.yaml"), "prepare"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()[-1]


ADVICE = "check the URL and the network, or set dataset.source to a local BEIR folder"


def test_unreachable_url_is_one_line(tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/nfcorpus.zip"
    assert prepare_cli(tmp_path, url, "0" * 64, capsys) == (
        2,
        f"coaug prepare: error: dataset.source {url}: download failed ([Errno 111] Connection refused): {ADVICE}",
    )


def test_a_missing_file_on_the_server_is_one_line(served_zip, tmp_path, capsys):
    url = served_zip[0].replace("tiny.zip", "nfcorpus.zip")
    assert prepare_cli(tmp_path, url, "0" * 64, capsys) == (
        2,
        f"coaug prepare: error: dataset.source {url}: download failed (HTTP Error 404: File not found): {ADVICE}",
    )


def test_a_server_that_never_answers_times_out_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch, "DOWNLOAD_TIMEOUT_SECONDS", 0.2)
    with socket.socket() as silent:  # accepts the connection (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/nfcorpus.zip"
        assert prepare_cli(tmp_path, url, "0" * 64, capsys) == (
            2,
            f"coaug prepare: error: dataset.source {url}: download failed (timed out): {ADVICE}",
        )
    assert not (tmp_path / "data" / ".downloads" / "nfcorpus.zip").exists()


def test_a_download_that_is_not_a_zip_is_one_line(tmp_path, capsys):
    page = tmp_path / "site" / "nfcorpus.zip"
    page.parent.mkdir()
    page.write_text("<html>Moved</html>\n")  # what a proxy or an error page serves
    url = page.as_uri()
    assert prepare_cli(tmp_path, url, hashlib.sha256(page.read_bytes()).hexdigest(), capsys) == (
        2,
        f"coaug prepare: error: dataset.source {url}: not a zip archive (File is not a zip file): "
        "dataset.source must be a BEIR zip URL or a local BEIR folder",
    )
    # Nothing half-extracted is left to be taken for the dataset by the next run.
    assert [p.name for p in (tmp_path / "data" / ".downloads").iterdir()] == ["nfcorpus.zip"]


def test_a_utf8_byte_order_mark_is_accepted_in_every_beir_file(tiny_beir, tmp_path):
    plain = prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "plain")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        path = tiny_beir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = prepare(str(tiny_beir), None, ["test"], 0, tmp_path / "marked")
    # The same normalised copy, byte for byte.
    assert marked["checksum"] == plain["checksum"]


def test_a_byte_that_is_not_utf8_is_one_line_naming_file_line_and_column(tiny_beir, tmp_path, capsys):
    lines = (tiny_beir / "queries.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"asthma", b"asthm\xe4")  # Latin-1 "ä"
    (tiny_beir / "queries.jsonl").write_bytes(b"".join(lines))
    code, last = prepare_cli(tmp_path, str(tiny_beir), None, capsys)
    assert code == 2
    assert last == (
        f"coaug prepare: error: {tiny_beir / 'queries.jsonl'}:3: not UTF-8 (byte 0xe4 at column 29): "
        "save the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("corpus.jsonl", os.mkfifo, "a FIFO, not a regular file"),
        ("corpus.jsonl", lambda path: path.symlink_to("/dev/null"), "a device, not a regular file"),
        # beside the data
        ("loop", lambda path: path.symlink_to("loop"), "cannot be read (Too many levels of symbolic links)"),
    ],
    ids=["fifo", "device", "symlink loop"],
)
def test_only_regular_files_are_read_from_the_source(tiny_beir, tmp_path, capsys, name, make, problem):
    (tiny_beir / name).unlink(missing_ok=True)
    make(tiny_beir / name)
    assert prepare_cli(tmp_path, str(tiny_beir), None, capsys) == (
        2,
        f"coaug prepare: error: {tiny_beir / name}: {problem}: a dataset folder holds regular files only",
    )
