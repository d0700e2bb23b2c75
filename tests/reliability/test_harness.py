"""The reliability harness reads the store the tests judge: a table it reads that is missing (say,
renamed by a store change) must fail the test, not read as zero rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from resources.store import DuckDBStore
from tests.reliability.harness import snapshot


def test_snapshot_of_a_store_without_tables_is_empty(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    assert snapshot(db, "c").calls == 0  # no file yet
    duckdb.connect(str(db)).close()  # the file, not yet the schema
    assert snapshot(db, "c").rows == {}


def test_snapshot_raises_on_a_missing_table(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    DuckDBStore(path=str(db)).ensure_schema()
    assert snapshot(db, "c").history == 0
    with duckdb.connect(str(db)) as con:
        con.execute("ALTER TABLE extraction_history RENAME TO extraction_history_v2")
    with pytest.raises(duckdb.CatalogException, match="extraction_history"):
        snapshot(db, "c")
