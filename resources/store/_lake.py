"""The store on DuckLake: a catalog database (PostgreSQL) plus a data path of Parquet files.

Several machines write one lake: each connection attaches the catalog, commits with snapshot
isolation, and a transaction that conflicts with a concurrent commit is rolled back and run again
(:func:`retry_conflicts`). DuckLake has no PRIMARY KEY, UNIQUE, CHECK or non-literal DEFAULT:
the tables are created without them (:func:`lake_ddl`); the store's writes never relied on them
for upserts (a replaced row is deleted and inserted in one transaction), only as a safety net.

The extensions come from the PyPI packages ``duckdb-ext-ducklake`` and ``duckdb-ext-postgres``
and are loaded from their installed files (no download at run time).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from extraction_assets.errors import LakeUnavailableError

PREFIX = "ducklake:"
CATALOG = "store"  # the name the lake is attached under in every connection
INLINING_ROW_LIMIT = 1000
_CONFLICT_MARKERS = ("conflict", "Conflict")
_DDL_PRIMARY_KEY = re.compile(r",\s*PRIMARY KEY\s*\([^)]*\)|\s+PRIMARY KEY\b")
_DDL_CHECK = re.compile(r"\s*CHECK\s*\((?:[^()]|\([^()]*\))*\)")
_DDL_DEFAULT = re.compile(r"\s+DEFAULT\s+[^,)]+")

T = TypeVar("T")


def is_lake(location: str) -> bool:
    """Whether a store location names a DuckLake catalog (``ducklake:postgres:...``)."""
    return location.startswith(PREFIX)


def catalog_conninfo(location: str) -> str:
    """The libpq connection string of a ``ducklake:postgres:<conninfo>`` location."""
    rest = location[len(PREFIX) :]
    if not rest.startswith("postgres:"):
        raise LakeUnavailableError(
            f"store location {redact(location)!r}: only a PostgreSQL catalog is supported "
            "(ducklake:postgres:dbname=... host=...)"
        )
    return rest[len("postgres:") :]


def redact(location: str) -> str:
    """The location without a password (for errors and metadata)."""
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", location)


def extension_dir() -> Path:
    """Where the installed extension packages keep this DuckDB version's extensions."""
    spec = importlib.util.find_spec("duckdb_ext")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        found = sorted(Path(root).glob(f"extensions/v{duckdb.__version__}/*"))
        if found:
            return found[0]
    raise LakeUnavailableError(
        f"no DuckLake extensions for DuckDB {duckdb.__version__}: install duckdb-ext-ducklake and "
        "duckdb-ext-postgres of the same version (they exist for DuckDB 1.4.x)"
    )


_INSTANCES: dict[tuple[int, str, str, str], duckdb.DuckDBPyConnection] = {}
_INSTANCES_GUARD = threading.Lock()


def open_lake(
    location: str, data_path: str, read_only: bool, memory_limit: str
) -> duckdb.DuckDBPyConnection:
    """A connection with the lake attached as ``store`` and selected.

    Attaching costs catalog round trips, so each process attaches a lake once and every call
    gets its own cursor on that instance (its own transactions; a new transaction sees the
    latest snapshot). ``read_only`` is not enforced there: the store's read methods only read.
    """
    key = (os.getpid(), location, data_path, memory_limit)
    with _INSTANCES_GUARD:
        instance = _INSTANCES.get(key)
        if instance is None:
            instance = _attach(location, data_path, memory_limit)
            _INSTANCES[key] = instance
    cursor = instance.cursor()
    cursor.execute(f"USE {CATALOG}")
    del read_only
    return cursor


def _attach(location: str, data_path: str, memory_limit: str) -> duckdb.DuckDBPyConnection:
    if not data_path:
        raise LakeUnavailableError(
            f"store {redact(location)!r}: a DuckLake store needs a data path "
            "(EXTRACTION_LAKE_DATA_PATH: a folder standing for object storage)"
        )
    ext = extension_dir()
    con = duckdb.connect()
    try:
        if memory_limit:
            con.execute("SET memory_limit = $1", [memory_limit])
        for name in ("postgres_scanner", "ducklake"):
            con.execute(f"LOAD '{ext / (name + '.duckdb_extension')}'")
        if "://" not in data_path:  # a local folder (object storage: s3://..., gs://...)
            Path(data_path).mkdir(parents=True, exist_ok=True)
            data_path = str(Path(data_path).resolve())
        # A call's few rows go to the catalog, not to a new Parquet file per commit; maintenance
        # flushes them into files.
        options = [
            f"DATA_PATH '{_literal(data_path.rstrip('/') + '/')}'",
            f"DATA_INLINING_ROW_LIMIT {INLINING_ROW_LIMIT}",
        ]
        con.execute(f"ATTACH '{_literal(location)}' AS {CATALOG} ({', '.join(options)})")
        con.execute(f"USE {CATALOG}")
    except duckdb.Error as exc:
        con.close()
        raise LakeUnavailableError(
            f"cannot attach DuckLake store {redact(location)!r}: {redact(str(exc))}"
        ) from exc
    return con


def _literal(text: str) -> str:
    return text.replace("'", "''")


def lake_ddl(statements: list[str], added: dict[str, list[str]]) -> list[str]:
    """The store's DDL without the constraints DuckLake does not support, with the columns a
    file store gets by ALTER TABLE (``added``: table -> column definitions) created in place:
    DuckLake 0.3 does not carry a column added by ALTER into a table's inlined rows."""
    out = []
    for sql in statements:
        sql = _DDL_CHECK.sub("", sql)
        sql = _DDL_PRIMARY_KEY.sub("", sql)
        sql = _DDL_DEFAULT.sub("", sql)
        table = re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)", sql)
        if table and added.get(table.group(1)):
            head, _, _ = sql.rstrip().rpartition(")")
            sql = f"{head}, {', '.join(added[table.group(1)])})"
        out.append(sql)
    return out


def is_conflict(exc: BaseException) -> bool:
    """A commit refused because a concurrent transaction changed what this one read or wrote."""
    return isinstance(exc, duckdb.TransactionException) or (
        isinstance(exc, duckdb.Error) and any(m in str(exc) for m in _CONFLICT_MARKERS)
    )


def retry_conflicts(work: Callable[[], T], attempts: int = 20, max_delay_s: float = 2.0) -> T:
    """Run a whole transaction again while it loses to concurrent commits (jittered backoff)."""
    delay = 0.02
    for attempt in range(attempts):
        try:
            return work()
        except duckdb.Error as exc:
            if not is_conflict(exc) or attempt == attempts - 1:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def advisory_lock(
    location: str, key: str, on_wait: Callable[[str], None] | None, what: str
) -> Iterator[None]:
    """A lock held in the catalog database for as long as the block runs.

    A PostgreSQL session-level advisory lock: it works across machines, and a worker that dies
    (its connection drops) releases it.
    """
    import psycopg

    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with psycopg.connect(catalog_conninfo(location), autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [number]).fetchone()
        if not (row and row[0]):
            if on_wait is not None:
                on_wait(f"{what}: another run is extracting it; waiting for it to finish")
            conn.execute("SELECT pg_advisory_lock(%s)", [number])
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [number])


def data_files(con: duckdb.DuckDBPyConnection) -> int:
    """Data and delete files the lake's tables are made of (what compaction reduces)."""
    row = con.execute(
        f"SELECT coalesce(sum(file_count + delete_file_count), 0) FROM ducklake_table_info('{CATALOG}')"
    ).fetchone()
    return int(row[0]) if row else 0


def maintain(con: duckdb.DuckDBPyConnection, older_than_s: float) -> dict[str, int]:
    """Flush inlined rows, compact small files, expire snapshots older than ``older_than_s`` and
    delete the files nothing refers to any more; the table file counts before and after."""
    before = data_files(con)
    con.execute(f"CALL ducklake_flush_inlined_data('{CATALOG}')")
    con.execute(f"CALL ducklake_merge_adjacent_files('{CATALOG}')")
    con.execute(f"CALL ducklake_rewrite_data_files('{CATALOG}')")
    con.execute(
        f"CALL ducklake_expire_snapshots('{CATALOG}', older_than => now() - to_seconds($s))",
        {"s": float(older_than_s)},
    )
    con.execute(f"CALL ducklake_cleanup_old_files('{CATALOG}', cleanup_all => true)")
    return {"files_before": before, "files_after": data_files(con)}
