"""Durability against real process deaths and real concurrent writers.

A run killed with SIGKILL mid-extraction keeps every finished call and the next run finishes the rest
(every document exactly once at the current version). Two corpora extracted by two runs in two processes
at the same time, against one DuckDB file, both succeed: the store's short-transaction design, not luck.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.pipeline.helpers import SAMPLE_CORPUS, make_project, read_jsonl, write_jsonl

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).resolve().parents[2]


def _run_cmd(*corpora: str, items_per_call: int, max_concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "extraction_assets",
        "run",
        *corpora,
        "--items-per-call",
        str(items_per_call),
        "--max-concurrency",
        str(max_concurrency),
    ]


def _count(db: Path, sql: str, params: list | None = None) -> int:
    if not db.exists():
        return 0
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute(sql, params or []).fetchone()[0]
    except duckdb.Error:
        return -1  # a writer holds the lock right now


def test_killed_run_resumes_without_duplicates_or_lost_work(
    tmp_path, monkeypatch, vllm_url, vllm_model
):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    docs = read_jsonl(SAMPLE_CORPUS)[:10]
    write_jsonl(settings.source_root / "kill" / "documents.jsonl", docs)
    db = settings.store_path

    proc = subprocess.Popen(
        _run_cmd("kill", items_per_call=2, max_concurrency=1),
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    # Wait for a stored extraction, not a stored call: a finished call can store no extraction
    # (both items of the pack flagged and queued to run alone, or both failed and retried).
    while _count(db, "SELECT count(*) FROM extractions") < 1:
        assert proc.poll() is None, "the run ended before any extraction was stored"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # a real kill, mid-extraction: more packs are still pending
    proc.wait()
    done_before = _count(db, "SELECT count(*) FROM extractions")
    assert 0 < done_before < len(docs), "killed mid-run: some but not all documents stored"

    resumed = subprocess.run(
        _run_cmd("kill", items_per_call=2, max_concurrency=2),
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT doc_id, count(*) FROM extractions WHERE corpus = 'kill' GROUP BY doc_id"
        ).fetchall()
        versions = con.execute("SELECT count(DISTINCT task_version) FROM extractions").fetchone()[0]
        redone = con.execute("SELECT count(*) FROM extraction_history").fetchone()[0]
    assert sorted(r[0] for r in rows) == sorted(d["id"] for d in docs)
    assert all(n == 1 for _, n in rows)
    assert versions == 1
    assert redone == 0, "finished work from before the kill was not extracted again"


def test_two_corpora_extracted_by_concurrent_runs(tmp_path, monkeypatch, vllm_url, vllm_model):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    docs = read_jsonl(SAMPLE_CORPUS)
    write_jsonl(settings.source_root / "left" / "documents.jsonl", docs[:4])
    write_jsonl(settings.source_root / "right" / "documents.jsonl", docs[4:8])
    procs = [
        subprocess.Popen(
            _run_cmd(c, items_per_call=1, max_concurrency=2),
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for c in ("left", "right")
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]
        assert "lock" not in out.lower() or "StoreLockedError" not in out
    with duckdb.connect(str(settings.store_path), read_only=True) as con:
        per_corpus = dict(
            con.execute("SELECT corpus, count(*) FROM extractions GROUP BY corpus").fetchall()
        )
        calls = con.execute("SELECT count(DISTINCT run_id) FROM calls").fetchone()[0]
    assert per_corpus == {"left": 4, "right": 4}
    assert calls == 2
