"""Read-only reports: a run's changes and accounting, table statistics, coverage, answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from resources.store._documents import FINAL, MISSING_WHERE, PENDING_WHERE, pending_params


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def change_report(
    con: duckdb.DuckDBPyConnection, run_id: str, corpus: str | None
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM changes WHERE run_id = $run_id"
    params: dict[str, Any] = {"run_id": run_id}
    if corpus is not None:
        sql += " AND corpus = $corpus"
        params["corpus"] = corpus
    sql += " ORDER BY corpus, task NULLS FIRST, doc_id, field NULLS FIRST"
    return _dicts(con.execute(sql, params))


def table_stats(
    con: duckdb.DuckDBPyConnection,
    corpus: str,
    task: str,
    task_version: str,
    retry_limit: int,
    max_model_len: int | None,
) -> dict[str, int | float]:
    params = pending_params(corpus, task, task_version, retry_limit, max_model_len)
    docs = con.execute(
        f"""SELECT count(*) FILTER (NOT d.deleted),
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
                             AND {FINAL}),
            count(*) FILTER (NOT d.deleted AND e.status = 'failed'
                             AND e.content_hash = d.content_hash AND e.task_version = $version
                             AND e.context_limit IS NOT NULL)
        FROM documents d LEFT JOIN extractions e
            ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
        WHERE d.corpus = $corpus""",
        params,
    ).fetchone()
    pending = con.execute(f"SELECT count(*) {PENDING_WHERE}", params).fetchone()
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
        "failed_too_long": docs[7],
        "pending": pending[0],
        "ok_at_other_versions": docs[4],
        "stale_text": docs[5],
        "calls": calls[0],
        "prompt_tokens": int(calls[1]),
        "completion_tokens": int(calls[2]),
        "call_latency_s": round(float(calls[3]), 3),
    }


def coverage(
    con: duckdb.DuckDBPyConnection, corpus: str, task: str, task_version: str, sample: int
) -> tuple[int, list[str]]:
    params = {"corpus": corpus, "task": task, "version": task_version}
    row = con.execute(f"SELECT count(*) {MISSING_WHERE}", params).fetchone()
    ids = con.execute(
        f"SELECT d.doc_id {MISSING_WHERE} ORDER BY d.doc_id LIMIT {int(sample)}", params
    ).fetchall()
    return (row[0] if row else 0), [r[0] for r in ids]


def current_fields(
    con: duckdb.DuckDBPyConnection, corpus: str, task: str, task_version: str
) -> dict[str, dict[str, Any] | None]:
    rows = con.execute(
        """SELECT d.doc_id,
            CASE WHEN e.status = 'ok' AND e.content_hash = d.content_hash
                      AND e.task_version = $version THEN e.fields END
        FROM documents d LEFT JOIN extractions e
            ON e.corpus = d.corpus AND e.doc_id = d.doc_id AND e.task = $task
        WHERE d.corpus = $corpus AND NOT d.deleted ORDER BY d.doc_id""",
        {"corpus": corpus, "task": task, "version": task_version},
    ).fetchall()
    return {doc_id: None if fields is None else json.loads(fields) for doc_id, fields in rows}


def table_version(con: duckdb.DuckDBPyConnection, corpus: str, task: str) -> str:
    """A digest of the rows the task's typed view shows for one corpus (ok extractions of current
    texts, any task version): equal digests, equal rows."""
    row = con.execute(
        """SELECT count(*), coalesce(md5(string_agg(
                concat_ws(chr(31), e.doc_id, e.content_hash, e.task_version, e.model,
                          e.extracted_at::VARCHAR, e.fields::VARCHAR),
                chr(30) ORDER BY e.doc_id)), '')
        FROM extractions e JOIN documents d
            ON d.corpus = e.corpus AND d.doc_id = e.doc_id AND d.content_hash = e.content_hash
        WHERE e.corpus = $corpus AND e.task = $task AND e.status = 'ok' AND NOT d.deleted""",
        {"corpus": corpus, "task": task},
    ).fetchone()
    assert row is not None
    return f"{row[0]}-{row[1][:16]}" if row[0] else "empty"


def status_counts(con: duckdb.DuckDBPyConnection, corpus: str, task: str) -> dict[str, int]:
    row = con.execute(
        "SELECT count(*) FILTER (status = 'ok'), count(*) FILTER (status = 'failed') "
        "FROM extractions WHERE corpus = ? AND task = ?",
        [corpus, task],
    ).fetchone()
    assert row is not None
    return {"ok": int(row[0]), "failed": int(row[1])}


def extracted_in_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> int:
    row = con.execute(
        "SELECT count(*) FROM extractions WHERE list_contains(?, run_id)", [run_ids]
    ).fetchone()
    return int(row[0]) if row else 0


def extraction_rows(
    con: duckdb.DuckDBPyConnection, corpus: str, task: str
) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT doc_id, status, fields, run_id, content_hash, task_version, attempts, error "
        "FROM extractions WHERE corpus = ? AND task = ?",
        [corpus, task],
    ).fetchall()
    return {
        r[0]: {
            "status": r[1], "fields": json.loads(r[2]) if r[2] else None, "run_id": r[3],
            "content_hash": r[4], "task_version": r[5], "attempts": r[6], "error": r[7],
        }
        for r in rows
    }  # fmt: skip


def run_accounting(con: duckdb.DuckDBPyConnection, run_id: str, corpus: str) -> dict[str, Any]:
    key = {"run_id": run_id, "corpus": corpus}
    where = "WHERE run_id = $run_id AND corpus = $corpus"

    def ids(sql: str) -> list[str]:
        return sorted(r[0] for r in con.execute(sql, key).fetchall())

    def count(sql: str) -> int:
        row = con.execute(sql, key).fetchone()
        return int(row[0]) if row else 0

    sync = dict(
        con.execute(
            f"SELECT change, count(*) FROM changes {where} AND task IS NULL GROUP BY change", key
        ).fetchall()
    )
    calls = con.execute(
        f"SELECT count(*), coalesce(sum(ok_items + failed_items), 0) FROM calls {where}", key
    ).fetchone()
    assert calls is not None
    return {
        "sync": sync,
        "changed_ids": ids(f"SELECT doc_id FROM changes {where} AND change = 'changed'"),
        # Rows this run wrote, still current or replaced later in the same run.
        "extracted_ids": ids(
            f"SELECT doc_id FROM extractions {where} "
            f"UNION SELECT doc_id FROM extraction_history {where}"
        ),
        "replaced": count(
            "SELECT count(*) FROM extraction_history "
            "WHERE replaced_by_run_id = $run_id AND corpus = $corpus"
        ),
        "calls": int(calls[0]),
        "call_items": int(calls[1]),
        "field_changes": count(f"SELECT count(*) FROM changes {where} AND change = 're-extracted'"),
    }


@dataclass(frozen=True)
class MeasuredRuns:
    """What the latest runs of one backend, model, task and pack size did, per document."""

    items_per_min: float  # documents settled per minute of extraction wall time
    runs: int
    calls_per_first_call: float  # retries on top of the first pass: >= 1
    prompt_per_first_prompt: float  # input tokens of all calls / of the first-pass calls
    completion_per_item: float  # output tokens actually generated per document, retries included


def measured_runs(
    con: duckdb.DuckDBPyConnection,
    backend: str,
    model: str,
    task: str,
    items_per_call: int,
    runs: int = 5,
) -> MeasuredRuns | None:
    """Over the latest `runs` runs of this backend, model and task whose first-pass calls were
    mostly packs of `items_per_call`: documents per minute (wall time from the first call's
    start to the last call's end, per run and corpus: a run's gold check extracts its own
    pseudo-corpus after the corpus, and the time between is not extraction) and what retries
    added. A run's first pass is its calls at its lowest attempt number: each of its documents
    once. None when no such run is stored."""
    row = con.execute(
        """
        WITH c AS (
            SELECT *, coalesce(attempt, 1) AS att,
                   min(coalesce(attempt, 1)) OVER (PARTITION BY run_id, corpus) AS first_att
            FROM calls
            WHERE backend = $backend AND model = $model AND task = $task
              AND started_at IS NOT NULL AND call_id NOT LIKE 'nocall-%'
        ), per_run AS (
            SELECT run_id, corpus,
                   sum(ok_items + failed_items) FILTER (WHERE att = first_att) AS items,
                   count(*) AS calls,
                   count(*) FILTER (WHERE att = first_att) AS first_calls,
                   sum(coalesce(prompt_tokens, 0)) AS prompt,
                   sum(coalesce(prompt_tokens, 0)) FILTER (WHERE att = first_att) AS first_prompt,
                   sum(coalesce(completion_tokens, 0)) AS completion,
                   epoch(max(started_at + to_microseconds(CAST(latency_s * 1e6 AS BIGINT))))
                     - epoch(min(started_at)) AS wall_s,
                   median(pack_size) FILTER (WHERE att = first_att) AS pack,
                   max(started_at) AS last_call
            FROM c
            GROUP BY run_id, corpus
        ), recent AS (
            SELECT * FROM per_run WHERE pack = $n AND items > 0 AND wall_s > 0
            ORDER BY last_call DESC LIMIT $runs
        )
        SELECT sum(items) * 60.0 / sum(wall_s), count(*),
               sum(calls) / sum(first_calls),
               CASE WHEN sum(first_prompt) > 0 THEN sum(prompt) / sum(first_prompt) ELSE 1 END,
               sum(completion) / sum(items)
        FROM recent
        """,
        {"backend": backend, "model": model, "task": task, "n": items_per_call, "runs": runs},
    ).fetchone()
    if row is None or not row[1]:
        return None
    return MeasuredRuns(float(row[0]), int(row[1]), float(row[2]), float(row[3]), float(row[4]))
