"""Why: the store is the product's output; the machine around it fails too. A full disk, a DuckDB
file held open by another process (a notebook), two runs of the same corpus at once: each must give
a clear error naming the file (or wait), and never leave the store corrupted, lose stored rows or
store a document twice."""

from __future__ import annotations

import contextlib
import os
import random
import string
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from resources.store import DuckDBStore
from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer, delayed
from tests.pipeline.helpers import Project, make_project, memory_instance, project
from tests.reliability.harness import cli_project, short_docs, snapshot, write_corpus

CFG = {"ops": {"biography_extractions": {"config": {"items_per_call": 5, "max_concurrency": 2}}}}


def _failure_text(result) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            while error is not None:
                parts.append(error.message)
                error = error.cause
    return "\n".join(parts)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):  # type: ignore[no-untyped-def]
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[:200]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _incompressible_docs(n: int, size: int, prefix: str) -> list[dict]:
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits
    return [
        {"id": f"{prefix}{i}", "text": "".join(rng.choices(alphabet, k=size))} for i in range(n)
    ]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_fails_clearly_and_keeps_the_store(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "small_disk", "12M") as disk, FaultInjectingOpenAIServer() as fake:
        db = disk / "store.duckdb"
        monkeypatch.setenv("EXTRACTION_DB", str(db))
        monkeypatch.setenv("EXTRACTION_EXPORT_DIR", str(tmp_path / "exports"))
        settings = make_project(tmp_path, monkeypatch, fake.url, "fake")
        write_corpus(settings.source_root, "small", short_docs(10))
        write_corpus(settings.source_root, "huge", _incompressible_docs(250, 60_000, "h"))
        with memory_instance(tmp_path / "dagster_home") as instance:
            p = project(settings, instance)
            assert p.run("small", CFG).success
            before = p.query("SELECT * FROM extractions ORDER BY doc_id")
            docs_before = p.query("SELECT * FROM documents ORDER BY doc_id")
            result = p.run("huge", CFG)
            assert not result.success
            message = _failure_text(result)
            assert str(db) in message, message
            assert "space" in message.lower() or "write" in message.lower(), message
            # The file still opens, old rows are intact, nothing of the failed corpus is stored.
            assert p.query("SELECT * FROM extractions ORDER BY doc_id") == before
            assert p.query("SELECT * FROM documents ORDER BY doc_id") == docs_before
            with duckdb.connect(str(db)) as con:  # read-write open: no corruption / replay error
                assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 10
            # Once space is back (the big corpus removed), the store keeps working.
            write_corpus(settings.source_root, "small", short_docs(12))
            again = p.run("small", CFG)
            assert again.success, _failure_text(again)
            assert p.query("SELECT count(*) FROM extractions WHERE status = 'ok'")[0][0] == 12


def impatient(p: Project) -> Project:
    """The same project with a store that gives up on a held lock after 2 s instead of 60 s."""
    base = p.defs
    store = DuckDBStore(path=str(p.settings.store_path), lock_timeout_s=2.0)
    defs = dg.Definitions(
        assets=list(base.assets or []),
        jobs=list(base.jobs or []),
        resources={**(base.resources or {}), "store": store},
    )
    return Project(p.settings, defs, p.instance)


HOLD = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(120)
""")


@pytest.mark.slow
def test_store_locked_by_another_process_fails_clearly(tmp_path, monkeypatch):
    with FaultInjectingOpenAIServer() as fake:
        settings = make_project(tmp_path, monkeypatch, fake.url, "fake")
        write_corpus(settings.source_root, "c", short_docs(5))
        with memory_instance(tmp_path / "dagster_home") as instance:
            p = project(settings, instance)
            assert p.run("c", CFG).success
            before = p.query("SELECT * FROM extractions ORDER BY doc_id")
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD, str(settings.store_path)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
                write_corpus(settings.source_root, "c", short_docs(7))
                t0 = time.monotonic()
                result = impatient(p).run("c", CFG)
                assert not result.success
                message = _failure_text(result)
                assert str(settings.store_path) in message and "locked" in message, message
                assert str(holder.pid) in message, "the error names the process holding the file"
                assert time.monotonic() - t0 < 60
            finally:
                holder.kill()
                holder.wait()
            assert p.query("SELECT * FROM extractions ORDER BY doc_id") == before
            assert p.run("c", CFG).success
            assert p.query("SELECT count(*) FROM extractions")[0][0] == 7


@pytest.mark.slow
def test_two_runs_of_the_same_corpus_at_once(tmp_path):
    """Two CLI runs of one corpus started together: the second waits for the first (or fails
    clearly); either way no document is extracted twice and the store stays consistent."""
    n = 30
    with FaultInjectingOpenAIServer(default=delayed(0.5)) as fake:
        cli = cli_project(tmp_path, fake.url, "fake")
        write_corpus(cli.source_root, "same", short_docs(n))
        procs = [
            subprocess.Popen(
                cli.cmd("same", items_per_call=2, max_concurrency=2),
                cwd=cli.workdir,
                env=cli.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        requested = sum(len(r.ids) for r in fake.requests)
        distinct = {i for r in fake.requests for i in r.ids}
    codes = [proc.returncode for proc in procs]
    snap = snapshot(cli.db, "same")
    assert len(snap.rows) == n and snap.duplicates == 0 and len(snap.versions) == 1
    assert all(r[0] == "ok" for r in snap.rows.values())
    assert 0 in codes, outputs
    failed = [out for code, out in zip(codes, outputs, strict=True) if code != 0]
    for out in failed:  # a failing one says why
        assert "same" in out and ("another run" in out or "locked" in out), out[-2000:]
    assert snap.history == 0, "a document was extracted by both runs"
    # Plus the shadow audit's one packed item asked again alone (by the run that extracted).
    assert len(distinct) == n and requested == n + 1, f"{requested} documents sent for {n}"
