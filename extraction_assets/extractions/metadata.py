"""Markdown and table-schema metadata for the UI (kept out of the asset bodies)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

_MAX_CELL = 60


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A small markdown table; empty input gives a one-line note, not an empty table."""
    if not rows:
        return "_none_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def table_schema(described: Sequence[tuple[str, str]]) -> dg.TableSchema:
    """`DESCRIBE` output (column name, DuckDB type) as a Dagster column schema."""
    return dg.TableSchema(columns=[dg.TableColumn(name, type=dtype) for name, dtype in described])
