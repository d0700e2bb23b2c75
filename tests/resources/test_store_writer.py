"""Group commit: outcomes that finish together share one transaction, and nothing else changes.

The writer exists for speed (a DuckDB transaction per call costs the inference server on the
same cores ~50 ms of CPU each), so these tests pin what must not change with it: every outcome
stored once, in arrival order, with the same rows as one transaction per call; a caller
acknowledged only after its batch is durable; an error reaching only the caller whose outcome
caused it; and a writer killed before its journal was merged losing nothing: the next run merges
the journal. A real DuckDB file throughout, except where a failing commit is injected.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest

from extraction_assets.errors import StoreWriteError
from extraction_assets.types import CallOutcome, Document
from resources.store import DuckDBStore
from resources.store._journal import read_journal
from resources.store._writer import GroupCommitWriter
from tests.resources.test_store import failed, ok, outcome

RUN = {
    "run_id": "run-g", "corpus": "c", "task": "bio", "task_version": "v1",
    "backend": "vllm", "model": "m",
}  # fmt: skip


def _docs(n: int) -> list[Document]:
    return [Document.make("c", f"d{i:03d}", f"text of document {i}") for i in range(n)]


def _outcomes(documents: list[Document]) -> list[CallOutcome]:
    """Pairs of documents per call; the first pair fails first and succeeds in a later call."""
    outs = [outcome([failed(documents[0]), failed(documents[1])])]
    outs += [outcome([ok(a), ok(b)]) for a, b in zip(documents[::2], documents[1::2], strict=True)]
    return outs


def _tables(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            "extractions": con.execute(
                "SELECT doc_id, status, fields, attempts, content_hash FROM extractions ORDER BY doc_id"
            ).fetchall(),
            "history": con.execute(
                "SELECT doc_id, status, attempts FROM extraction_history ORDER BY doc_id"
            ).fetchall(),
            "calls": con.execute(
                "SELECT call_id, pack_size, ok_items FROM calls ORDER BY call_id"
            ).fetchall(),
            "changes": con.execute(
                "SELECT doc_id, change, field FROM changes ORDER BY doc_id, field"
            ).fetchall(),
        }


def test_concurrent_outcomes_share_transactions_and_match_one_by_one(tmp_path: Path) -> None:
    documents = _docs(40)
    outs = _outcomes(documents)
    one_by_one = DuckDBStore(path=str(tmp_path / "one.duckdb"))
    for out in outs:
        one_by_one.record_outcome(outcome=out, **RUN)

    grouped = DuckDBStore(path=str(tmp_path / "grouped.duckdb"))

    async def main() -> GroupCommitWriter[CallOutcome]:
        async with grouped.outcome_writer(**RUN, merge_interval_s=60) as writer:
            await asyncio.gather(*(writer.write(out) for out in outs[:5]))
            await asyncio.gather(*(writer.write(out) for out in outs[5:]))
        return writer

    writer = asyncio.run(main())
    assert writer.items == len(outs)
    assert writer.transactions < len(outs), "outcomes arriving together were not grouped"
    # The first append is merged at once, the rest when the block ends (interval not reached).
    assert writer.merges == 2
    assert not list((tmp_path / "grouped.duckdb.journals").glob("*.jsonl")), "journal left behind"
    expected = _tables(tmp_path / "one.duckdb")
    assert _tables(tmp_path / "grouped.duckdb") == expected
    # The failed-then-ok documents moved to history with their attempts counted.
    assert [h[0] for h in expected["history"]] == ["d000", "d001"]
    assert len(expected["extractions"]) == 40


def test_acknowledged_only_after_commit_and_error_reaches_only_its_caller() -> None:
    committed: list[str] = []
    batches: list[list[str]] = []

    def commit(items: Sequence[str]) -> None:
        batches.append(list(items))
        if "bad" in items:  # all or none, like a rolled-back transaction
            raise ValueError("cannot store 'bad'")
        committed.extend(items)

    writer: GroupCommitWriter[str] = GroupCommitWriter(commit)
    acknowledged: list[str] = []

    async def write(item: str) -> None:
        await writer.write(item)
        assert item in committed, f"{item} acknowledged before it was committed"
        acknowledged.append(item)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(write(i) for i in ["a", "b", "bad", "c"]), return_exceptions=True
        )

    results = asyncio.run(main())
    assert [type(r).__name__ for r in results] == ["NoneType", "NoneType", "ValueError", "NoneType"]
    assert sorted(committed) == ["a", "b", "c"] == sorted(acknowledged)
    assert batches[0] == ["a", "b", "bad", "c"], "the first batch held everything that was waiting"
    assert writer.items == 3


def test_later_arrivals_wait_for_the_next_transaction() -> None:
    order: list[list[int]] = []

    async def main() -> None:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def commit(items: Sequence[int]) -> None:
            order.append(list(items))
            if items[0] == 0:  # hold the first transaction until the others have queued
                asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(timeout=10)

        writer: GroupCommitWriter[int] = GroupCommitWriter(commit)
        first = asyncio.ensure_future(writer.write(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(writer.write(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
        assert writer.transactions == 2

    asyncio.run(main())
    assert order == [[0], [1, 2, 3, 4, 5]]


@pytest.mark.parametrize("max_batch", [1, 3])
def test_batches_are_capped(max_batch: int) -> None:
    seen: list[int] = []
    writer: GroupCommitWriter[int] = GroupCommitWriter(
        lambda items: seen.append(len(items)), max_batch=max_batch
    )

    async def main() -> None:
        await asyncio.gather(*(writer.write(i) for i in range(7)))

    asyncio.run(main())
    assert max(seen) <= max_batch and sum(seen) == 7


WRITER_SCRIPT = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from resources.store import DuckDBStore
from tests.resources.test_store import ok, outcome
from tests.resources.test_store_writer import RUN, _docs

async def main():
    store = DuckDBStore(path={db!r})
    async with store.outcome_writer(**RUN, merge_interval_s=3600) as writer:
        for doc in _docs(12):
            await writer.write(outcome([ok(doc)]))
            print("acknowledged", doc.doc_id, flush=True)
        time.sleep(3600)  # killed here: 11 of 12 calls only in the journal

asyncio.run(main())
"""


def _killed_writer(tmp_path: Path) -> Path:
    db = tmp_path / "store.duckdb"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT.format(root=root, db=str(db))],
        stdout=subprocess.PIPE, text=True, cwd=root,
    )  # fmt: skip
    acknowledged = []
    assert proc.stdout is not None
    while len(acknowledged) < 12:
        line = proc.stdout.readline()
        assert line, "the writer died before acknowledging 12 calls"
        acknowledged.append(line.split()[1])
    # A live writer's journal is not someone else's to merge.
    assert DuckDBStore(path=str(db)).recover_journals() == 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return db


def test_a_killed_writer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = _killed_writer(tmp_path)
    with duckdb.connect(str(db), read_only=True) as con:
        merged_before = con.execute("SELECT count(*) FROM extractions").fetchone()[0]
    assert merged_before == 1, "only the first call had been merged (interval not reached)"
    store = DuckDBStore(path=str(db))
    assert store.recover_journals() == 11
    assert store.recover_journals() == 0, "a merged journal is deleted"
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT doc_id, run_id FROM extractions ORDER BY doc_id").fetchall()
        calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    assert [r[0] for r in rows] == [d.doc_id for d in _docs(12)]
    assert {r[1] for r in rows} == {"run-g"} and calls == 12


def test_torn_last_line_is_dropped_and_a_bad_journal_is_set_aside(tmp_path: Path) -> None:
    db = _killed_writer(tmp_path)
    journal = next((tmp_path / "store.duckdb.journals").glob("*.jsonl"))
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]) + lines[-1][:40])  # killed mid-append
    context, outcomes = read_journal(journal)
    assert context["run_id"] == "run-g" and len(outcomes) == 10

    bad = json.loads(lines[1])
    bad["call"]["call_id"] = "bad-call"
    bad["results"][0]["status"] = "unknown"  # violates the table's CHECK constraint
    journal.write_text("".join([*lines[:1], json.dumps(bad) + "\n"]))
    store = DuckDBStore(path=str(db))
    with pytest.raises(StoreWriteError, match="unmergeable"):
        store.recover_journals()
    assert journal.with_suffix(".unmergeable").exists()
    assert store.recover_journals() == 0, "a bad journal must not block later runs"


# The writer is paused (a FAULT INJECTED into its process: fcntl.flock made to wait on a file)
# between creating its journal and locking it, which a busy machine can do to any process.
PAUSED_WRITER_SCRIPT = """
import asyncio, fcntl, os, sys, time
sys.path.insert(0, {root!r})
from resources.store import DuckDBStore, _journal
from tests.resources.test_store import ok, outcome
from tests.resources.test_store_writer import RUN, _docs

class PausedBeforeFirstLock:
    paused = False

    def __getattr__(self, name):
        return getattr(fcntl, name)

    def flock(self, fd, operation):
        if not self.paused:
            self.paused = True
            open({ready!r}, "w").close()
            while not os.path.exists({go!r}):
                time.sleep(0.01)
        return fcntl.flock(fd, operation)

_journal.fcntl = PausedBeforeFirstLock()

async def main():
    store = DuckDBStore(path={db!r})
    async with store.outcome_writer(**RUN, merge_interval_s=3600) as writer:
        for doc in _docs(12):
            await writer.write(outcome([ok(doc)]))
            print("acknowledged", doc.doc_id, flush=True)
        time.sleep(3600)

asyncio.run(main())
"""

RECOVER_SCRIPT = """
import sys
import time
sys.path.insert(0, {root!r})
from resources.store import DuckDBStore
print(DuckDBStore(path={db!r}).recover_journals())
"""


def test_recovery_racing_a_new_journal_leaves_it_to_its_writer(tmp_path: Path) -> None:
    """A recovery that runs while a writer is creating its journal must not take it for an
    orphan: the writer's acknowledged calls survive its kill."""
    db, ready, go = tmp_path / "store.duckdb", tmp_path / "ready", tmp_path / "go"
    root = str(Path(__file__).resolve().parents[2])
    fmt = {"root": root, "db": str(db), "ready": str(ready), "go": str(go)}
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSED_WRITER_SCRIPT.format(**fmt)],
        stdout=subprocess.PIPE, text=True, cwd=root,
    )  # fmt: skip
    try:
        for _ in range(3000):
            if ready.exists() or writer.poll() is not None:
                break
            time.sleep(0.01)
        assert ready.exists(), "the writer never reached its journal"
        recovery = subprocess.run(
            [sys.executable, "-c", RECOVER_SCRIPT.format(**fmt)],
            capture_output=True, text=True, cwd=root, timeout=120,
        )  # fmt: skip
        assert recovery.returncode == 0, recovery.stderr
        go.touch()
        assert writer.stdout is not None
        acknowledged = [writer.stdout.readline().split()[1] for _ in range(12)]
        assert acknowledged == [d.doc_id for d in _docs(12)]
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    store = DuckDBStore(path=str(db))
    store.recover_journals()
    with duckdb.connect(str(db), read_only=True) as con:
        stored = [r[0] for r in con.execute("SELECT doc_id FROM extractions ORDER BY 1").fetchall()]
    assert stored == acknowledged


def test_a_journal_left_half_created_by_a_killed_writer_is_cleaned_up(tmp_path: Path) -> None:
    """A writer killed between creating its journal and renaming it leaves a header-only
    `*.jsonl.creating` file: nothing in it was acknowledged (calls are appended after the
    rename). Recovery removes such a file once it is unlocked and older than a minute; a fresh
    one, or one a living writer still holds, stays."""
    import fcntl
    import os

    from resources.store._journal import CREATING_SUFFIX, journal_dir

    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    folder = journal_dir(store.path)
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh, held = (folder / f"{n}{CREATING_SUFFIX}" for n in ("stale", "fresh", "held"))
    for path in (stale, fresh, held):
        path.write_text('{"context": {}}\n')
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(held, (an_hour_ago, an_hour_ago))
    with held.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        store.recover_journals()
        assert not stale.exists()
        assert fresh.exists() and held.exists()
