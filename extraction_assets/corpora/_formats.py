"""The readers of the corpus file formats: one function per format, each yielding Documents.

A file's format is its extension (``FORMATS``); which key or column holds the id and the text
comes from the corpus's optional ``corpus.yaml`` (:class:`CorpusConfig`). Every reader raises
:class:`~extraction_assets.errors.CorpusError` naming the corpus, the file, the line
or row and the document id when known; checks that need the whole corpus (duplicated ids,
empty texts) are done by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pydantic
import yaml

from extraction_assets.types import Document

CONFIG_NAME = "corpus.yaml"
_BOM = b"\xef\xbb\xbf"
_FETCH_ROWS = 2048


class CorpusConfig(pydantic.BaseModel):
    """``corpus.yaml``: how to read a corpus's records (all keys optional)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    id_key: str = pydantic.Field(
        default="id", min_length=1, description="JSONL key / CSV or Parquet column of the id"
    )
    text_key: str = pydantic.Field(
        default="text", min_length=1, description="key / column of the text"
    )

    @property
    def default_keys(self) -> bool:
        return self.id_key == "id" and self.text_key == "text"


def load_config(folder: Path, corpus: str, error: type[Exception]) -> CorpusConfig:
    """The corpus's ``corpus.yaml`` (defaults when absent); a bad file raises ``error``."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        return CorpusConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"corpus {corpus!r}: {CONFIG_NAME}: not valid YAML: {exc}", corpus) from None
    if raw is None:
        return CorpusConfig()
    if not isinstance(raw, dict):
        raise error(f"corpus {corpus!r}: {CONFIG_NAME}: expected a mapping of settings", corpus)
    try:
        return CorpusConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise error(f"corpus {corpus!r}: {CONFIG_NAME}: {problems}", corpus) from None


Reader = Callable[[Path, str, str, CorpusConfig, type[Exception]], Iterator[Document]]


def read_jsonl(
    path: Path, rel: str, corpus: str, config: CorpusConfig, error: type[Exception]
) -> Iterator[Document]:
    """One JSON object per line; blank lines skipped; provenance ``file:line``."""
    offset = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{rel}:{lineno}"
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[3:]
                start += 3
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(
                    f"corpus {corpus!r}: {where}: invalid UTF-8 at byte offset {start + e.start}",
                    corpus,
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                msg = getattr(e, "msg", "too deeply nested")
                raise error(f"corpus {corpus!r}: {where}: invalid JSON: {msg}", corpus) from None
            if not isinstance(obj, dict):
                raise error(f"corpus {corpus!r}: {where}: expected a JSON object", corpus)
            yield _record(
                obj.get(config.id_key), obj.get(config.text_key), corpus, where, config, error
            )


def read_text(
    path: Path, rel: str, corpus: str, config: CorpusConfig, error: type[Exception]
) -> Iterator[Document]:
    """A whole ``.txt``/``.md`` file is one document; its id is its path in the corpus folder."""
    raw = path.read_bytes()
    skip = 3 if raw.startswith(_BOM) else 0
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(
            f"corpus {corpus!r}: {rel}: document {rel!r}: invalid UTF-8 at byte offset "
            f"{skip + e.start}",
            corpus,
            rel,
        ) from None
    yield _make(corpus, rel, text, rel, error)


def read_csv(
    path: Path, rel: str, corpus: str, config: CorpusConfig, error: type[Exception]
) -> Iterator[Document]:
    """A CSV file with a header row, read by DuckDB (delimiter and quoting sniffed, every
    value kept as written: ``all_varchar``, so an id ``007`` stays ``007``); provenance
    ``file:row N`` (data rows from 1, the header not counted)."""
    yield from _read_table(
        path, rel, corpus, config, error, "read_csv($path, header = true, all_varchar = true)"
    )


def read_parquet(
    path: Path, rel: str, corpus: str, config: CorpusConfig, error: type[Exception]
) -> Iterator[Document]:
    """A Parquet file, read by DuckDB; provenance ``file:row N`` (from 1)."""
    yield from _read_table(path, rel, corpus, config, error, "read_parquet($path)")


def _read_table(
    path: Path,
    rel: str,
    corpus: str,
    config: CorpusConfig,
    error: type[Exception],
    relation: str,
) -> Iterator[Document]:
    con = duckdb.connect()
    try:
        try:
            columns = [
                str(r[0])
                for r in con.execute(
                    f"DESCRIBE SELECT * FROM {relation}", {"path": str(path)}
                ).fetchall()
            ]
        except duckdb.Error as exc:
            raise error(
                f"corpus {corpus!r}: {rel}: cannot read: {_first_line(exc)}", corpus
            ) from None
        for role, key in (("id", config.id_key), ("text", config.text_key)):
            if key not in columns:
                raise error(
                    f"corpus {corpus!r}: {rel}: no column {key!r} for the document {role} "
                    f"(columns: {', '.join(map(repr, columns))}; set {role}_key in {CONFIG_NAME})",
                    corpus,
                )
        cursor = con.execute(
            f'SELECT "{_quote(config.id_key)}", "{_quote(config.text_key)}" FROM {relation}',
            {"path": str(path)},
        )
        row_number = 0
        while True:
            try:
                rows = cursor.fetchmany(_FETCH_ROWS)
            except duckdb.Error as exc:  # a malformed row further down the file
                raise error(
                    f"corpus {corpus!r}: {rel}: after row {row_number}: {_first_line(exc)}", corpus
                ) from None
            if not rows:
                return
            for raw_id, text in rows:
                row_number += 1
                # An empty CSV cell (or a Parquet NULL) is reported with the other empty texts.
                text = "" if text is None else text
                yield _record(raw_id, text, corpus, f"{rel}:row {row_number}", config, error)
    finally:
        con.close()


def _quote(identifier: str) -> str:
    return identifier.replace('"', '""')


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _record(
    raw_id: object,
    text: object,
    corpus: str,
    where: str,
    config: CorpusConfig,
    error: type[Exception],
) -> Document:
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise error(
            f"corpus {corpus!r}: {where}: missing or invalid {config.id_key!r} "
            "(a non-empty string or integer)",
            corpus,
        )
    doc_id = str(raw_id)
    if not isinstance(text, str):
        what = (
            f"missing {config.text_key!r}"
            if text is None
            else f"{config.text_key!r} is {type(text).__name__}, not a string"
        )
        raise error(f"corpus {corpus!r}: {where}: document {doc_id!r}: {what}", corpus, doc_id)
    return _make(corpus, doc_id, text, where, error)


def _make(corpus: str, doc_id: str, text: str, where: str, error: type[Exception]) -> Document:
    try:
        return Document.make(corpus, doc_id, text, source=where)
    except UnicodeEncodeError:  # lone surrogates from \ud800 escapes
        raise error(
            f"corpus {corpus!r}: {where}: document {doc_id!r}: text is not valid Unicode",
            corpus,
            doc_id,
        ) from None


# The file formats, by extension (lower case).
FORMATS: dict[str, Reader] = {
    ".jsonl": read_jsonl,
    ".txt": read_text,
    ".md": read_text,
    ".csv": read_csv,
    ".parquet": read_parquet,
}
