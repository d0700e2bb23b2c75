"""Corpora on disk: the source format, its validation and its fingerprint.

On-disk format
--------------
- A *source root* folder (env ``EXTRACTION_SOURCE_ROOT``, else the bundled
  ``extraction_assets/sample_data/corpora``). Each sub-folder is one corpus; the folder name
  is the corpus name and the Dagster partition key.
- A corpus folder holds one or more ``*.jsonl`` files (UTF-8, an optional BOM is tolerated),
  read in sorted file-name order. Hidden entries (leading ``.``) and ``README.md`` are
  ignored; any other entry (``.csv``, ``.bin``, a sub-folder, ...) is an error.
- Each non-blank line is one JSON object with at least ``id`` (string or integer; becomes a
  string) and ``text`` (a non-empty string). ``lang``, ``title`` and other keys are allowed
  and ignored here. Blank lines are skipped.
- Errors raise :class:`CorpusError` naming the corpus, the ``file:line`` (or byte offset for
  invalid UTF-8) and the document id when known: invalid UTF-8, invalid JSON, a line that is
  not an object, a missing/empty id, missing or non-string text, empty (whitespace-only)
  text, duplicated ids (all of them, with their lines), unknown entries, a file larger than
  the size limit (``max_file_bytes``, default 1 GiB, env ``EXTRACTION_MAX_FILE_BYTES``).
- Corpus names must be safe partition keys: 1-100 characters, no path separators, no
  ``..``, no leading dot, no leading/trailing whitespace, no control characters and none of
  ``| , [ ]`` (reserved by Dagster multi-partition keys). Spaces, quotes and non-Latin
  letters are fine: a name is only ever a SQL parameter. Corpus folders and files are
  resolved and must stay under the root (a symlink pointing outside is rejected).

Reading is streaming (line by line); only the ids seen so far are kept, to find duplicates.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction_assets.types import CorpusFile, CorpusScan, Document

log = logging.getLogger(__name__)

ENV_MAX_FILE_BYTES = "EXTRACTION_MAX_FILE_BYTES"
DEFAULT_MAX_FILE_BYTES = 1 << 30
MAX_CORPUS_NAME_LEN = 100
# How many offending ids an error message lists before summarising.
_MAX_LISTED = 20
_IGNORED_NAMES = {"readme.md"}
_RESERVED_CHARS = set("|,[]/\\")


class CorpusError(ValueError):
    """A corpus cannot be read as it is; the message says where and why."""

    def __init__(self, message: str, corpus: str, document: str | None = None) -> None:
        super().__init__(message)
        self.corpus = corpus
        self.document = document


def validate_corpus_name(corpus: str) -> str:
    """Return ``corpus`` if it is a safe partition key, else raise :class:`CorpusError`."""
    problem = _name_problem(corpus)
    if problem:
        raise CorpusError(f"invalid corpus name {corpus!r}: {problem}", corpus=str(corpus))
    return corpus


def _name_problem(corpus: object) -> str | None:
    if not isinstance(corpus, str) or not corpus:
        return "must be a non-empty string"
    if len(corpus) > MAX_CORPUS_NAME_LEN:
        return f"longer than {MAX_CORPUS_NAME_LEN} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in corpus):
        return "must not contain control characters"
    if len(corpus.encode("utf-8")) > 255:  # the usual file-name limit
        return "longer than 255 bytes in UTF-8"
    if corpus.startswith("."):
        return "must not start with a dot"
    if ".." in corpus:
        return "must not contain '..'"
    if corpus != corpus.strip():
        return "must not start or end with whitespace"
    bad = sorted(set(corpus) & _RESERVED_CHARS)
    if bad or (os.sep in corpus) or (os.altsep and os.altsep in corpus):
        return f"must not contain path separators or {''.join(sorted(_RESERVED_CHARS))!r}"
    return None


def list_corpora(root: Path) -> list[str]:
    """Sorted names of the valid corpus folders under ``root``; invalid ones are logged."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"source root {str(root)!r} is not a directory", corpus="")
    real_root = root.resolve()
    names = []
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name.startswith(".") or not entry.is_dir():
            continue  # hidden folders and loose files (a README) are not corpora
        problem = _name_problem(name)
        if problem is None and entry.resolve().parent != real_root:
            problem = "folder resolves outside the source root"
        if problem:
            log.warning("skipping corpus folder %r under %s: %s", name, root, problem)
            continue
        names.append(name)
    return names


def corpus_dir(root: Path, corpus: str) -> Path:
    """The resolved folder of ``corpus``, checked to be a direct child of ``root``."""
    validate_corpus_name(corpus)
    try:
        real_root = Path(root).resolve()
        folder = (real_root / corpus).resolve()
        is_dir = folder.is_dir()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise CorpusError(f"corpus {corpus!r}: cannot resolve its folder: {exc}", corpus) from exc
    if folder.parent != real_root:
        raise CorpusError(f"corpus {corpus!r}: folder resolves outside {real_root}", corpus)
    if not is_dir:
        raise CorpusError(f"corpus {corpus!r}: no folder {folder}", corpus)
    return folder


def corpus_files(root: Path, corpus: str) -> list[Path]:
    """The ``*.jsonl`` files of a corpus in reading order; unknown entries are errors."""
    with _io_errors(corpus):
        return _corpus_files(root, corpus)


def _corpus_files(root: Path, corpus: str) -> list[Path]:
    folder = corpus_dir(root, corpus)
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.lower() in _IGNORED_NAMES:
            continue
        if not entry.name.endswith(".jsonl") or not entry.is_file():
            kind = "folder" if entry.is_dir() else "file type"
            raise CorpusError(
                f"corpus {corpus!r}: unexpected {kind} {entry.name!r} "
                "(only *.jsonl files, hidden files and README.md are allowed)",
                corpus,
            )
        if entry.resolve().parent != folder:
            raise CorpusError(
                f"corpus {corpus!r}: {entry.name!r} resolves outside the corpus folder", corpus
            )
        files.append(entry)
    if not files:
        raise CorpusError(f"corpus {corpus!r}: no *.jsonl files in {folder}", corpus)
    return files


def _max_bytes(max_file_bytes: int | None) -> int:
    if max_file_bytes is not None:
        return max_file_bytes
    return int(os.environ.get(ENV_MAX_FILE_BYTES, DEFAULT_MAX_FILE_BYTES))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


@contextlib.contextmanager
def _io_errors(corpus: str) -> Iterator[None]:
    """Unreadable files, symlink loops, over-long paths: CorpusError like any other bad input."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise CorpusError(f"corpus {corpus!r}: cannot read: {exc}", corpus) from exc


def iter_corpus(root: Path, corpus: str, max_file_bytes: int | None = None) -> Iterator[Document]:
    """Stream the documents of a corpus, validating as it goes.

    Structural errors (bad UTF-8, bad JSON, missing fields) raise at once. Duplicated ids
    and empty texts are collected and raised after the last line, naming all of them; a
    consumer that writes atomically (``DuckDBStore.sync_documents``) then rolls back.
    """
    with _io_errors(corpus):
        yield from _iter_corpus(root, corpus, max_file_bytes)


def _iter_corpus(root: Path, corpus: str, max_file_bytes: int | None) -> Iterator[Document]:
    limit = _max_bytes(max_file_bytes)
    seen: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    empty: list[tuple[str, str]] = []
    for path in corpus_files(root, corpus):
        size = path.stat().st_size
        if size > limit:
            raise CorpusError(
                f"corpus {corpus!r}: {path.name} is {size} bytes, over the {limit}-byte limit",
                corpus,
            )
        for doc in _iter_file(path, corpus):
            first = seen.get(doc.doc_id)
            if first is not None:
                duplicates.setdefault(doc.doc_id, [first]).append(doc.source)
                continue
            seen[doc.doc_id] = doc.source
            if not doc.text.strip():
                empty.append((doc.doc_id, doc.source))
                continue
            yield doc
    if duplicates:
        listed = [f"{i!r} at {', '.join(where)}" for i, where in duplicates.items()]
        raise CorpusError(
            f"corpus {corpus!r}: duplicated document ids: {_listing(listed)}",
            corpus,
            document=next(iter(duplicates)),
        )
    if empty:
        listed = [f"{i!r} ({where})" for i, where in empty]
        raise CorpusError(
            f"corpus {corpus!r}: empty or whitespace-only text for ids: {_listing(listed)}",
            corpus,
            document=empty[0][0],
        )


def _iter_file(path: Path, corpus: str) -> Iterator[Document]:
    offset = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path.name}:{lineno}"
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                start += 3
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"corpus {corpus!r}: {where}: invalid UTF-8 at byte offset {start + e.start}",
                    corpus,
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                msg = getattr(e, "msg", "too deeply nested")
                raise CorpusError(
                    f"corpus {corpus!r}: {where}: invalid JSON: {msg}", corpus
                ) from None
            yield _document(obj, corpus, where)


def _document(obj: object, corpus: str, where: str) -> Document:
    if not isinstance(obj, dict):
        raise CorpusError(f"corpus {corpus!r}: {where}: expected a JSON object", corpus)
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise CorpusError(
            f"corpus {corpus!r}: {where}: missing or invalid 'id' (a non-empty string or integer)",
            corpus,
        )
    doc_id = str(raw_id)
    text = obj.get("text")
    if not isinstance(text, str):
        what = (
            "missing 'text'" if text is None else f"'text' is {type(text).__name__}, not a string"
        )
        raise CorpusError(
            f"corpus {corpus!r}: {where}: document {doc_id!r}: {what}", corpus, doc_id
        )
    try:
        return Document.make(corpus, doc_id, text, source=where)
    except UnicodeEncodeError:  # lone surrogates from \ud800 escapes
        raise CorpusError(
            f"corpus {corpus!r}: {where}: document {doc_id!r}: text is not valid Unicode",
            corpus,
            doc_id,
        ) from None


def read_corpus(root: Path, corpus: str, max_file_bytes: int | None = None) -> list[Document]:
    """All documents of a corpus (duplicate ids across files are an error)."""
    return list(iter_corpus(root, corpus, max_file_bytes))


def corpus_fingerprint(root: Path, corpus: str) -> str:
    """A content hash of a corpus folder: entry names, sizes and sha256 of the bytes.

    Every non-ignored entry counts, so adding a stray ``.csv`` changes the fingerprint and
    the next run reports the error instead of silently ignoring it.
    """
    with _io_errors(corpus):
        return _fingerprint(root, corpus)


def _fingerprint(root: Path, corpus: str) -> str:
    folder = corpus_dir(root, corpus)
    digest = hashlib.sha256()
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.lower() in _IGNORED_NAMES:
            continue
        if not entry.is_file() or entry.resolve().parent != folder:
            _fingerprint_entry(digest, entry, None)
            continue
        _fingerprint_entry(digest, entry, _scan_file(entry))
    return digest.hexdigest()


def _fingerprint_entry(digest: Any, entry: Path, scanned: _FileScan | None) -> None:
    digest.update(entry.name.encode("utf-8", "surrogateescape") + b"\0")
    if scanned is None:
        digest.update(b"<not a regular file>\0")
        return
    digest.update(f"{scanned.size}\0".encode())
    digest.update(scanned.sha256)


# Bytes after which a file is not *plain* NDJSON for DuckDB's reader: raw control characters
# (Python's strict JSON rejects them inside strings, DuckDB's reader may not), a carriage return
# not ending a line, a byte-order mark. Such files take the streaming Python reader.
_NOT_PLAIN = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f]|\r(?!\n)|\xef\xbb\xbf")


@dataclass(frozen=True)
class _FileScan:
    size: int
    sha256: bytes
    lines: int  # lines as the Python reader numbers them (a last line without newline counts)
    plain: bool


def _scan_file(path: Path) -> _FileScan:
    digest = hashlib.sha256()
    size = lines = 0
    plain = True
    last = b""
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n")
            plain = plain and _NOT_PLAIN.search(block) is None
            last = block[-1:]
    if size and last != b"\n":
        lines += 1
    return _FileScan(size, digest.digest(), lines, plain)


def scan_corpus(root: Path, corpus: str, max_file_bytes: int | None = None) -> CorpusScan:
    """Validate a corpus folder's entries and sizes and fingerprint it (no JSON parsing)."""
    with _io_errors(corpus):
        limit = _max_bytes(max_file_bytes)
        digest = hashlib.sha256()
        files = []
        for path in _corpus_files(root, corpus):
            scanned = _scan_file(path)
            if scanned.size > limit:
                raise CorpusError(
                    f"corpus {corpus!r}: {path.name} is {scanned.size} bytes, "
                    f"over the {limit}-byte limit",
                    corpus,
                )
            _fingerprint_entry(digest, path, scanned)
            files.append(CorpusFile(path, scanned.lines, scanned.plain))
        return CorpusScan(corpus, tuple(files), digest.hexdigest())
