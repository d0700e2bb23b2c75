"""Call outcomes: the calls and their final item results, written through the run's journal.

A replaced current extraction row moves to ``extraction_history``; the field-level differences
go to ``changes`` as 're-extracted' rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from extraction_assets.errors import StoreWriteError
from extraction_assets.types import CallOutcome, ItemResult
from resources.store._connection import insert_rows, json_list, utcnow
from resources.store._journal import (
    JournaledCommit,
    OutcomeJournal,
    orphaned_journals,
    read_journal,
)
from resources.store._schema import EXTRACTION_NAMES
from resources.store._writer import GroupCommitWriter


@dataclass(frozen=True)
class CallContext:
    """Where a run's call outcomes belong: the columns every call and extraction row shares."""

    run_id: str
    corpus: str
    task: str
    task_version: str
    backend: str
    model: str


Merge = Callable[[Sequence[CallOutcome], CallContext], None]


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@contextlib.asynccontextmanager
async def journaled_writer(
    store_path: str, context: CallContext, merge: Merge, merge_interval_s: float
) -> AsyncIterator[GroupCommitWriter[CallOutcome]]:
    """``DuckDBStore.outcome_writer``: ``merge`` is the store's one-transaction write."""
    journal = await asyncio.to_thread(OutcomeJournal, store_path, asdict(context))
    commit = JournaledCommit(journal, lambda batch: merge(batch, context), merge_interval_s)
    writer = GroupCommitWriter(commit, retry_alone=False)
    try:
        yield writer
    finally:
        await writer.drained()
        await asyncio.to_thread(commit.close)
        writer.merges = commit.merges


def recover_journals(store_path: str, merge: Merge) -> int:
    """``DuckDBStore.recover_journals``."""
    recovered = 0
    with orphaned_journals(store_path) as paths:
        for path in paths:
            # Only a journal whose content is bad is set aside; a locked or full store
            # raises as it is and the journal waits for the next run.
            try:
                context, outcomes = read_journal(path)
                if outcomes:
                    merge(outcomes, CallContext(**context))
            except (
                ValueError, TypeError, KeyError, duckdb.ConstraintException,
                duckdb.ConversionException, duckdb.InvalidInputException,
            ) as exc:  # fmt: skip
                aside = Path(path).with_suffix(".unmergeable")
                path.rename(aside)
                raise StoreWriteError(
                    f"outcome journal {path} could not be merged into {store_path} "
                    f"({exc}); set aside as {aside.name}"
                ) from exc
            path.unlink(missing_ok=True)
            recovered += len(outcomes)
    return recovered


def _field_diffs(
    prev_status: str, prev_fields: str | None, new: ItemResult
) -> list[tuple[str | None, str | None, str | None]]:
    """Per top-level field differences between two ok results; else one row with the statuses."""
    if (
        prev_status == "ok"
        and new.status == "ok"
        and prev_fields is not None
        and new.fields is not None
    ):
        old = json.loads(prev_fields)
        fresh = json.loads(as_json(new.fields))  # compare as stored (JSON types)
        if isinstance(old, dict):
            keys = list(dict.fromkeys([*old, *fresh]))
            diffs: list[tuple[str | None, str | None, str | None]] = [
                (k, as_json(old.get(k)), as_json(fresh.get(k)))
                for k in keys
                if old.get(k) != fresh.get(k)
            ]
            if diffs:
                return diffs
    return [(None, prev_status, new.status)]


def record_calls(
    con: duckdb.DuckDBPyConnection, outcomes: Sequence[CallOutcome], ctx: CallContext
) -> None:
    """Calls and their final item results, in order, inside the caller's transaction.

    Set-based: a handful of statements per batch, whatever its size (each statement costs about
    a millisecond of CPU that the inference server on the same machine would otherwise use).
    """
    known = {
        row[0]
        for row in con.execute(
            "SELECT call_id FROM calls WHERE list_contains(from_json($ids, '[\"VARCHAR\"]'), call_id)",
            {"ids": json_list(o.call.call_id for o in outcomes)},
        ).fetchall()
    }
    fresh: dict[str, CallOutcome] = {}
    for o in outcomes:  # re-recording a call is a no-op
        if o.call.call_id not in known:
            fresh.setdefault(o.call.call_id, o)
    if not fresh:
        return
    insert_rows(
        con,
        "calls",
        [
            [
                c.call_id, ctx.run_id, ctx.corpus, ctx.task, ctx.task_version, ctx.backend,
                ctx.model, c.base_url, c.pack_size, c.attempt, c.prompt_tokens,
                c.completion_tokens, c.latency_s, c.finish_reason, c.ok_items,
                c.failed_items, c.error,
                datetime.fromtimestamp(c.started_at, UTC).replace(tzinfo=None),
            ]
            for c in (o.call for o in fresh.values())
        ],
    )  # fmt: skip
    # A document answered by two calls of one batch (failed in a pack, then alone) is stored in
    # two steps, so the first answer moves to history exactly as if they came in two batches.
    segment: list[ItemResult] = []
    for o in fresh.values():
        results = list({r.doc_id: r for r in o.results}.values())  # last result wins
        if {r.doc_id for r in segment} & {r.doc_id for r in results}:
            _store_results(con, segment, ctx)
            segment = []
        segment += results
    _store_results(con, segment, ctx)


def _same_answer(prev: tuple[Any, ...], new: ItemResult, task_version: str) -> bool:
    """The new result says exactly what the current row says (status, answer, error, raw
    answer) for the same text and task version: only its counters change."""
    p_status, p_fields, p_hash, p_version, _, _, p_error, p_raw = prev
    return (p_status, p_hash, p_version, p_error, p_raw) == (
        new.status,
        new.content_hash,
        task_version,
        new.error,
        new.raw_answer,
    ) and (None if p_fields is None else json.loads(p_fields)) == (
        None if new.fields is None else json.loads(as_json(new.fields))
    )


def _store_results(
    con: duckdb.DuckDBPyConnection, results: list[ItemResult], ctx: CallContext
) -> None:
    """Item results of distinct documents; a replaced current row moves to history.

    A result that repeats the current row (a too-long document judged again, a document failing
    with the same answer) replaces it in place: no history or change row says nothing changed.
    """
    if not results:
        return
    now = utcnow()
    run_id, corpus, task, task_version = ctx.run_id, ctx.corpus, ctx.task, ctx.task_version
    key = {"corpus": corpus, "task": task, "ids": json_list(r.doc_id for r in results)}
    where = (
        "WHERE corpus = $corpus AND task = $task "
        "AND list_contains(from_json($ids, '[\"VARCHAR\"]'), doc_id)"
    )
    previous = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT doc_id, status, fields, content_hash, task_version, attempts, failed_runs, "
            f"error, raw_answer FROM extractions {where}",
            key,
        ).fetchall()
    }
    replaced = [
        r.doc_id
        for r in results
        if r.doc_id in previous and not _same_answer(previous[r.doc_id], r, task_version)
    ]
    if replaced:
        con.execute(
            f"INSERT INTO extraction_history BY NAME SELECT *, $now AS replaced_at, "
            f"$run_id AS replaced_by_run_id FROM extractions {where}",
            {**key, "ids": json_list(replaced), "now": now, "run_id": run_id},
        )
    if previous:
        con.execute(f"DELETE FROM extractions {where}", key)
    rows, changes = [], []
    for r in results:
        attempts, failed_runs = r.attempts, int(r.status == "failed")
        prev = previous.get(r.doc_id)
        if prev is not None:
            p_status, p_fields, p_hash, p_version, p_attempts, p_failed_runs, _, _ = prev
            if p_status == "failed" and (p_hash, p_version) == (r.content_hash, task_version):
                attempts += p_attempts
                failed_runs += p_failed_runs
            if r.doc_id in replaced:
                for fname, old, new in _field_diffs(p_status, p_fields, r):
                    changes.append(
                        [run_id, corpus, task, r.doc_id, "re-extracted", fname, old, new, now]
                    )
        rows.append(
            [
                corpus, task, r.doc_id, r.content_hash, task_version, ctx.backend, ctx.model,
                r.status, None if r.fields is None else as_json(r.fields), r.error,
                r.raw_answer, attempts, r.prompt_tokens, r.completion_tokens,
                r.latency_s, now, run_id, failed_runs, r.context_limit,
            ]
        )  # fmt: skip
    insert_rows(con, "extractions", rows, EXTRACTION_NAMES)
    insert_rows(con, "changes", changes)
