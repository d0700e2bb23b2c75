"""The store's tables and the typed task views generated from pydantic item models."""

from __future__ import annotations

import datetime
import enum
import re
import types
import typing
from typing import Any

import duckdb
from pydantic import BaseModel

EXTRACTION_COLUMNS = (
    "corpus VARCHAR NOT NULL, task VARCHAR NOT NULL, doc_id VARCHAR NOT NULL, "
    "content_hash VARCHAR NOT NULL, task_version VARCHAR NOT NULL, backend VARCHAR, model VARCHAR, "
    "status VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')), fields JSON, error VARCHAR, "
    "raw_answer VARCHAR, attempts INTEGER NOT NULL, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, latency_s DOUBLE, extracted_at TIMESTAMP NOT NULL, run_id VARCHAR"
)
# Columns added since, by ALTER TABLE (so a store made by an older version gets them too, in the
# same place): failed_runs, the runs that ended the document failed for this text and task
# version (what retry_limit counts); context_limit, the context size in tokens a failure "too
# long for the context" was judged against (final until the context grows).
ADDED_EXTRACTION_COLUMNS = (
    ("failed_runs", "INTEGER DEFAULT 0",
     "CASE WHEN status = 'failed' THEN greatest(attempts, 1) ELSE 0 END"),
    ("context_limit", "INTEGER", "NULL"),
)  # fmt: skip
EXTRACTION_NAMES = (
    "corpus", "task", "doc_id", "content_hash", "task_version", "backend", "model", "status",
    "fields", "error", "raw_answer", "attempts", "prompt_tokens", "completion_tokens", "latency_s",
    "extracted_at", "run_id", *(name for name, _, _ in ADDED_EXTRACTION_COLUMNS),
)  # fmt: skip

DDL = [
    """CREATE TABLE IF NOT EXISTS documents (
        corpus VARCHAR NOT NULL, doc_id VARCHAR NOT NULL, text VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL, source VARCHAR, first_seen TIMESTAMP NOT NULL,
        last_changed TIMESTAMP NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false,
        PRIMARY KEY (corpus, doc_id))""",
    # The current row per (corpus, task, document); earlier rows move to extraction_history.
    f"CREATE TABLE IF NOT EXISTS extractions ({EXTRACTION_COLUMNS}, PRIMARY KEY (corpus, task, doc_id))",
    f"""CREATE TABLE IF NOT EXISTS extraction_history ({EXTRACTION_COLUMNS},
        replaced_at TIMESTAMP NOT NULL, replaced_by_run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS calls (
        call_id VARCHAR PRIMARY KEY, run_id VARCHAR, corpus VARCHAR, task VARCHAR,
        task_version VARCHAR, backend VARCHAR, model VARCHAR, base_url VARCHAR, pack_size INTEGER,
        attempt INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER, latency_s DOUBLE,
        finish_reason VARCHAR, ok_items INTEGER, failed_items INTEGER, error VARCHAR,
        started_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS changes (
        run_id VARCHAR NOT NULL, corpus VARCHAR NOT NULL, task VARCHAR, doc_id VARCHAR NOT NULL,
        change VARCHAR NOT NULL
            CHECK (change IN ('new', 'changed', 'deleted', 'restored', 're-extracted')),
        field VARCHAR, old_value VARCHAR, new_value VARCHAR, "at" TIMESTAMP NOT NULL)""",
    # The source fingerprint each corpus was last synced from: an unchanged folder is not re-read.
    """CREATE TABLE IF NOT EXISTS corpus_sources (
        corpus VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, reader VARCHAR NOT NULL,
        synced_at TIMESTAMP NOT NULL, run_id VARCHAR)""",
]


def add_missing_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Add the columns a store made by an older version lacks; (table, column, backfill) of
    each one added. Its own transaction: DuckDB 1.4 refuses to commit an UPDATE of a table
    with a primary key in the transaction that altered it."""
    added = []
    for table in ("extractions", "extraction_history"):
        have = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "AND schema_name = 'main' AND database_name = current_database()",
                [table],
            ).fetchall()
        }
        for name, kind, value in ADDED_EXTRACTION_COLUMNS:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                added.append((table, name, value))
    return added


def backfill(con: duckdb.DuckDBPyConnection, added: list[tuple[str, str, str]]) -> None:
    """Give the added columns the values the rules keep: an old failed row counts the calls it
    failed in as runs (what was given up stays so)."""
    for table, name, value in added:
        con.execute(f"UPDATE {table} SET {name} = {value}")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,50}")
_BASE_VIEW_COLUMNS = ("corpus", "doc_id", "task_version", "model", "extracted_at")
# Order matters: bool before int (bool is an int), datetime before date (likewise).
_SCALARS: dict[type, str] = {
    bool: "BOOLEAN",
    int: "BIGINT",
    float: "DOUBLE",
    str: "VARCHAR",
    datetime.datetime: "TIMESTAMP",
    datetime.date: "DATE",
}


def view_name(task_name: str) -> str:
    if not isinstance(task_name, str) or not _IDENTIFIER.fullmatch(task_name):
        raise ValueError(
            f"task name {task_name!r} is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*, <= 51 chars)"
        )
    return f"{task_name}_extractions"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return annotation


def _scalar_type(annotation: Any) -> str | None:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "VARCHAR"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "VARCHAR"
        for python_type, sql in _SCALARS.items():  # bool before int: bool is an int
            if issubclass(annotation, python_type):
                return sql
    return None


def sql_type(annotation: Any) -> str:
    """DuckDB type of a top-level item field; objects and lists of objects stay JSON."""
    scalar = _scalar_type(annotation)
    if scalar:
        return scalar
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        inner = {_scalar_type(a) for a in args}
        if len(inner) == 1 and None not in inner:
            return f"{inner.pop()}[]"
    return "JSON"


def task_view_sql(task_name: str, item_model: type[BaseModel]) -> tuple[str, str]:
    """(view name, CREATE OR REPLACE VIEW statement) for a task's item model.

    The view shows ok rows whose content hash is the document's current one. A field whose
    name collides with a base column is exposed as ``<name>_value``. TRY_CAST keeps rows of an
    older task version with another schema from breaking the view (they show NULL instead).
    """
    view = view_name(task_name)
    columns = [f"e.{quote_identifier(c)}" for c in _BASE_VIEW_COLUMNS]
    for name, info in item_model.model_fields.items():
        key = info.alias or name  # the key under which the engine stored the value
        column = f"{name}_value" if name in _BASE_VIEW_COLUMNS else name
        path = quote_literal('$."' + key.replace('"', '\\"') + '"')
        kind = sql_type(info.annotation)
        if kind == "JSON":
            expr = f"json_extract(e.fields, {path})"
        elif kind.endswith("[]"):
            expr = f"TRY_CAST(json_extract(e.fields, {path}) AS {kind})"
        else:
            expr = f"TRY_CAST(json_extract_string(e.fields, {path}) AS {kind})"
        columns.append(f"{expr} AS {quote_identifier(column)}")
    sql = (
        f"CREATE OR REPLACE VIEW {quote_identifier(view)} AS SELECT {', '.join(columns)} "
        "FROM extractions e JOIN documents d "
        "ON d.corpus = e.corpus AND d.doc_id = e.doc_id AND d.content_hash = e.content_hash "
        f"WHERE e.task = {quote_literal(task_name)} AND e.status = 'ok' AND NOT d.deleted"
    )
    return view, sql
