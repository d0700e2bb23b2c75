"""Documents: syncing a corpus (a streamed temp table diffed against it) and the pending set.

Changed and restored documents are deleted and re-inserted rather than updated in place:
DuckDB rewrites every row group an UPDATE touches at the next checkpoint, so updating the
text of 1% of a million documents (spread over all row groups) rewrote the whole text
column; a delete + append writes only the new rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from extraction_assets.types import CorpusScan, Document
from resources.store._connection import committed, insert_rows, utcnow

_SYNC_CHUNK = 10_000
_SAMPLE_IDS = 100

INCOMING_DDL = (
    "CREATE OR REPLACE TEMP TABLE incoming "
    "(doc_id VARCHAR, text VARCHAR, content_hash VARCHAR, source VARCHAR)"
)

_DIFF = """CREATE OR REPLACE TEMP TABLE diff AS
SELECT coalesce(i.doc_id, d.doc_id) AS doc_id,
    CASE WHEN d.doc_id IS NULL THEN 'new'
         WHEN i.doc_id IS NULL THEN CASE WHEN d.deleted THEN NULL ELSE 'deleted' END
         WHEN d.deleted THEN 'restored'
         WHEN d.content_hash <> i.content_hash THEN 'changed'
         ELSE 'unchanged' END AS change,
    d.first_seen,
    i.doc_id IS NOT NULL AND d.doc_id IS NOT NULL AND d.source IS DISTINCT FROM i.source AS moved
FROM incoming i FULL OUTER JOIN
    (SELECT doc_id, content_hash, deleted, first_seen, source FROM documents WHERE corpus = $corpus) d
    ON i.doc_id = d.doc_id"""


# Python's str.isspace() set, so a text the Python reader rejects as empty is never accepted here.
_BLANK = r"[\s\p{Z}\x{0b}\x{1c}-\x{1f}\x{85}]*"
_READ_FILE = """INSERT INTO incoming
SELECT CASE json_type(id) WHEN 'VARCHAR' THEN id->>'$' ELSE id::VARCHAR END,
       text->>'$', sha256(nfc_normalize(text->>'$'))[:32], $name || ':' || ordinality,
       json_type(id) AS id_type, json_type(text) AS text_type
FROM read_json($path, format = 'newline_delimited', columns = {id: 'JSON', text: 'JSON'})
    WITH ORDINALITY"""
# Rows the Python reader would reject or number differently: it decides (and names them).
_SUSPECT = f"""SELECT count(*) FROM incoming WHERE id_type IS NULL
    OR id_type NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT') OR doc_id = ''
    OR text_type IS DISTINCT FROM 'VARCHAR' OR regexp_full_match(text, '{_BLANK}')"""


def load_incoming_ndjson(con: duckdb.DuckDBPyConnection, files: list[tuple[str, str, int]]) -> bool:
    """Fill ``incoming`` from plain NDJSON files with DuckDB's reader; False if it cannot vouch.

    ``files`` are (path, name, lines as the Python reader numbers them). Parsing and hashing
    a million documents here takes ~1.5 s against ~9 s through Python. DuckDB's reader and
    Python's differ on edge cases (blank lines, duplicate keys, lone surrogates, big integer
    ids), so any error, suspicious row, duplicated id or record count other than the line
    count returns False: the caller then streams the corpus through the Python reader, which
    is the reference and names the offending document.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE incoming (doc_id VARCHAR, text VARCHAR, "
        "content_hash VARCHAR, source VARCHAR, id_type VARCHAR, text_type VARCHAR)"
    )
    try:
        for path, name, lines in files:
            before = _count(con, "SELECT count(*) FROM incoming")
            con.execute(_READ_FILE, {"path": path, "name": name})
            if _count(con, "SELECT count(*) FROM incoming") - before != lines:
                return False  # blank lines: record numbers are not line numbers
    except duckdb.Error:
        return False
    if _count(con, _SUSPECT) or _count(
        con,
        "SELECT count(*) FROM (SELECT doc_id FROM incoming GROUP BY doc_id HAVING count(*) > 1)",
    ):
        return False
    con.execute("ALTER TABLE incoming DROP COLUMN id_type")
    con.execute("ALTER TABLE incoming DROP COLUMN text_type")
    return True


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def insert_incoming(con: duckdb.DuckDBPyConnection, docs: list[Document]) -> None:
    """Append one chunk to the temp table (``insert_rows``: registering numpy object columns
    instead doubled peak RSS at 1M docs)."""
    insert_rows(con, "incoming", [(d.doc_id, d.text, d.content_hash, d.source) for d in docs])


def apply_sync(
    con: duckdb.DuckDBPyConnection, corpus: str, run_id: str, now: datetime
) -> dict[str, int]:
    """Diff ``incoming`` against the corpus, record the changes, apply them; counts by kind."""
    p = {"corpus": corpus, "now": now}
    con.execute(_DIFF, {"corpus": corpus})
    counts = dict(con.execute("SELECT change, count(*) FROM diff GROUP BY change").fetchall())
    con.execute(
        "INSERT INTO changes SELECT $run_id, $corpus, NULL, doc_id, change, NULL, NULL, NULL, $now "
        "FROM diff WHERE change IN ('new', 'changed', 'deleted', 'restored')",
        {**p, "run_id": run_id},
    )
    if counts.get("changed") or counts.get("restored"):
        con.execute(
            "DELETE FROM documents WHERE corpus = $corpus AND doc_id IN "
            "(SELECT doc_id FROM diff WHERE change IN ('changed', 'restored'))",
            {"corpus": corpus},
        )
    con.execute(
        "INSERT INTO documents SELECT $corpus, i.doc_id, i.text, i.content_hash, i.source, "
        "coalesce(diff.first_seen, $now), $now, false FROM incoming i JOIN diff USING (doc_id) "
        "WHERE diff.change IN ('new', 'changed', 'restored')",
        p,
    )
    # Same text, lines moved in the file: only the provenance column changes.
    con.execute(
        "UPDATE documents SET source = i.source FROM incoming i, diff "
        "WHERE documents.corpus = $corpus AND documents.doc_id = i.doc_id "
        "AND diff.doc_id = i.doc_id AND diff.change = 'unchanged' AND diff.moved",
        {"corpus": corpus},
    )
    if counts.get("deleted"):
        con.execute(
            "UPDATE documents SET deleted = true, last_changed = $now WHERE corpus = $corpus "
            "AND doc_id IN (SELECT doc_id FROM diff WHERE change = 'deleted')",
            p,
        )
    con.execute("DROP TABLE incoming")
    return counts


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


def stream_incoming(
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


def apply_incoming(
    con: duckdb.DuckDBPyConnection, corpus: str, run_id: str, source: tuple[str, str] | None
) -> DocumentSync:
    """Diff ``incoming`` against the corpus and apply it in one transaction (+ the fingerprint)."""
    now = utcnow()
    with committed(con):
        counts = apply_sync(con, corpus, run_id, now)
        # Delete then insert, not INSERT OR REPLACE: a DuckLake table has no key to replace by.
        con.execute("DELETE FROM corpus_sources WHERE corpus = ?", [corpus])
        if source is not None:  # synced from documents, not a folder: the next scan must read it
            con.execute(
                "INSERT INTO corpus_sources VALUES (?, ?, ?, ?, ?)",
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
            total_current=current_count(con, corpus),
            changed_ids=sample("changed"),
            new_ids=sample("new"),
            deleted_ids=sample("deleted"),
            restored_ids=sample("restored"),
        )
        con.execute("DROP TABLE diff")
    return result


def sync_scanned(
    con: duckdb.DuckDBPyConnection,
    scan: CorpusScan,
    run_id: str,
    documents: Callable[[], Iterable[Document]],
) -> DocumentSync:
    """``DuckDBStore.sync_corpus`` on a read-write connection in autocommit mode."""
    corpus = scan.corpus
    row = con.execute(
        "SELECT fingerprint FROM corpus_sources WHERE corpus = ?", [corpus]
    ).fetchone()
    if row and row[0] == scan.fingerprint:
        current = current_count(con, corpus)
        return DocumentSync(
            unchanged=current,
            total_current=current,
            reader="skipped: source fingerprint unchanged since the last sync",
        )
    files = [(str(f.path), f.path.name, f.lines) for f in scan.files]
    if scan.plain and load_incoming_ndjson(con, files):
        reader = "duckdb"
    else:
        stream_incoming(con, corpus, documents())
        reader = "python"
    result = apply_incoming(con, corpus, run_id, source=(scan.fingerprint, reader))
    result.reader = reader
    return result


def current_count(con: duckdb.DuckDBPyConnection, corpus: str) -> int:
    row = con.execute(
        "SELECT count(*) FROM documents WHERE corpus = ? AND NOT deleted", [corpus]
    ).fetchone()
    return int(row[0]) if row else 0


def synced_fingerprint(con: duckdb.DuckDBPyConnection, corpus: str) -> str | None:
    row = con.execute(
        "SELECT fingerprint FROM corpus_sources WHERE corpus = ?", [corpus]
    ).fetchone()
    return row[0] if row else None


def document_hashes(con: duckdb.DuckDBPyConnection, corpus: str) -> dict[str, str]:
    return dict(
        con.execute(
            "SELECT doc_id, content_hash FROM documents WHERE corpus = ? AND NOT deleted", [corpus]
        ).fetchall()
    )


# --- the pending set -----------------------------------------------------------------------------

# Final for this text and task version: ok; too long for a context at least as long as the one
# the caller will use (no context given: final); any other failure in retry_limit runs.
FINAL = """(e.status = 'ok'
        OR (e.status = 'failed' AND e.context_limit IS NOT NULL
            AND e.context_limit >= coalesce($max_model_len, e.context_limit))
        OR (e.status = 'failed' AND e.context_limit IS NULL AND e.failed_runs >= $retry_limit))"""
PENDING_WHERE = f"""
    FROM documents d
    LEFT JOIN extractions e ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
    WHERE d.corpus = $corpus AND NOT d.deleted
      AND NOT coalesce(e.content_hash = d.content_hash AND e.task_version = $version
                       AND {FINAL}, false)
"""
MISSING_WHERE = """
    FROM documents d
    LEFT JOIN extractions e ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
    WHERE d.corpus = $corpus AND NOT d.deleted
      AND NOT coalesce(e.content_hash = d.content_hash AND e.task_version = $version
                       AND e.status = 'ok', false)
"""


def pending_params(
    corpus: str, task: str, task_version: str, retry_limit: int, max_model_len: int | None
) -> dict[str, Any]:
    return {
        "corpus": corpus, "task": task, "version": task_version, "retry_limit": retry_limit,
        "max_model_len": max_model_len,
    }  # fmt: skip


def pending_page(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, Any],
    after: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """Pending documents by doc_id: all, or the ``limit`` after ``after`` (keyset paging)."""
    sql = f"SELECT d.doc_id, d.text, d.content_hash, d.source {PENDING_WHERE}"
    if after is not None:
        sql += " AND d.doc_id > $after"
        params = {**params, "after": after}
    sql += " ORDER BY d.doc_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Document(params["corpus"], *row) for row in con.execute(sql, params).fetchall()]


def count_pending(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> int:
    row = con.execute(f"SELECT count(*) {PENDING_WHERE}", params).fetchone()
    return int(row[0]) if row else 0
