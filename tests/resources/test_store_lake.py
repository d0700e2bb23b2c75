"""The store on DuckLake, where machines share nothing local: writers in separate processes
against one catalog (a real PostgreSQL) and one data path.

The rules themselves (pending set, history, changes, views) run on a lake too: test_store.py's
and test_store_retry_rules.py's ``store`` fixture is parametrized over a file and a lake.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import CallContext, DuckDBStore

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
TASK = "bio"


def _outcome(call_id: str, results: list[ItemResult]) -> CallOutcome:
    call = CallRecord(
        call_id=call_id, base_url="http://127.0.0.1:8000/v1", pack_size=len(results), attempt=1,
        prompt_tokens=10, completion_tokens=5, latency_s=0.1, finish_reason="stop",
        ok_items=len(results), failed_items=0, error=None, started_at=time.time(),
    )  # fmt: skip
    return CallOutcome(call=call, results=results)


_WRITER = textwrap.dedent(
    """
    import sys, time
    from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
    from resources.store import CallContext, DuckDBStore

    location, data_path, worker, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = DuckDBStore(path=location, data_path=data_path)
    corpus = "shared"
    # Every worker answers every document: each commit replaces rows others wrote (deletes and
    # inserts on the same tables), the case where lake commits conflict.
    for n in range(calls):
        doc = Document.make(corpus, f"d{n % 5}", f"text {n % 5}")
        result = ItemResult(doc.doc_id, doc.content_hash, "ok", fields={"by": worker, "n": n})
        call = CallRecord(f"{worker}-{n}", "u", 1, 1, 1, 1, 0.0, "stop", 1, 0, None, time.time())
        store.record_outcomes(
            [CallOutcome(call, [result])], CallContext(f"run-{worker}", corpus, "bio", "v1", "vllm", "m")
        )
    print("done", worker)
    """
)


def test_four_writer_processes_commit_every_call_once(lake_store: DuckDBStore) -> None:
    lake_store.ensure_schema()
    calls = 12
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [lake_store.path, lake_store.data_path]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, *args, f"w{i}", str(calls)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    with lake_store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT call_id) FROM calls").fetchone() == (
            4 * calls,
            4 * calls,
        )
        # One current row per document, every other answer in history: nothing lost or doubled.
        assert con.execute(
            "SELECT count(*), count(DISTINCT doc_id) FROM extractions"
        ).fetchone() == (5, 5)
        assert con.execute("SELECT count(*) FROM extraction_history").fetchone() == (4 * calls - 5,)


def test_an_acknowledged_call_is_in_the_lake_not_in_a_local_journal(
    lake_store: DuckDBStore, tmp_path: Path
) -> None:
    doc = Document.make("c", "a", "text")
    context = CallContext("run-1", "c", TASK, "v1", "vllm", "m")

    async def write_one() -> None:
        async with lake_store.outcome_writer(context) as writer:
            await writer.write(
                _outcome("call-1", [ItemResult("a", doc.content_hash, "ok", {"x": 1})])
            )
            # Acknowledged: another machine (a fresh process) already sees it.
            seen = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(f"""
                    from resources.store import DuckDBStore
                    s = DuckDBStore(path={lake_store.path!r}, data_path={lake_store.data_path!r})
                    print(s.status_counts("c", {TASK!r}))""")],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                text=True, timeout=300,
            )  # fmt: skip
            assert seen.returncode == 0, seen.stderr[-2000:]
            assert "'ok': 1" in seen.stdout

    asyncio.run(write_one())
    assert lake_store.recover_journals() == 0
    assert not list(tmp_path.rglob("*.journal*"))


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from resources.store import DuckDBStore
    store = DuckDBStore(path=sys.argv[1], data_path=sys.argv[2])
    with store.extraction_lock("corpus-a", "bio"):
        print("holding", flush=True)
        time.sleep(float(sys.argv[3]))
        print("releasing", time.time(), flush=True)  # still held when this time is taken
    """
)


def _start_holder(store: DuckDBStore, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, store.path, store.data_path, str(seconds)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_two_machines_never_extract_one_corpus_at_once(lake_store: DuckDBStore) -> None:
    holder = _start_holder(lake_store, 3.0)
    waits: list[str] = []
    try:
        with lake_store.extraction_lock("corpus-a", "bio", on_wait=waits.append):
            acquired_at = time.time()
        # Only once the other process let go.
        assert holder.stdout is not None
        word, releasing_at = holder.stdout.readline().split()
        assert word == "releasing" and float(releasing_at) <= acquired_at
        assert waits and "another run is extracting it" in waits[0]
        # Another corpus was never blocked.
        with lake_store.extraction_lock("corpus-b", "bio", on_wait=waits.append):
            assert len(waits) == 1
    finally:
        holder.kill()


def test_a_killed_holder_releases_the_lock(lake_store: DuckDBStore) -> None:
    holder = _start_holder(lake_store, 600.0)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    waits: list[str] = []
    with lake_store.extraction_lock("corpus-a", "bio", on_wait=waits.append):
        pass  # the dead holder's connection closed: its lock is gone (at most a short wait)


def test_maintenance_compacts_files_and_keeps_every_row(lake_store: DuckDBStore) -> None:
    # Above the inlining limit, so every commit writes Parquet files.
    for batch in range(6):
        docs = [Document.make("c", f"d{batch}-{i}", f"text {i}") for i in range(1500)]
        lake_store.sync_documents("c", docs if batch == 0 else [*docs], f"r{batch}")
    with lake_store.connect(read_only=True) as con:
        before = con.execute("SELECT * FROM documents ORDER BY doc_id").fetchall()
        changes = con.execute("SELECT count(*) FROM changes").fetchone()
    report = lake_store.maintain(older_than_s=0)
    assert report["files_before"] > report["files_after"] >= 1, report
    with lake_store.connect(read_only=True) as con:
        assert con.execute("SELECT * FROM documents ORDER BY doc_id").fetchall() == before
        assert con.execute("SELECT count(*) FROM changes").fetchone() == changes
    print(json.dumps(report))


def test_a_local_store_needs_no_maintenance(tmp_path: Path) -> None:
    assert DuckDBStore(path=str(tmp_path / "s.duckdb")).maintain() == {}
