"""Group commit: outcomes that finish together share one transaction, and nothing else changes.

The writer exists for speed (one DuckDB transaction per call queued the engine's workers behind
each other's commits), so these tests pin what must not change with it: every outcome stored
once, in arrival order, with the same rows as one transaction per call; a caller acknowledged
only after its own batch committed; and an error reaching only the caller whose outcome caused
it, the others still stored. A real DuckDB file throughout, except where a failing commit is
injected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest

from extraction_assets.types import CallOutcome, Document
from resources._store_writer import GroupCommitWriter
from resources.store import DuckDBStore
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
    writer = grouped.outcome_writer(**RUN)

    async def main() -> None:
        await asyncio.gather(*(writer.write(out) for out in outs))

    asyncio.run(main())
    assert writer.items == len(outs)
    assert writer.transactions < len(outs), "outcomes arriving together were not grouped"
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
