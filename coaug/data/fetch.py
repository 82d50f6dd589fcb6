"""Resolve a dataset source: a local BEIR folder, or an official BEIR zip URL pinned by sha256."""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from coaug.atomic_io import atomic_directory, atomic_open
from coaug.errors import CoaugError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# For connecting and for each read, not the whole download: a stalled server fails instead of hanging the stage.
DOWNLOAD_TIMEOUT_SECONDS = 60


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_source(source: str, sha256: str | None, download_dir: str | Path) -> Path:
    """Return a local folder holding corpus.jsonl; URLs are downloaded once and verified."""
    if "://" not in source:
        return Path(source)
    if not sha256:
        raise CoaugError(f"dataset.sha256 must pin the archive for a URL source ({source})")
    download_dir = Path(download_dir)
    archive = download_dir / Path(source.split("?")[0]).name
    if not archive.exists() or sha256_file(archive) != sha256:
        _download(source, archive)
    actual = sha256_file(archive)
    if actual != sha256:
        archive.unlink()
        raise CoaugError(f"{source}: sha256 {actual} does not match dataset.sha256 {sha256}")
    extracted = download_dir / (archive.stem + "-" + sha256[:12])
    if not extracted.exists():
        try:
            with atomic_directory(extracted) as staging, zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise CoaugError(
                f"dataset.source {source}: not a zip archive ({exc}): "
                "dataset.source must be a BEIR zip URL or a local BEIR folder"
            ) from None
    return _beir_root(extracted, source)


def _download(url: str, target: Path) -> None:
    logger.info("downloading %s", url)
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
            atomic_open(target, "wb") as out,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    # Network failures only: a full disk while writing is not the URL's fault and keeps its traceback.
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = exc.reason if type(exc) is urllib.error.URLError else exc
        raise CoaugError(
            f"dataset.source {url}: download failed ({reason}): check the URL and the network, "
            "or set dataset.source to a local BEIR folder"
        ) from None


def _beir_root(extracted: Path, source: str) -> Path:
    """BEIR zips hold one top-level folder (``nfcorpus/``); accept a flat zip too."""
    candidates = [path.parent for path in extracted.rglob("corpus.jsonl")]
    if len(candidates) != 1:
        raise CoaugError(f"{source}: expected one corpus.jsonl in the archive, found {len(candidates)}")
    return candidates[0]
