"""Store fixtures: every store test can run against a DuckDB file and a DuckLake catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.store import DuckDBStore
from tests.postgres import create_database


@pytest.fixture
def lake_store(postgres: str, tmp_path: Path) -> DuckDBStore:
    """A DuckLake store: a fresh catalog database and a local data path."""
    return DuckDBStore(
        path=f"ducklake:postgres:{create_database(postgres)}",
        data_path=str(tmp_path / "lake-data"),
    )


@pytest.fixture(params=["file", pytest.param("lake", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> DuckDBStore:
    """The same test on a DuckDB file and on a DuckLake catalog."""
    if request.param == "lake":
        return request.getfixturevalue("lake_store")
    return DuckDBStore(path=str(tmp_path / "store.duckdb"))
