"""A real PostgreSQL server for tests (the DuckLake catalog), started by scripts/postgres.

Set EXTRACTION_TEST_PG to the conninfo of a running server ("host=127.0.0.1 port=5432
user=postgres") to use it instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from extraction_assets.serve import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres"


@contextmanager
def postgres_server() -> Iterator[str]:
    """The conninfo of a server that lives as long as the block."""
    existing = os.environ.get("EXTRACTION_TEST_PG")
    if existing:
        yield existing
        return
    # Under /tmp, not pytest's tmp_path: the server runs as `postgres`, who cannot enter root's
    # private pytest folders.
    folder = tempfile.mkdtemp(prefix="extraction-pg-")
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", folder, str(free_port())],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"scripts/postgres start failed: {started.stderr.strip()}")
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", folder], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(conninfo: str, prefix: str = "lake") -> str:
    """A fresh, empty database on the server; its conninfo."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{conninfo} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"dbname={name} {conninfo}"
