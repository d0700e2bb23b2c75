"""The DuckDB store: documents, current and historical extractions, calls, per-run changes.

Concurrency: DuckDB lets one process open a file read-write and then no other process can
open it at all. Dagster runs steps in separate processes and extraction steps last minutes,
so no connection outlives one public method: each opens the file, runs one short
transaction and closes it. Opening retries on the lock error with exponential backoff and
jitter up to ``lock_timeout_s``, then raises :class:`StoreLockedError`. Within one process
writes are serialised by a thread lock (the engine records outcomes from worker threads).

Data never reaches SQL text: values, corpus and task names are parameters. The only
identifiers spliced into SQL (typed view names and columns) are validated and quoted.

Pending rule: a current document is pending for (task, task version) unless its *current*
extraction row is at the document's content hash and that task version and is either ok
or failed ``retry_limit`` times. A result recorded for a text that has since changed is
stored anyway (it is provenance) and the document simply stays pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
from pydantic import BaseModel, PrivateAttr

from extraction_assets.types import CallOutcome, Document, ItemResult
from resources._store_journal import (
    JournaledCommit,
    OutcomeJournal,
    orphaned_journals,
    read_journal,
)
from resources._store_schema import (
    DDL,
    EXTRACTION_NAMES,
    quote_identifier,
    quote_literal,
    task_view_sql,
    view_name,
)
from resources._store_sync import (
    INCOMING_DDL,
    apply_sync,
    insert_incoming,
    load_incoming_ndjson,
)
from resources._store_writer import GroupCommitWriter

if TYPE_CHECKING:
    from extraction_assets.corpora.sources import CorpusScan

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock")
_SYNC_CHUNK = 10_000
_SAMPLE_IDS = 100
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()

_PENDING_WHERE = """
    FROM documents d
    LEFT JOIN extractions e ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
    WHERE d.corpus = $corpus AND NOT d.deleted
      AND NOT coalesce(e.content_hash = d.content_hash AND e.task_version = $version
                       AND (e.status = 'ok' OR e.attempts >= $retry_limit), false)
"""
_MISSING_WHERE = """
    FROM documents d
    LEFT JOIN extractions e ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
    WHERE d.corpus = $corpus AND NOT d.deleted
      AND NOT coalesce(e.content_hash = d.content_hash AND e.task_version = $version
                       AND e.status = 'ok', false)
"""


class StoreLockedError(RuntimeError):
    """Another process kept the DuckDB file locked for longer than ``lock_timeout_s``."""


class StoreWriteError(RuntimeError):
    """A write failed (disk full, I/O error); the transaction was rolled back."""


@dataclass
class DocumentSync:
    """What ``sync_documents`` did to one corpus (id lists are capped samples)."""

    new: int = 0
    changed: int = 0
    deleted: int = 0
    restored: int = 0
    unchanged: int = 0
    total_current: int = 0
    changed_ids: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    restored_ids: list[str] = field(default_factory=list)
    # How the source was read: "duckdb", "python", or why it was not read at all.
    reader: str = "python"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and any(m in str(exc) for m in _LOCK_MARKERS)


@contextlib.contextmanager
def _committed(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
        # Merge the WAL into the file while this process still holds the exclusive lock, rather
        # than relying on the implicit checkpoint at close. (Once, under load ~17 on 2 cores,
        # one of 400 committed writes from two processes was missing afterwards; not reproduced.)
        con.execute("CHECKPOINT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _stream_incoming(
    con: duckdb.DuckDBPyConnection, corpus: str, documents: Iterable[Document]
) -> None:
    """Stream documents into the temp table ``incoming`` (autocommit: the store is untouched)."""
    con.execute(INCOMING_DDL)
    chunk: list[Document] = []
    for doc in documents:
        if doc.corpus != corpus:
            raise ValueError(f"document {doc.doc_id!r} belongs to {doc.corpus!r}, not {corpus!r}")
        chunk.append(doc)
        if len(chunk) >= _SYNC_CHUNK:
            insert_incoming(con, chunk)
            chunk = []
    insert_incoming(con, chunk)
    duplicates = con.execute(
        "SELECT doc_id FROM incoming GROUP BY doc_id HAVING count(*) > 1 ORDER BY doc_id LIMIT 20"
    ).fetchall()
    if duplicates:
        raise ValueError(
            f"corpus {corpus!r}: duplicated document ids {[d[0] for d in duplicates]}; nothing synced"
        )


def _apply(
    con: duckdb.DuckDBPyConnection, corpus: str, run_id: str, source: tuple[str, str] | None
) -> DocumentSync:
    """Diff ``incoming`` against the corpus and apply it in one transaction (+ the fingerprint)."""
    now = _utcnow()
    with _committed(con):
        counts = apply_sync(con, corpus, run_id, now)
        if source is None:  # synced from documents, not a folder: the next scan must read it
            con.execute("DELETE FROM corpus_sources WHERE corpus = ?", [corpus])
        else:
            con.execute(
                "INSERT OR REPLACE INTO corpus_sources VALUES (?, ?, ?, ?, ?)",
                [corpus, source[0], source[1], now, run_id],
            )

        def sample(kind: str) -> list[str]:
            rows = con.execute(
                "SELECT doc_id FROM diff WHERE change = ? ORDER BY doc_id LIMIT ?",
                [kind, _SAMPLE_IDS],
            ).fetchall()
            return [r[0] for r in rows]

        result = DocumentSync(
            new=counts.get("new", 0),
            changed=counts.get("changed", 0),
            deleted=counts.get("deleted", 0),
            restored=counts.get("restored", 0),
            unchanged=counts.get("unchanged", 0),
            total_current=_current_count(con, corpus),
            changed_ids=sample("changed"),
            new_ids=sample("new"),
            deleted_ids=sample("deleted"),
            restored_ids=sample("restored"),
        )
        con.execute("DROP TABLE diff")
    return result


def _current_count(con: duckdb.DuckDBPyConnection, corpus: str) -> int:
    row = con.execute(
        "SELECT count(*) FROM documents WHERE corpus = ? AND NOT deleted", [corpus]
    ).fetchone()
    return int(row[0]) if row else 0


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class DuckDBStore(dg.ConfigurableResource):
    """The extraction store in one DuckDB file; every method is one short transaction."""

    path: str
    lock_timeout_s: float = 60.0
    # DuckDB's buffer pool per process (it spills to disk beyond); its default is 80% of RAM.
    memory_limit: str = "512MB"

    _schema_ready: bool = PrivateAttr(default=False)

    # --- connections ---------------------------------------------------------------------------

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(self.path, read_only=read_only)
            except duckdb.ConnectionException as exc:
                # This process already has the file open read-write: share that instance.
                if read_only and "different configuration" in str(exc):
                    read_only = False
                    continue
                raise
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise StoreWriteError(f"cannot open DuckDB store {self.path}: {exc}") from exc
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    holder = re.search(r"PID (\d+)", str(exc))
                    by = f" by process {holder.group(1)}" if holder else ""
                    raise StoreLockedError(
                        f"DuckDB store {self.path} stayed locked{by} for {self.lock_timeout_s:g} s; "
                        "another process holds it open (a long-lived notebook connection?)"
                    ) from exc
                time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, 0.25)
                continue
            if self.memory_limit:
                con.execute("SET memory_limit = $1", [self.memory_limit])
            return con

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (lock retry included); close it quickly."""
        self.ensure_schema()
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    def _write_lock(self) -> threading.Lock:
        key = os.path.realpath(self.path)
        with _WRITE_LOCKS_GUARD:
            return _WRITE_LOCKS.setdefault(key, threading.Lock())

    @contextlib.contextmanager
    def _transaction(self, ensure: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._write_connection(ensure) as con, _committed(con):
            yield con

    @contextlib.contextmanager
    def _write_connection(self, ensure: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection in autocommit mode, this process's write lock held."""
        if ensure:
            self.ensure_schema()
        with self._write_lock():
            con = self._open(read_only=False)
            try:
                yield con
            except (duckdb.IOException, duckdb.FatalException) as exc:
                if _is_lock_error(exc):
                    raise
                raise StoreWriteError(
                    f"write to DuckDB store {self.path} failed and was rolled back: {exc}"
                ) from exc
            finally:
                con.close()

    def ensure_schema(self) -> None:
        """Create the tables if they do not exist (once per resource object)."""
        if self._schema_ready and os.path.exists(self.path):
            return
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._transaction(ensure=False) as con:
            for statement in DDL:
                con.execute(statement)
        self._schema_ready = True

    # --- documents -------------------------------------------------------------------------------

    def sync_documents(
        self, corpus: str, documents: Iterable[Document], run_id: str
    ) -> DocumentSync:
        """Upsert a corpus's full document set in one transaction; absent ones are tombstoned.

        Documents stream into a temporary table in chunks; if the iterable raises (a corpus
        error found late), nothing is written.
        """
        with self._write_connection() as con:
            _stream_incoming(con, corpus, documents)
            return _apply(con, corpus, run_id, source=None)

    def sync_corpus(
        self,
        scan: CorpusScan,
        run_id: str,
        documents: Callable[[], Iterable[Document]],
    ) -> DocumentSync:
        """Sync a scanned corpus folder: skipped when its fingerprint is the one last synced,
        else read by DuckDB (plain NDJSON) or streamed from ``documents()`` (the Python reader,
        the reference: it also names the document behind any error). Nothing is written unless
        the whole corpus reads cleanly."""
        corpus = scan.corpus
        with self._write_connection() as con:
            row = con.execute(
                "SELECT fingerprint FROM corpus_sources WHERE corpus = ?", [corpus]
            ).fetchone()
            if row and row[0] == scan.fingerprint:
                current = _current_count(con, corpus)
                return DocumentSync(
                    unchanged=current,
                    total_current=current,
                    reader="skipped: source fingerprint unchanged since the last sync",
                )
            files = [(str(f.path), f.path.name, f.lines) for f in scan.files]
            if scan.plain and load_incoming_ndjson(con, files):
                reader = "duckdb"
            else:
                _stream_incoming(con, corpus, documents())
                reader = "python"
            result = _apply(con, corpus, run_id, source=(scan.fingerprint, reader))
            result.reader = reader
            return result

    # --- pending set -----------------------------------------------------------------------------

    def pending_documents(
        self, corpus: str, task: str, task_version: str, retry_limit: int = 3
    ) -> list[Document]:
        """Current documents that need (re-)extraction for this task version, by doc_id."""
        params = _pending_params(corpus, task, task_version, retry_limit)
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT d.doc_id, d.text, d.content_hash, d.source {_PENDING_WHERE} ORDER BY d.doc_id",
                params,
            ).fetchall()
        return [Document(corpus, *row) for row in rows]

    def iter_pending_documents(
        self,
        corpus: str,
        task: str,
        task_version: str,
        retry_limit: int = 3,
        chunk_size: int = 10_000,
    ) -> Iterator[list[Document]]:
        """The pending set in doc_id pages; each page is its own short read (keyset paging),
        so no connection stays open while the caller extracts."""
        after = ""
        while True:
            params = {**_pending_params(corpus, task, task_version, retry_limit), "after": after}
            with self.connect(read_only=True) as con:
                rows = con.execute(
                    f"SELECT d.doc_id, d.text, d.content_hash, d.source {_PENDING_WHERE} "
                    f"AND d.doc_id > $after ORDER BY d.doc_id LIMIT {int(chunk_size)}",
                    params,
                ).fetchall()
            if not rows:
                return
            yield [Document(corpus, *row) for row in rows]
            after = rows[-1][0]

    def count_pending(self, corpus: str, task: str, task_version: str, retry_limit: int = 3) -> int:
        params = _pending_params(corpus, task, task_version, retry_limit)
        with self.connect(read_only=True) as con:
            row = con.execute(f"SELECT count(*) {_PENDING_WHERE}", params).fetchone()
        return row[0] if row else 0

    @contextlib.contextmanager
    def extraction_lock(
        self, corpus: str, task: str, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold while extracting one corpus for one task: a second run of the same corpus (two CLI
        runs, a UI launch next to a CLI run) waits here instead of extracting the same documents
        again. An OS file lock, released when the process dies (even by SIGKILL)."""
        key = hashlib.sha256(f"{corpus}\0{task}".encode()).hexdigest()[:24]
        folder = f"{self.path}.locks"
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{key}.lock"), "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(
                        f"corpus {corpus!r}, task {task}: another run is extracting it; waiting "
                        f"for it to finish (lock {handle.name})"
                    )
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- outcomes --------------------------------------------------------------------------------

    def record_outcome(
        self,
        *,
        run_id: str,
        corpus: str,
        task: str,
        task_version: str,
        backend: str,
        model: str,
        outcome: CallOutcome,
    ) -> None:
        """Store one completed call and its final item results in one transaction."""
        self.record_outcomes(
            [outcome], run_id=run_id, corpus=corpus, task=task, task_version=task_version,
            backend=backend, model=model,
        )  # fmt: skip

    def record_outcomes(
        self,
        outcomes: Sequence[CallOutcome],
        *,
        run_id: str,
        corpus: str,
        task: str,
        task_version: str,
        backend: str,
        model: str,
    ) -> None:
        """Store completed calls, in order, in one transaction (all or none).

        Re-recording a call_id is a no-op. A replaced current row moves to extraction_history
        and the field-level differences go to ``changes`` as 're-extracted' rows.
        """
        ctx = _CallContext(run_id, corpus, task, task_version, backend, model)
        with self._transaction() as con:
            _record_calls(con, outcomes, ctx)

    @contextlib.asynccontextmanager
    async def outcome_writer(
        self,
        *,
        run_id: str,
        corpus: str,
        task: str,
        task_version: str,
        backend: str,
        model: str,
        merge_interval_s: float = 5.0,
    ) -> AsyncIterator[GroupCommitWriter[CallOutcome]]:
        """An async writer for the engine's call outcomes.

        ``write`` returns once the call is in this run's journal (fsync'd); the journal is merged
        into the store every ``merge_interval_s`` and when the block exits. Why not a store
        transaction per call: see resources/_store_journal.py. If the last merge fails, the
        journal stays for the next run's ``recover_journals``.
        """
        context = {
            "run_id": run_id, "corpus": corpus, "task": task, "task_version": task_version,
            "backend": backend, "model": model,
        }  # fmt: skip
        journal = await asyncio.to_thread(OutcomeJournal, self.path, context)
        commit = JournaledCommit(
            journal, functools.partial(self.record_outcomes, **context), merge_interval_s
        )
        writer = GroupCommitWriter(commit, retry_alone=False)
        try:
            yield writer
        finally:
            await writer.drained()
            await asyncio.to_thread(commit.close)
            writer.merges = commit.merges

    def recover_journals(self) -> int:
        """Merge the journals of writers that died (a killed run) into the store; returns how many
        calls they held. A journal that cannot be merged is renamed ``*.unmergeable`` (and named
        in the error) rather than blocking every later run."""
        recovered = 0
        with orphaned_journals(self.path) as paths:
            for path in paths:
                # Only a journal whose content is bad is set aside; a locked or full store
                # raises as it is and the journal waits for the next run.
                try:
                    context, outcomes = read_journal(path)
                    if outcomes:
                        self.record_outcomes(outcomes, **context)
                except (
                    ValueError, TypeError, KeyError, duckdb.ConstraintException,
                    duckdb.ConversionException, duckdb.InvalidInputException,
                ) as exc:  # fmt: skip
                    path.rename(path.with_suffix(".unmergeable"))
                    raise StoreWriteError(
                        f"outcome journal {path} could not be merged into {self.path} "
                        f"({exc}); set aside as {path.with_suffix('.unmergeable').name}"
                    ) from exc
                path.unlink(missing_ok=True)
                recovered += len(outcomes)
        return recovered

    # --- reports ---------------------------------------------------------------------------------

    def change_report(self, run_id: str, corpus: str | None = None) -> list[dict]:
        """The run's changes: document sync rows and per-field re-extraction differences."""
        sql = "SELECT * FROM changes WHERE run_id = $run_id"
        params: dict[str, Any] = {"run_id": run_id}
        if corpus is not None:
            sql += " AND corpus = $corpus"
            params["corpus"] = corpus
        sql += " ORDER BY corpus, task NULLS FIRST, doc_id, field NULLS FIRST"
        with self.connect(read_only=True) as con:
            cur = con.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def synced_fingerprint(self, corpus: str) -> str | None:
        """The source fingerprint the corpus was last synced from (None before the first sync)."""
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT fingerprint FROM corpus_sources WHERE corpus = ?", [corpus]
            ).fetchone()
        return row[0] if row else None

    def table_stats(
        self, corpus: str, task: str, task_version: str, retry_limit: int = 3
    ) -> dict[str, int | float]:
        """Counts for Dagster metadata: documents, ok/failed/pending at this version, tokens."""
        params = _pending_params(corpus, task, task_version, retry_limit)
        with self.connect(read_only=True) as con:
            docs = con.execute(
                """SELECT count(*) FILTER (NOT d.deleted),
                    count(*) FILTER (d.deleted),
                    count(*) FILTER (NOT d.deleted AND e.status = 'ok' AND e.content_hash = d.content_hash
                                     AND e.task_version = $version),
                    count(*) FILTER (NOT d.deleted AND e.status = 'failed'
                                     AND e.content_hash = d.content_hash AND e.task_version = $version),
                    count(*) FILTER (NOT d.deleted AND e.status = 'ok' AND e.content_hash = d.content_hash
                                     AND e.task_version <> $version),
                    count(*) FILTER (NOT d.deleted AND e.content_hash <> d.content_hash),
                    count(*) FILTER (NOT d.deleted AND e.status = 'failed'
                                     AND e.content_hash = d.content_hash AND e.task_version = $version
                                     AND e.attempts >= $retry_limit)
                FROM documents d LEFT JOIN extractions e
                    ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
                WHERE d.corpus = $corpus""",
                params,
            ).fetchone()
            pending = con.execute(f"SELECT count(*) {_PENDING_WHERE}", params).fetchone()
            calls = con.execute(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), "
                "coalesce(sum(latency_s), 0) FROM calls "
                "WHERE corpus = $corpus AND task = $task AND task_version = $version",
                {k: params[k] for k in ("corpus", "task", "version")},
            ).fetchone()
        assert docs is not None and pending is not None and calls is not None
        return {
            "current_documents": docs[0],
            "deleted_documents": docs[1],
            "ok": docs[2],
            "failed": docs[3],
            "failed_exhausted": docs[6],
            "pending": pending[0],
            "ok_at_other_versions": docs[4],
            "stale_text": docs[5],
            "calls": calls[0],
            "prompt_tokens": int(calls[1]),
            "completion_tokens": int(calls[2]),
            "call_latency_s": round(float(calls[3]), 3),
        }

    def coverage(
        self, corpus: str, task: str, task_version: str, sample: int = 10
    ) -> tuple[int, list[str]]:
        """(current documents without an ok extraction at this version, a sample of their ids)."""
        params = _pending_params(corpus, task, task_version, 0)
        del params["retry_limit"]
        with self.connect(read_only=True) as con:
            row = con.execute(f"SELECT count(*) {_MISSING_WHERE}", params).fetchone()
            ids = con.execute(
                f"SELECT d.doc_id {_MISSING_WHERE} ORDER BY d.doc_id LIMIT {int(sample)}", params
            ).fetchall()
        return (row[0] if row else 0), [r[0] for r in ids]

    def current_fields(
        self, corpus: str, task: str, task_version: str
    ) -> dict[str, dict[str, Any] | None]:
        """doc_id -> the ok answer at this task version for the document's current text, or None
        (failed, pending, or made from an older text or version); every current document."""
        params = {"corpus": corpus, "task": task, "version": task_version}
        with self.connect(read_only=True) as con:
            rows = con.execute(
                """SELECT d.doc_id,
                    CASE WHEN e.status = 'ok' AND e.content_hash = d.content_hash
                              AND e.task_version = $version THEN e.fields END
                FROM documents d LEFT JOIN extractions e
                    ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
                WHERE d.corpus = $corpus AND NOT d.deleted ORDER BY d.doc_id""",
                params,
            ).fetchall()
        return {doc_id: None if fields is None else json.loads(fields) for doc_id, fields in rows}

    # --- typed views and exports -----------------------------------------------------------------

    def ensure_task_view(self, task_name: str, item_model: type[BaseModel]) -> str:
        """Create or replace the typed view ``<task>_extractions``; returns its name."""
        view, sql = task_view_sql(task_name, item_model)
        with self._transaction() as con:
            con.execute(sql)
        return view

    def _require_view(self, con: duckdb.DuckDBPyConnection, task_name: str) -> str:
        view = view_name(task_name)
        found = con.execute(
            "SELECT 1 FROM duckdb_views() WHERE view_name = ? AND NOT internal", [view]
        ).fetchone()
        if not found:
            raise ValueError(f"no view {view} in {self.path}: call ensure_task_view first")
        return view

    def export_parquet(self, task_name: str, path: str, corpus: str | None = None) -> int:
        """Write the task's typed view (optionally one corpus) to a Parquet file; rows written."""
        with self.connect(read_only=True) as con:
            view = self._require_view(con, task_name)
            where = "WHERE corpus = $corpus" if corpus is not None else ""
            row = con.execute(
                f"COPY (SELECT * FROM {quote_identifier(view)} {where} ORDER BY corpus, doc_id) "
                f"TO {quote_literal(str(path))} (FORMAT parquet)",
                {"corpus": corpus} if corpus is not None else {},
            ).fetchone()
        return int(row[0]) if row else 0

    def preview(self, task_name: str, corpus: str, limit: int = 5) -> list[dict]:
        """The first rows of the task's typed view for one corpus."""
        with self.connect(read_only=True) as con:
            view = self._require_view(con, task_name)
            cur = con.execute(
                f"SELECT * FROM {quote_identifier(view)} WHERE corpus = ? ORDER BY doc_id LIMIT ?",
                [corpus, int(limit)],
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _pending_params(corpus: str, task: str, task_version: str, retry_limit: int) -> dict[str, Any]:
    return {"corpus": corpus, "task": task, "version": task_version, "retry_limit": retry_limit}


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
        fresh = json.loads(_json(new.fields))  # compare as stored (JSON types)
        if isinstance(old, dict):
            keys = list(dict.fromkeys([*old, *fresh]))
            diffs = [
                (k, _json(old.get(k)), _json(fresh.get(k)))
                for k in keys
                if old.get(k) != fresh.get(k)
            ]
            if diffs:
                return diffs
    return [(None, prev_status, new.status)]


@dataclass(frozen=True)
class _CallContext:
    """Where a batch of call outcomes belongs: the columns every row of the batch shares."""

    run_id: str
    corpus: str
    task: str
    task_version: str
    backend: str
    model: str


def _record_calls(
    con: duckdb.DuckDBPyConnection, outcomes: Sequence[CallOutcome], ctx: _CallContext
) -> None:
    """Calls and their final item results, in order, inside the caller's transaction.

    Set-based: a handful of statements per batch, whatever its size (each statement costs about
    a millisecond of CPU that the inference server on the same machine would otherwise use).
    """
    known = {
        row[0]
        for row in con.execute(
            "SELECT call_id FROM calls WHERE list_contains($ids, call_id)",
            {"ids": [o.call.call_id for o in outcomes]},
        ).fetchall()
    }
    fresh: dict[str, CallOutcome] = {}
    for o in outcomes:  # re-recording a call is a no-op
        if o.call.call_id not in known:
            fresh.setdefault(o.call.call_id, o)
    if not fresh:
        return
    con.executemany(
        "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


def _store_results(
    con: duckdb.DuckDBPyConnection, results: list[ItemResult], ctx: _CallContext
) -> None:
    """Item results of distinct documents; a replaced current row moves to history."""
    if not results:
        return
    now = _utcnow()
    run_id, corpus, task, task_version = ctx.run_id, ctx.corpus, ctx.task, ctx.task_version
    key = {"corpus": corpus, "task": task, "ids": [r.doc_id for r in results]}
    where = "WHERE corpus = $corpus AND task = $task AND list_contains($ids, doc_id)"
    previous = {
        row[0]: row[1:]
        for row in con.execute(
            f"SELECT doc_id, status, fields, content_hash, task_version, attempts "
            f"FROM extractions {where}",
            key,
        ).fetchall()
    }
    if previous:
        con.execute(
            f"INSERT INTO extraction_history SELECT *, $now, $run_id FROM extractions {where}",
            {**key, "now": now, "run_id": run_id},
        )
        con.execute(f"DELETE FROM extractions {where}", key)
    rows, changes = [], []
    for r in results:
        attempts = r.attempts
        prev = previous.get(r.doc_id)
        if prev is not None:
            p_status, p_fields, p_hash, p_version, p_attempts = prev
            if p_status == "failed" and (p_hash, p_version) == (
                r.content_hash,
                task_version,
            ):
                attempts += p_attempts
            for fname, old, new in _field_diffs(p_status, p_fields, r):
                changes.append(
                    [run_id, corpus, task, r.doc_id, "re-extracted", fname, old, new, now]
                )
        rows.append(
            [
                corpus, task, r.doc_id, r.content_hash, task_version, ctx.backend, ctx.model,
                r.status, None if r.fields is None else _json(r.fields), r.error,
                r.raw_answer, attempts, r.prompt_tokens, r.completion_tokens,
                r.latency_s, now, run_id,
            ]
        )  # fmt: skip
    marks = ", ".join("?" * len(EXTRACTION_NAMES))
    con.executemany(f"INSERT INTO extractions VALUES ({marks})", rows)
    if changes:
        con.executemany("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", changes)
