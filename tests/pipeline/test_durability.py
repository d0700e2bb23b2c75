"""Durability against real concurrent writers: two corpora extracted by two runs in two processes at
the same time, against one DuckDB file, both succeed: the store's short-transaction design, not luck.

(A run SIGKILLed mid-extraction against the real server, then resumed: tests/reliability/
test_kill_loop.py, which kills three times and also counts the calls lost.)
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_two_corpora_extracted_by_concurrent_runs(tmp_path, monkeypatch, vllm_url, vllm_model):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    docs = read_jsonl(SAMPLE_CORPUS)
    write_jsonl(settings.source_root / "left" / "documents.jsonl", docs[:3])
    write_jsonl(settings.source_root / "right" / "documents.jsonl", docs[3:6])
    # No endpoint pool: the two runs must extract (and write) at the same time, not one after the
    # other as the pool's default limit of 1 would have them.
    env = {**os.environ, "EXTRACTION_LLM_POOL": "none"}
    procs = [
        subprocess.Popen(
            _run_cmd(c, items_per_call=1, max_concurrency=2),
            cwd=ROOT,
            env=env,
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
    assert per_corpus == {"left": 3, "right": 3}
    assert calls == 2
