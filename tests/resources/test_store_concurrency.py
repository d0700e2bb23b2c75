"""Several Dagster step processes share one DuckDB file; none may fail on its lock.

DuckDB lets only one process open a file, so the store opens it per transaction and retries
while another process holds it. These tests use real processes (spawn, like Dagster's
multiprocess executor) writing and reading at the same time, and a process that holds the
file open too long, which must surface as a StoreLockedError naming the file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from extraction_assets.errors import StoreLockedError
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import DuckDBStore

CORPUS = "c"
# 100 and 200 proved no more: the writers interleave from the first commits.
OUTCOMES_PER_WRITER = 30


def _writer(path: str, writer: int, start: mp.synchronize.Event) -> None:
    store = DuckDBStore(path=path, lock_timeout_s=60)
    start.wait()
    for i in range(OUTCOMES_PER_WRITER):
        doc = Document.make(CORPUS, f"w{writer}-{i:03d}", f"text {writer} {i}")
        call = CallRecord(
            f"w{writer}-call-{i}", "http://x/v1", 1, 1, 10, 5, 0.1, "stop", 1, 0, None, time.time()
        )
        result = ItemResult(doc.doc_id, doc.content_hash, "ok", {"n": i})
        store.record_outcome(
            run_id=f"run-{writer}",
            corpus=CORPUS,
            task="t",
            task_version="v1",
            backend="vllm",
            model="m",
            outcome=CallOutcome(call, [result]),
        )


def _reader(
    path: str, start: mp.synchronize.Event, stop: mp.synchronize.Event, out: mp.Queue
) -> None:
    store = DuckDBStore(path=path, lock_timeout_s=60)
    start.wait()
    seen = []
    while not stop.is_set():
        with store.connect(read_only=True) as con:
            seen.append(con.execute("SELECT count(*) FROM extractions").fetchone()[0])
        time.sleep(0.01)
    out.put(seen)


@pytest.mark.slow  # 60 real open/commit/close cycles across processes
def test_two_writers_and_a_reader_interleave_without_lock_failures(tmp_path: Path) -> None:
    path = str(tmp_path / "store.duckdb")
    DuckDBStore(path=path).ensure_schema()
    ctx = mp.get_context("spawn")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(path, w, start)) for w in (1, 2)]
    reader = ctx.Process(target=_reader, args=(path, start, stop, out))
    for p in [*writers, reader]:
        p.start()
    start.set()
    for p in writers:
        p.join(timeout=240)
    stop.set()
    seen = out.get(timeout=60)
    reader.join(timeout=60)
    assert [p.exitcode for p in [*writers, reader]] == [0, 0, 0]
    store = DuckDBStore(path=path)
    with store.connect(read_only=True) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM calls), (SELECT count(DISTINCT doc_id) FROM extractions), "
            "(SELECT count(*) FROM extractions), (SELECT count(*) FROM extraction_history)"
        ).fetchone()
        per_run = con.execute("SELECT run_id, count(*) FROM calls GROUP BY 1 ORDER BY 1").fetchall()
    n = 2 * OUTCOMES_PER_WRITER
    assert counts == (n, n, n, 0)
    assert per_run == [("run-1", OUTCOMES_PER_WRITER), ("run-2", OUTCOMES_PER_WRITER)]
    # The reader really read while the writers wrote, and never went backwards.
    assert len(seen) >= 3 and seen == sorted(seen)


def _holder(path: str, ready: mp.synchronize.Event, release: mp.synchronize.Event) -> None:
    store = DuckDBStore(path=path)
    with store.connect() as con:  # a notebook that keeps its connection open
        con.execute("SELECT 1")
        ready.set()
        release.wait(timeout=60)


def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / "held.duckdb")
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_holder, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(timeout=60)
        store = DuckDBStore(path=path, lock_timeout_s=1)
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as info:
            store.count_pending(CORPUS, "t", "v1")
        assert 1 <= time.monotonic() - t0 < 5
        assert path in str(info.value)
        assert f"process {holder.pid}" in str(info.value)
        with pytest.raises(StoreLockedError), store.connect(read_only=True):
            pass
        # Once the holder lets go, the same store works.
        release.set()
        holder.join(timeout=30)
        store = DuckDBStore(path=path, lock_timeout_s=10)
        assert store.count_pending(CORPUS, "t", "v1") == 0
    finally:
        release.set()
        holder.join(timeout=30)
        if holder.is_alive():
            os.kill(holder.pid, 9)
