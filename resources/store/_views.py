"""The typed task views (``<task>_extractions``) and what reads them: exports and previews."""

from __future__ import annotations

from typing import Any

import duckdb

from extraction_assets.types import GOLD_CORPUS_PREFIX
from resources.store._schema import quote_identifier, quote_literal, view_name


def require_view(con: duckdb.DuckDBPyConnection, task_name: str, store_path: str) -> str:
    view = view_name(task_name)
    found = con.execute(
        "SELECT 1 FROM duckdb_views() WHERE view_name = ? AND NOT internal", [view]
    ).fetchone()
    if not found:
        raise ValueError(f"no view {view} in {store_path}: call ensure_task_view first")
    return view


# The export formats: DuckDB COPY options per format (JSON is written one object per line).
EXPORT_FORMATS = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "jsonl": "FORMAT json"}


def export(
    con: duckdb.DuckDBPyConnection, view: str, path: str, corpus: str | None, fmt: str = "parquet"
) -> int:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(EXPORT_FORMATS)})")
    # All corpora means the user's: the gold check's pseudo-corpora only when asked for by name.
    where, params = (
        ("WHERE corpus = $corpus", {"corpus": corpus})
        if corpus is not None
        else ("WHERE NOT starts_with(corpus, $gold)", {"gold": GOLD_CORPUS_PREFIX})
    )
    row = con.execute(
        f"COPY (SELECT * FROM {quote_identifier(view)} {where} ORDER BY corpus, doc_id) "
        f"TO {quote_literal(str(path))} ({EXPORT_FORMATS[fmt]})",
        params,
    ).fetchone()
    return int(row[0]) if row else 0


def export_parquet(con: duckdb.DuckDBPyConnection, view: str, path: str, corpus: str | None) -> int:
    return export(con, view, path, corpus, "parquet")


def preview(
    con: duckdb.DuckDBPyConnection, view: str, corpus: str, limit: int
) -> list[dict[str, Any]]:
    cur = con.execute(
        f"SELECT * FROM {quote_identifier(view)} WHERE corpus = ? ORDER BY doc_id LIMIT ?",
        [corpus, int(limit)],
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote_identifier(view)}").fetchall()]


def view_rows(con: duckdb.DuckDBPyConnection, view: str, corpus: str | None) -> int:
    if corpus is None:
        row = con.execute(f"SELECT count(*) FROM {quote_identifier(view)}").fetchone()
    else:
        row = con.execute(
            f"SELECT count(*) FROM {quote_identifier(view)} WHERE corpus = ?", [corpus]
        ).fetchone()
    return int(row[0]) if row else 0
