"""``DuckDBStore``: the Dagster resource; each method opens the file for one short transaction.

The SQL lives in the private modules beside this one (documents, outcomes, reports, views); this
class holds the configuration, opens connections and is the store's only public surface.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import dagster as dg
import duckdb
from pydantic import BaseModel, PrivateAttr

from extraction_assets.errors import StoreWriteError
from extraction_assets.settings import Settings
from extraction_assets.types import CallOutcome, CorpusScan, Document
from resources.store import _documents, _lake, _outcomes, _reports, _views
from resources.store._connection import committed, is_lock_error, open_connection, write_lock
from resources.store._documents import DocumentSync, pending_params
from resources.store._outcomes import CallContext
from resources.store._schema import (
    ADDED_EXTRACTION_COLUMNS,
    DDL,
    add_missing_columns,
    backfill,
    task_view_sql,
)
from resources.store._writer import GroupCommitWriter

_T = TypeVar("_T")
_CONTEXT_FIELDS = ("run_id", "corpus", "task", "task_version", "backend", "model")


def _call_context(context: CallContext | None, fields: dict[str, str]) -> CallContext:
    """The context given as one value, or (older callers) as its six keywords."""
    if context is not None:
        if fields:
            raise TypeError(f"give the call context once, not also {sorted(fields)}")
        return context
    unknown = set(fields) - set(_CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    return CallContext(**fields)


class DuckDBStore(dg.ConfigurableResource):  # type: ignore[type-arg]  # used unparametrised
    """The extraction store: one DuckDB file, or a DuckLake catalog shared by several machines
    (``path`` = ``ducklake:postgres:<conninfo>`` with ``data_path``); every method is one short
    transaction.

    Data never reaches SQL text: values, corpus and task names are parameters. The only
    identifiers spliced into SQL (typed view names and columns) are validated and quoted.

    Pending rule: a current document is pending for (task, task version) unless its *current*
    extraction row is at the document's content hash and that task version and is final: ok,
    failed in ``retry_limit`` runs, or too long for a context at least as long as the one the
    caller gives. A result recorded for a text that has since changed is stored anyway (it is
    provenance) and the document simply stays pending.
    """

    # A DuckDB file, or ``ducklake:postgres:dbname=... host=...`` (a DuckLake catalog).
    path: str
    # The lake's data folder (object storage on real machines); only for a DuckLake store.
    data_path: str = ""
    lock_timeout_s: float = 60.0
    # DuckDB's buffer pool per process (it spills to disk beyond); its default is 80% of RAM.
    memory_limit: str = "512MB"

    _schema_ready: bool = PrivateAttr(default=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DuckDBStore:
        """The store the settings name: the DuckLake catalog of EXTRACTION_STORE, else the file."""
        if settings.lake_catalog:
            return cls(path=settings.lake_catalog, data_path=settings.lake_data_path)
        return cls(path=str(settings.store_path))

    # --- connections ---------------------------------------------------------------------------

    @property
    def is_lake(self) -> bool:
        """Whether this store is a DuckLake catalog (shared by machines) rather than a file."""
        return _lake.is_lake(self.path)

    @property
    def location(self) -> str:
        """Where the store is, fit for logs and metadata (a catalog password is masked)."""
        return _lake.redact(self.path) if self.is_lake else self.path

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self.is_lake:
            return _lake.open_lake(self.path, self.data_path, read_only, self.memory_limit)
        return open_connection(self.path, read_only, self.lock_timeout_s, self.memory_limit)

    def _write(self, work: Callable[[duckdb.DuckDBPyConnection], _T], ensure: bool = True) -> _T:
        """Run ``work`` in one write transaction; on a lake, again while it loses a conflict
        with a concurrent commit (``work`` must be safe to run again)."""

        def once() -> _T:
            with self._transaction(ensure) as con:
                return work(con)

        return _lake.retry_conflicts(once) if self.is_lake else once()

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (lock retry included) for inspection in tests and notebooks;
        close it quickly. The product reads and writes only through the methods below."""
        self.ensure_schema()
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _transaction(self, ensure: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._write_connection(ensure) as con, committed(con):
            yield con

    @contextlib.contextmanager
    def _write_connection(self, ensure: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection in autocommit mode, this process's write lock held."""
        if ensure:
            self.ensure_schema()
        with write_lock(self.path):
            con = self._open(read_only=False)
            try:
                yield con
            except (duckdb.IOException, duckdb.FatalException) as exc:
                if is_lock_error(exc):
                    raise
                raise StoreWriteError(
                    f"write to DuckDB store {self.location} failed and was rolled back: {exc}"
                ) from exc
            finally:
                con.close()

    def ensure_schema(self) -> None:
        """Create the tables if they do not exist (once per resource object)."""
        if self._schema_ready and (self.is_lake or os.path.exists(self.path)):
            return
        if not self.is_lake and os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if self.is_lake:
            columns = [f"{name} {kind.split()[0]}" for name, kind, _ in ADDED_EXTRACTION_COLUMNS]
            ddl = _lake.lake_ddl(DDL, {"extractions": columns, "extraction_history": columns})
        else:
            ddl = DDL

        def create(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
            for statement in ddl:
                con.execute(statement)
            return add_missing_columns(con)

        # A crash between the two leaves the columns at their defaults: an older store's
        # given-up documents get retry_limit more runs; nothing is lost.
        added = self._write(create, ensure=False)
        if added:
            self._write(lambda con: backfill(con, added), ensure=False)
        self._schema_ready = True

    # --- documents -------------------------------------------------------------------------------

    def sync_documents(
        self, corpus: str, documents: Iterable[Document], run_id: str
    ) -> DocumentSync:
        """Upsert a corpus's full document set in one transaction; absent ones are tombstoned.

        Documents stream into a temporary table in chunks; if the iterable raises (a corpus
        error found late), nothing is written.
        """
        read: list[Document] | None = None

        def sync(con: duckdb.DuckDBPyConnection) -> DocumentSync:
            nonlocal read
            if self.is_lake:  # a lost conflict runs the sync again: keep what it reads
                read = list(documents) if read is None else read
            _documents.stream_incoming(con, corpus, documents if read is None else read)
            return _documents.apply_incoming(con, corpus, run_id, source=None)

        return self._sync(sync)

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
        return self._sync(lambda con: _documents.sync_scanned(con, scan, run_id, documents))

    def _sync(self, sync: Callable[[duckdb.DuckDBPyConnection], DocumentSync]) -> DocumentSync:
        def once() -> DocumentSync:
            with self._write_connection() as con:
                return sync(con)

        return _lake.retry_conflicts(once) if self.is_lake else once()

    def synced_fingerprint(self, corpus: str) -> str | None:
        """The source fingerprint the corpus was last synced from (None before the first sync)."""
        with self.connect(read_only=True) as con:
            return _documents.synced_fingerprint(con, corpus)

    def document_hashes(self, corpus: str) -> dict[str, str]:
        """doc_id -> content hash of every current (not deleted) document of the corpus."""
        with self.connect(read_only=True) as con:
            return _documents.document_hashes(con, corpus)

    # --- pending set -----------------------------------------------------------------------------

    def pending_documents(
        self,
        corpus: str,
        task: str,
        task_version: str,
        retry_limit: int = 3,
        max_model_len: int | None = None,
    ) -> list[Document]:
        """Current documents that need (re-)extraction for this task version, by doc_id.

        A document that failed is retried until it has failed in ``retry_limit`` runs (however
        many calls each run made); one too long for the context, once the context
        (``max_model_len``, tokens) is longer than the one it was judged against."""
        params = pending_params(corpus, task, task_version, retry_limit, max_model_len)
        with self.connect(read_only=True) as con:
            return _documents.pending_page(con, params)

    def iter_pending_documents(
        self,
        corpus: str,
        task: str,
        task_version: str,
        retry_limit: int = 3,
        chunk_size: int = 10_000,
        max_model_len: int | None = None,
    ) -> Iterator[list[Document]]:
        """The pending set in doc_id pages; each page is its own short read (keyset paging),
        so no connection stays open while the caller extracts."""
        params = pending_params(corpus, task, task_version, retry_limit, max_model_len)
        after = ""
        while True:
            with self.connect(read_only=True) as con:
                page = _documents.pending_page(con, params, after=after, limit=chunk_size)
            if not page:
                return
            yield page
            after = page[-1].doc_id

    def count_pending(
        self,
        corpus: str,
        task: str,
        task_version: str,
        retry_limit: int = 3,
        max_model_len: int | None = None,
    ) -> int:
        params = pending_params(corpus, task, task_version, retry_limit, max_model_len)
        with self.connect(read_only=True) as con:
            return _documents.count_pending(con, params)

    @contextlib.contextmanager
    def extraction_lock(
        self, corpus: str, task: str, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold while extracting one corpus for one task: a second run of the same corpus (two CLI
        runs, a UI launch next to a CLI run) waits here instead of extracting the same documents
        again. An OS file lock, released when the process dies (even by SIGKILL); on a lake, an
        advisory lock in the catalog database, which holds across machines."""
        if self.is_lake:
            with _lake.advisory_lock(
                self.path, f"extract\0{corpus}\0{task}", on_wait, f"corpus {corpus!r}, task {task}"
            ):
                yield
            return
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
        self, *, outcome: CallOutcome, context: CallContext | None = None, **fields: str
    ) -> None:
        """Store one completed call and its final item results in one transaction.

        ``context`` says where it belongs (the six keywords of :class:`CallContext` are accepted
        in its place)."""
        self.record_outcomes([outcome], context, **fields)

    def record_outcomes(
        self,
        outcomes: Sequence[CallOutcome],
        context: CallContext | None = None,
        **fields: str,
    ) -> None:
        """Store completed calls, in order, in one transaction (all or none).

        Re-recording a call_id is a no-op. A replaced current row moves to extraction_history
        and the field-level differences go to ``changes`` as 're-extracted' rows.
        """
        ctx = _call_context(context, fields)
        self._write(lambda con: _outcomes.record_calls(con, outcomes, ctx))

    @contextlib.asynccontextmanager
    async def outcome_writer(
        self,
        context: CallContext | None = None,
        *,
        merge_interval_s: float = 5.0,
        **fields: str,
    ) -> AsyncIterator[GroupCommitWriter[CallOutcome]]:
        """An async writer for the engine's call outcomes.

        On a DuckDB file, ``write`` returns once the call is in this run's journal (fsync'd); the
        journal is merged into the store every ``merge_interval_s`` and when the block exits. Why
        not a store transaction per call: see resources/store/_journal.py. If the last merge
        fails, the journal stays for the next run's ``recover_journals``.

        On a lake, ``write`` returns once the call is committed to the lake (calls finishing
        together share a commit): a local journal would die with the worker's disk.
        """
        ctx = _call_context(context, fields)
        if self.is_lake:
            writer: GroupCommitWriter[CallOutcome] = GroupCommitWriter(
                lambda batch: self.record_outcomes(batch, ctx), retry_alone=False
            )
            try:
                yield writer
            finally:
                await writer.drained()
                writer.merges = writer.transactions
            return
        async with _outcomes.journaled_writer(
            self.path, ctx, self.record_outcomes, merge_interval_s
        ) as writer:
            yield writer

    def recover_journals(self) -> int:
        """Merge the journals of writers that died (a killed run) into the store; returns how many
        calls they held. A journal that cannot be merged is renamed ``*.unmergeable`` (and named
        in the error) rather than blocking every later run. A lake keeps no journals."""
        if self.is_lake:
            return 0
        return _outcomes.recover_journals(self.path, self.record_outcomes)

    # --- reports ---------------------------------------------------------------------------------

    def change_report(self, run_id: str, corpus: str | None = None) -> list[dict[str, Any]]:
        """The run's changes: document sync rows and per-field re-extraction differences."""
        with self.connect(read_only=True) as con:
            return _reports.change_report(con, run_id, corpus)

    def table_stats(
        self,
        corpus: str,
        task: str,
        task_version: str,
        retry_limit: int = 3,
        max_model_len: int | None = None,
    ) -> dict[str, int | float]:
        """Counts for Dagster metadata: documents, ok/failed/pending at this version, tokens."""
        with self.connect(read_only=True) as con:
            return _reports.table_stats(con, corpus, task, task_version, retry_limit, max_model_len)

    def coverage(
        self, corpus: str, task: str, task_version: str, sample: int = 10
    ) -> tuple[int, list[str]]:
        """(current documents without an ok extraction at this version, a sample of their ids)."""
        with self.connect(read_only=True) as con:
            return _reports.coverage(con, corpus, task, task_version, sample)

    def current_fields(
        self, corpus: str, task: str, task_version: str
    ) -> dict[str, dict[str, Any] | None]:
        """doc_id -> the ok answer at this task version for the document's current text, or None
        (failed, pending, or made from an older text or version); every current document."""
        with self.connect(read_only=True) as con:
            return _reports.current_fields(con, corpus, task, task_version)

    def table_version(self, corpus: str, task: str) -> str:
        """A digest of the rows the task's typed view shows for one corpus; it changes exactly
        when those rows do (the extraction's Dagster data version)."""
        with self.connect(read_only=True) as con:
            return _reports.table_version(con, corpus, task)

    def status_counts(self, corpus: str, task: str) -> dict[str, int]:
        """{"ok": n, "failed": n}: current extraction rows of the corpus, any text or version."""
        with self.connect(read_only=True) as con:
            return _reports.status_counts(con, corpus, task)

    def extracted_in_runs(self, run_ids: list[str]) -> int:
        """How many current extraction rows these runs wrote."""
        with self.connect(read_only=True) as con:
            return _reports.extracted_in_runs(con, run_ids)

    def extraction_rows(self, corpus: str, task: str) -> dict[str, dict[str, Any]]:
        """doc_id -> the current extraction row (status, fields, run_id, content_hash,
        task_version, attempts, error)."""
        with self.connect(read_only=True) as con:
            return _reports.extraction_rows(con, corpus, task)

    def measured_runs(
        self, backend: str, model: str, task: str, items_per_call: int
    ) -> _reports.MeasuredRuns | None:
        """The rate of earlier runs with this backend, model, task and pack size, and what their
        retries added per document; None when there are none."""
        with self.connect(read_only=True) as con:
            return _reports.measured_runs(con, backend, model, task, items_per_call)

    def run_accounting(self, run_id: str, corpus: str) -> dict[str, Any]:
        """What one run did to a corpus: sync changes by kind, changed ids, ids it extracted,
        rows it moved to history, calls and their items, re-extracted field changes."""
        with self.connect(read_only=True) as con:
            return _reports.run_accounting(con, run_id, corpus)

    # --- typed views and exports -----------------------------------------------------------------

    def ensure_task_view(self, task_name: str, item_model: type[BaseModel]) -> str:
        """Create or replace the typed view ``<task>_extractions``; returns its name."""
        view, sql = task_view_sql(task_name, item_model)
        self._write(lambda con: con.execute(sql))
        return view

    def export_parquet(self, task_name: str, path: str, corpus: str | None = None) -> int:
        """Write the task's typed view (optionally one corpus) to a Parquet file; rows written."""
        with self.connect(read_only=True) as con:
            view = _views.require_view(con, task_name, self.path)
            return _views.export_parquet(con, view, path, corpus)

    def export(
        self, task_name: str, path: str, fmt: str = "parquet", corpus: str | None = None
    ) -> int:
        """Write the task's typed view (optionally one corpus) as ``parquet``, ``csv`` (with a
        header) or ``jsonl``; rows written."""
        with self.connect(read_only=True) as con:
            view = _views.require_view(con, task_name, self.path)
            return _views.export(con, view, path, corpus, fmt)

    def preview(self, task_name: str, corpus: str, limit: int = 5) -> list[dict[str, Any]]:
        """The first rows of the task's typed view for one corpus."""
        with self.connect(read_only=True) as con:
            view = _views.require_view(con, task_name, self.path)
            return _views.preview(con, view, corpus, limit)

    def view_columns(self, task_name: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of the task's typed view."""
        with self.connect(read_only=True) as con:
            return _views.view_columns(con, _views.require_view(con, task_name, self.path))

    def view_rows(self, task_name: str, corpus: str | None = None) -> int:
        """Rows of the task's typed view (optionally one corpus)."""
        with self.connect(read_only=True) as con:
            return _views.view_rows(con, _views.require_view(con, task_name, self.path), corpus)

    # --- maintenance -----------------------------------------------------------------------------

    def maintain(self, older_than_s: float = 7 * 86400) -> dict[str, int]:
        """Lake maintenance: compact small files, expire snapshots older than ``older_than_s``,
        delete unreferenced files; file counts before and after. A DuckDB file needs none."""
        if not self.is_lake:
            return {}
        self.ensure_schema()
        with self._write_connection() as con:
            return _lake.maintain(con, older_than_s)
