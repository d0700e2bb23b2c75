"""Corpora on disk: the source formats, their validation and their fingerprint.

On-disk layout
--------------
- A *source root* folder (env ``EXTRACTION_SOURCE_ROOT``, else the bundled
  ``extraction_assets/sample_data/corpora``). Each sub-folder is one corpus; the folder name
  is the corpus name and the Dagster partition key.
- A corpus folder holds document files, in any mix, at any depth, read in path order. The
  extension says how a file is read (``_formats.FORMATS``):

  - ``*.jsonl``: one JSON object per non-blank line (UTF-8, an optional BOM tolerated), with
    an id (string or integer; becomes a string) and a non-empty text; other keys ignored.
    Provenance ``file:line``.
  - ``*.txt``, ``*.md``: one document per file; its id is its path relative to the corpus
    folder (``notes/2024-01.txt``). Provenance the same path.
  - ``*.csv`` (header row; delimiter and quoting sniffed; values kept as written) and
    ``*.parquet``: one document per row, read by DuckDB. Provenance ``file:row N``.

  The id and text are the key/column ``id`` and ``text`` unless the corpus's optional
  ``corpus.yaml`` says otherwise (``id_key: note_id``, ``text_key: body``). Hidden entries
  (leading ``.``) and a top-level ``README.md`` are ignored; any other entry is an error.
  ``corpus.yaml`` is part of the fingerprint: changing a key re-reads the corpus.
- Errors raise :class:`CorpusError` naming the corpus, the file, the line or row (or byte
  offset for invalid UTF-8) and the document id when known: invalid UTF-8, JSON or CSV, a
  record that is not an object, a missing/empty id, missing or non-string text, a missing
  column, empty (whitespace-only) text, duplicated ids across all files (all of them, with
  where), unknown entries, a bad ``corpus.yaml``, a file larger than the size limit
  (``max_file_bytes``, default 1 GiB; the assets pass ``EXTRACTION_MAX_FILE_BYTES``).
- Corpus names must be safe partition keys: 1-100 characters, no path separators, no
  ``..``, no leading dot, no leading/trailing whitespace, no control characters and none of
  ``| , [ ]`` (reserved by Dagster multi-partition keys). Spaces, quotes and non-Latin
  letters are fine: a name is only ever a SQL parameter. Corpus folders and files are
  resolved and must stay under the root (a symlink pointing outside is rejected).

Reading is streaming (line by line, or row batches from DuckDB); only the ids seen so far are
kept, to find duplicates.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction_assets.corpora._formats import CONFIG_NAME, FORMATS, CorpusConfig, load_config
from extraction_assets.errors import CorpusError
from extraction_assets.settings import DEFAULT_MAX_FILE_BYTES
from extraction_assets.types import CorpusFile, CorpusScan, Document

log = logging.getLogger(__name__)

MAX_CORPUS_NAME_LEN = 100
# How many offending ids an error message lists before summarising.
_MAX_LISTED = 20
_IGNORED_NAMES = {"readme.md"}
_RESERVED_CHARS = set("|,[]/\\")


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
    """The document files of a corpus in reading order; unknown entries are errors."""
    with _io_errors(corpus):
        return [path for _, path in _corpus_files(root, corpus)]


def _walk(folder: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """Every entry that counts, as (path relative to the corpus folder, path), depth first in
    name order: hidden entries are skipped everywhere, ``README.md`` at the top. Real
    sub-folders are walked; anything else (files, symlinks, sockets) is yielded."""
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or (not prefix and entry.name.lower() in _IGNORED_NAMES):
            continue
        rel = prefix + entry.name
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry, rel + "/")
        else:
            yield rel, entry


def _corpus_files(root: Path, corpus: str) -> list[tuple[str, Path]]:
    folder = corpus_dir(root, corpus)
    files = []
    for rel, entry in _walk(folder):
        if rel == CONFIG_NAME and entry.is_file() and entry.resolve().is_relative_to(folder):
            continue
        if entry.suffix.lower() not in FORMATS or not entry.is_file():
            kind = "folder" if entry.is_dir() else "file type"
            raise CorpusError(
                f"corpus {corpus!r}: unexpected {kind} {rel!r} (allowed: "
                f"{', '.join('*' + e for e in FORMATS)}, {CONFIG_NAME}, README.md and hidden files)",
                corpus,
            )
        if not entry.resolve().is_relative_to(folder):
            raise CorpusError(
                f"corpus {corpus!r}: {rel!r} resolves outside the corpus folder", corpus
            )
        files.append((rel, entry))
    if not files:
        raise CorpusError(
            f"corpus {corpus!r}: no document files ({', '.join('*' + e for e in FORMATS)}) in {folder}",
            corpus,
        )
    return files


def _max_bytes(max_file_bytes: int | None) -> int:
    if max_file_bytes is not None:
        return max_file_bytes
    return DEFAULT_MAX_FILE_BYTES


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


def corpus_config(root: Path, corpus: str) -> CorpusConfig:
    """The corpus's ``corpus.yaml`` settings (defaults when it has none)."""
    with _io_errors(corpus):
        return load_config(corpus_dir(root, corpus), corpus, CorpusError)


def iter_corpus(root: Path, corpus: str, max_file_bytes: int | None = None) -> Iterator[Document]:
    """Stream the documents of a corpus, validating as it goes.

    Structural errors (bad UTF-8, bad JSON or CSV, missing fields) raise at once. Duplicated
    ids and empty texts are collected and raised after the last file, naming all of them; a
    consumer that writes atomically (``DuckDBStore.sync_documents``) then rolls back.
    """
    with _io_errors(corpus):
        yield from _iter_corpus(root, corpus, max_file_bytes)


def _iter_corpus(root: Path, corpus: str, max_file_bytes: int | None) -> Iterator[Document]:
    limit = _max_bytes(max_file_bytes)
    config = corpus_config(root, corpus)
    seen: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    empty: list[tuple[str, str]] = []
    for rel, path in _corpus_files(root, corpus):
        size = path.stat().st_size
        if size > limit:
            raise CorpusError(
                f"corpus {corpus!r}: {rel} is {size} bytes, over the {limit}-byte limit",
                corpus,
            )
        read = FORMATS[path.suffix.lower()]
        for doc in read(path, rel, corpus, config, CorpusError):
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
    for rel, entry in _walk(folder):
        if not entry.is_file() or not entry.resolve().is_relative_to(folder):
            _fingerprint_entry(digest, rel, None)
            continue
        _fingerprint_entry(digest, rel, _scan_file(entry))
    return digest.hexdigest()


def _fingerprint_entry(digest: Any, rel: str, scanned: _FileScan | None) -> None:
    digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
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
    """Validate a corpus folder's entries and sizes and fingerprint it (no parsing).

    Only top-level ``*.jsonl`` files with the default keys can be *plain* (the store's DuckDB
    NDJSON loader reads ``id``/``text`` and names a file by its name); every other file takes
    the streaming reader.
    """
    with _io_errors(corpus):
        limit = _max_bytes(max_file_bytes)
        default_keys = corpus_config(root, corpus).default_keys
        digest = hashlib.sha256()
        files = []
        # _corpus_files has checked every entry: each is a document file or corpus.yaml.
        listed = dict(_corpus_files(root, corpus))
        for rel, path in _walk(corpus_dir(root, corpus)):
            scanned = _scan_file(path)
            if rel in listed and scanned.size > limit:
                raise CorpusError(
                    f"corpus {corpus!r}: {rel} is {scanned.size} bytes, "
                    f"over the {limit}-byte limit",
                    corpus,
                )
            _fingerprint_entry(digest, rel, scanned)
            if rel in listed:
                plain = scanned.plain and default_keys and rel.endswith(".jsonl") and "/" not in rel
                files.append(CorpusFile(path, scanned.lines, plain))
        return CorpusScan(corpus, tuple(files), digest.hexdigest())
