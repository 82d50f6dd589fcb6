"""Read and validate a BEIR-format collection (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

The data contract follows beir-cellar/beir: ``corpus = {doc_id: {"title", "text"}}``,
``queries = {qid: text}``, ``qrels = {qid: {doc_id: int}}``. Ids always stay strings, without whitespace or
control characters (they go into whitespace-separated TREC runs and tab-separated qrels). Every defect is
reported as one :class:`DataError` naming file, line and field.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from coaug.errors import DataError

logger = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")
NOT_REGULAR = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


@dataclass
class BeirDataset:
    corpus: Corpus
    queries: Queries
    qrels: dict[str, Qrels]
    dropped_qrels: dict[str, int] = field(default_factory=dict)


def load_dataset(folder: str | Path, splits: list[str], max_unknown_qrels: int) -> BeirDataset:
    """Load and validate ``folder``; qrels naming unknown ids are dropped (warned) up to the limit."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(str(folder), "dataset folder does not exist")
    require_regular_files(folder)
    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrels, dropped = {}, {}
    for split in splits:
        path = folder / "qrels" / f"{split}.tsv"
        if not path.is_file():
            raise DataError(str(path), f"missing split '{split}'")
        raw = read_qrels(path)
        qrels[split], dropped[split] = drop_unknown_ids(raw, corpus, queries, path, max_unknown_qrels)
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, dropped_qrels=dropped)


def require_regular_files(folder: str | Path) -> None:
    """Refuse a dataset folder that holds anything but files and folders (links followed). Every file in it is
    read, by ``prepare`` and by DVC hashing the stage's deps (``dvc status``, ``coaug plan``): a FIFO would
    block either for good, a device is no data, and a link loop or a dangling link cannot be read."""
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root, name)
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                raise DataError(
                    str(path), f"cannot be read ({exc.strerror}): a dataset folder holds regular files only"
                ) from None
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = NOT_REGULAR.get(stat.S_IFMT(mode), "not a file")
                raise DataError(str(path), f"{kind}, not a regular file: a dataset folder holds regular files only")


def _read_jsonl(path: Path):
    if not path.is_file():
        raise DataError(str(path), "file not found")
    for line_no, line in _utf8_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"invalid JSON ({exc.msg} at column {exc.colno})", line_no) from None
        if not isinstance(record, dict):
            raise DataError(str(path), "expected a JSON object", line_no)
        yield line_no, record


def _utf8_lines(path: Path):
    """(line number, text) of a UTF-8 file, lines ending in ``\n``. A UTF-8 byte-order mark at the start (some
    exports write one) is dropped; a byte that is not UTF-8 fails naming its line and column."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start]
                raise DataError(
                    str(path),
                    f"not UTF-8 (byte 0x{byte:02x} at column {exc.start + 1}): save the file as UTF-8",
                    line_no,
                ) from None


def _id_field(record: dict, path: Path, line_no: int) -> str:
    if "_id" not in record:
        raise DataError(str(path), "missing", line_no, "_id")
    value = record["_id"]
    # Integers are accepted as written (BEIR's SciFact uses them); anything else is ambiguous.
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise DataError(str(path), f"must be a non-empty string, got {value!r}", line_no, "_id")
    return _plain_id(str(value), path, line_no, "_id")


def _plain_id(value: str, path: Path, line_no: int, name: str) -> str:
    """``value``, refused when a whitespace or control character in it would split or break a line of a TREC
    run or a qrels file."""
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise DataError(str(path), f"must not contain whitespace or control characters, got {value!r}", line_no, name)
    return value


def _text_field(record: dict, name: str, path: Path, line_no: int, required: bool) -> str:
    if name not in record:
        if required:
            raise DataError(str(path), "missing", line_no, name)
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise DataError(str(path), f"must be a string, got {type(value).__name__}", line_no, name)
    return value


def read_corpus(path: Path) -> Corpus:
    corpus: Corpus = {}
    first_line: dict[str, int] = {}
    for line_no, record in _read_jsonl(path):
        doc_id = _id_field(record, path, line_no)
        if doc_id in corpus:
            raise DataError(str(path), f"duplicate id '{doc_id}' (first on line {first_line[doc_id]})", line_no, "_id")
        title = _text_field(record, "title", path, line_no, required=False)
        text = _text_field(record, "text", path, line_no, required=True)
        if not (title.strip() or text.strip()):
            raise DataError(str(path), "document has neither title nor text", line_no, "text")
        corpus[doc_id] = {"title": title, "text": text}
        first_line[doc_id] = line_no
    if not corpus:
        raise DataError(str(path), "empty corpus: no documents")
    return corpus


def read_queries(path: Path) -> Queries:
    queries: Queries = {}
    first_line: dict[str, int] = {}
    for line_no, record in _read_jsonl(path):
        qid = _id_field(record, path, line_no)
        if qid in queries:
            raise DataError(str(path), f"duplicate id '{qid}' (first on line {first_line[qid]})", line_no, "_id")
        text = _text_field(record, "text", path, line_no, required=True)
        if not text.strip():
            raise DataError(str(path), "empty query text", line_no, "text")
        queries[qid] = text
        first_line[qid] = line_no
    if not queries:
        raise DataError(str(path), "no queries")
    return queries


def read_qrels(path: Path) -> Qrels:
    """Parse a BEIR qrels TSV with its ``query-id corpus-id score`` header (CRLF tolerated)."""
    qrels: Qrels = {}
    if not path.is_file():
        raise DataError(str(path), "file not found")
    lines = (line.rstrip("\r\n") for _, line in _utf8_lines(path))
    header = next(lines, None)
    if header is None or tuple(header.split("\t")) != QRELS_HEADER:
        raise DataError(str(path), f"expected header {'<TAB>'.join(QRELS_HEADER)!r}, got {header!r}", 1)
    for line_no, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(str(path), f"expected 3 tab-separated fields, got {len(parts)}", line_no)
        qid, doc_id, score = parts
        for name, text_id in zip(QRELS_HEADER, (qid, doc_id)):
            _plain_id(text_id, path, line_no, name)
        try:
            value = int(score)
        except ValueError:
            raise DataError(str(path), f"not an integer: {score!r}", line_no, "score") from None
        previous = qrels.setdefault(qid, {}).get(doc_id)
        if previous is not None and previous != value:
            raise DataError(str(path), f"conflicting judgement for ({qid}, {doc_id})", line_no, "score")
        qrels[qid][doc_id] = value
    if not qrels:
        raise DataError(str(path), "no judgements")
    return qrels


def drop_unknown_ids(
    qrels: Qrels, corpus: Corpus, queries: Queries, path: Path, max_unknown: int
) -> tuple[Qrels, int]:
    """Remove judgements naming unknown queries or documents; fail if there are more than ``max_unknown``."""
    kept: Qrels = {}
    unknown = 0
    example = None
    for qid, judged in qrels.items():
        for doc_id, score in judged.items():
            if qid in queries and doc_id in corpus:
                kept.setdefault(qid, {})[doc_id] = score
            else:
                unknown += 1
                example = example or (qid if qid not in queries else doc_id)
    if unknown > max_unknown:
        raise DataError(
            str(path),
            f"{unknown} judgements name unknown query or doc ids (e.g. '{example}'), "
            f"more than max_unknown_qrels={max_unknown}",
        )
    if unknown:
        logger.warning("%s: dropped %d judgements naming unknown ids (e.g. '%s')", path, unknown, example)
    return kept, unknown
