"""Dense retrieval: a sentence-transformers encoder, normalised embeddings, faiss inner product."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from coaug import runtime_env
from coaug.atomic_io import atomic_directory, write_json
from coaug.errors import CoaugError
from coaug.retrieval.embedding_cache import EmbeddingCache, text_key
from coaug.retrieval.trec_run import Run

logger = logging.getLogger(__name__)

PACKAGE_SCHEME = "package:"
INDEX_FILE = "faiss.index"
DOCIDS_FILE = "docids.json"
META_FILE = "meta.json"


def resolve_encoder_path(encoder: str) -> Path:
    """``package:NAME`` names a sentence-transformers folder shipped inside a PyPI package
    (``NAME/model``); anything else is a local path."""
    if encoder.startswith(PACKAGE_SCHEME):
        name = encoder[len(PACKAGE_SCHEME) :]
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise CoaugError(f"encoder '{encoder}': package '{name}' is not installed")
        path = Path(spec.submodule_search_locations[0]) / "model"
    else:
        path = Path(encoder)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise CoaugError(f"encoder '{encoder}': {path} is not a sentence-transformers model folder")
    return path


class Encoder:
    def __init__(self, encoder: str, max_seq_length: int, batch_size: int, cache_dir: str | Path):
        runtime_env.configure()
        from sentence_transformers import SentenceTransformer

        path = resolve_encoder_path(encoder)
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.fingerprint = _fingerprint(path, max_seq_length)
        self.cache = EmbeddingCache(cache_dir, self.fingerprint)

    def encode(self, texts: list[str], desc: str, chunk_size: int) -> np.ndarray:
        """Normalised float32 embeddings; texts already in the cache are not re-encoded."""
        keys = [text_key(t) for t in texts]
        missing = self.cache.missing(keys)
        text_of = dict(zip(keys, texts))
        with tqdm(total=len(missing), desc=desc, unit="text") as bar:
            for start in range(0, len(missing), chunk_size):
                chunk = missing[start : start + chunk_size]
                vectors = self.model.encode(
                    [text_of[k] for k in chunk],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                self.cache.add(chunk, vectors.astype(np.float32))
                bar.update(len(chunk))
        return self.cache.get(keys)


def _fingerprint(path: Path, max_seq_length: int) -> str:
    """Identify the encoder by its weights, not its folder name, so moved copies share a cache."""
    digest = hashlib.sha256(f"max_seq_length={max_seq_length}".encode())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]


def build_index(
    doc_ids: list[str], texts: list[str], encoder: Encoder, index_dir: str | Path, chunk_size: int
) -> None:
    import faiss

    vectors = encoder.encode(texts, desc="encode docs", chunk_size=chunk_size)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    with atomic_directory(index_dir) as staging:
        faiss.write_index(index, str(staging / INDEX_FILE))
        write_json(staging / DOCIDS_FILE, doc_ids)
        write_json(staging / META_FILE, {"encoder_fingerprint": encoder.fingerprint, "dim": int(vectors.shape[1])})


def search(index_dir: str | Path, queries: dict[str, str], encoder: Encoder, hits: int, chunk_size: int) -> Run:
    import faiss

    index_dir = Path(index_dir)
    if not (index_dir / INDEX_FILE).is_file():
        raise CoaugError(f"{index_dir}: not a faiss index (run `coaug index` first)")
    meta = json.loads((index_dir / META_FILE).read_text())
    if meta["encoder_fingerprint"] != encoder.fingerprint:
        raise CoaugError(f"{index_dir}: built with another encoder ({meta['encoder_fingerprint']}); rebuild it")
    index = faiss.read_index(str(index_dir / INDEX_FILE))
    doc_ids = json.loads((index_dir / DOCIDS_FILE).read_text())
    qids = list(queries)
    vectors = encoder.encode([queries[q] for q in qids], desc="encode queries", chunk_size=chunk_size)
    scores, positions = index.search(vectors, min(hits, index.ntotal))
    return {
        qid: [(doc_ids[p], float(s)) for p, s in zip(row_pos, row_scores) if p >= 0]
        for qid, row_pos, row_scores in zip(qids, positions, scores)
    }
