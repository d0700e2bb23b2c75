"""Shared machinery of the reliability tests and `benchmarks/reliability.py`.

- `RecordingProxy`: a transparent HTTP proxy in front of an OpenAI-compatible server (the real vLLM
  server or the fault-injecting fake). It forwards every request unchanged and logs, per request,
  the pack ids and when the *server* completed it, even when the client was killed meanwhile.
  That log against the store's `calls` table is how lost work is measured.
- CLI helpers: the product's `python -m extraction_assets run` in a subprocess, with a project
  environment in a temp folder.
- Store snapshots read with a lock retry (the CLI may be writing).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from aiohttp import ClientError, ClientSession, ClientTimeout, web

ROOT = Path(__file__).resolve().parents[2]


# --- the recording proxy ---------------------------------------------------------------------
@dataclass
class ProxiedCall:
    index: int
    ids: list[str]
    started: float
    completed: float | None = None  # when the upstream server's answer arrived
    status: int | None = None
    authorization: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None  # the answer's message content, when there was one


@dataclass
class RecordingProxy:
    upstream: str  # e.g. http://127.0.0.1:8000/v1
    calls: list[ProxiedCall] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def completed(self, since: int = 0) -> list[ProxiedCall]:
        with self._lock:
            return [c for c in self.calls[since:] if c.completed is not None and c.status == 200]

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        path = request.match_info["tail"]
        body: dict[str, Any] = {}
        ids: list[str] = []
        if request.method == "POST" and raw:
            try:
                body = json.loads(raw)
                schema = (body.get("extra_body") or body).get("structured_outputs", {}).get(
                    "json"
                ) or body.get("response_format", {}).get("json_schema", {}).get("schema", {})
                ids = list((schema or {}).get("properties", {}))
            except (ValueError, AttributeError):
                pass
        record = None
        if path.endswith("chat/completions"):
            with self._lock:
                record = ProxiedCall(
                    len(self.calls),
                    ids,
                    time.time(),
                    authorization=request.headers.get("Authorization"),
                    body=body,
                )
                self.calls.append(record)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "authorization")
        }
        try:
            async with self._session.request(
                request.method, f"{self.upstream}/{path}", data=raw, headers=headers
            ) as upstream:
                data = await upstream.read()
                status, content_type = upstream.status, upstream.content_type
        except (TimeoutError, OSError, ClientError) as exc:  # upstream down: a 502
            if record is not None:
                record.completed, record.status = time.time(), 502
            return web.Response(status=502, text=f"upstream: {type(exc).__name__}")
        if record is not None:
            record.status = status
            record.completed = time.time()
            try:
                record.answer = json.loads(data)["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                record.answer = None
        return web.Response(
            status=status, body=data, content_type=content_type or "application/json"
        )

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def setup() -> web.AppRunner:
            self._session = ClientSession(timeout=ClientTimeout(total=900))
            app = web.Application(client_max_size=256 * 1024 * 1024)
            app.router.add_route("*", "/v1/{tail:.*}", self._forward)
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            return runner

        runner = loop.run_until_complete(setup())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._session.close())
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> RecordingProxy:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recording proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


# --- a project environment and the CLI -------------------------------------------------------
@dataclass
class CliProject:
    workdir: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return Path(self.env["EXTRACTION_DB"])

    @property
    def source_root(self) -> Path:
        return Path(self.env["EXTRACTION_SOURCE_ROOT"])

    def cmd(self, *corpora: str, items_per_call: int = 2, max_concurrency: int = 2) -> list[str]:
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

    def popen(self, *corpora: str, log: Path | None = None, **kw: int) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            return subprocess.Popen(
                self.cmd(*corpora, **kw),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log:
                out.close()

    def run(self, *corpora: str, timeout: float = 600, **kw: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.cmd(*corpora, **kw),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def cli_project(
    workdir: Path, llm_url: str, model: str, tasks: str = "biography", **extra: str
) -> CliProject:
    home = workdir / "home"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LLM_", "EXTRACTION_", "DAGSTER_")) and k != "OPENAI_API_KEY"
        },
        "EXTRACTION_HOME": str(home),
        "EXTRACTION_DB": str(home / "store.duckdb"),
        "EXTRACTION_SOURCE_ROOT": str(workdir / "sources"),
        "EXTRACTION_TASKS": tasks,
        "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
        "EXTRACTION_GOLD_SAMPLE": "none",  # no gold documents in these counts (tests/conftest.py)
        # A run that lost its server fails at once (these tests kill servers on purpose; Dagster's
        # own retries of the step are tested in tests/pipeline/test_retries.py).
        "EXTRACTION_SERVER_RETRIES": "0",
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "LLM_BACKEND": "vllm",
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": model,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    (workdir / "sources").mkdir(parents=True, exist_ok=True)
    return CliProject(workdir, env)


def write_corpus(root: Path, corpus: str, docs: list[dict], name: str = "documents.jsonl") -> Path:
    path = root / corpus / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8"
    )
    return path


def short_docs(n: int, prefix: str = "doc") -> list[dict]:
    """Tiny biographical texts (short answers: cheap on the CPU server)."""
    names = ["Ahmad", "Layla", "Yusuf", "Maryam", "Omar", "Fatima", "Khalid", "Zaynab"]
    return [
        {
            "id": f"{prefix}{i:04d}",
            "text": f"{names[i % len(names)]} ibn {names[(i + 3) % len(names)]} died in {900 + i}.",
        }
        for i in range(n)
    ]


# --- reading the store -----------------------------------------------------------------------
def query(
    db: Path, sql: str, params: list | None = None, timeout_s: float = 30, schema_wait_s: float = 2
) -> list[tuple]:
    """Rows from a read-only connection, retrying while a writer holds the file.

    A missing table is retried for `schema_wait_s` (the CLI may be creating the schema right
    now), then raised: read as "no rows" it would let a renamed table pass every count of zero.
    """
    started = time.monotonic()
    while True:
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                return con.execute(sql, params or []).fetchall()
        except duckdb.IOException:
            if time.monotonic() - started > timeout_s:
                raise
        except duckdb.CatalogException:
            if time.monotonic() - started > schema_wait_s:
                raise
        time.sleep(0.05)


def store_tables(db: Path) -> set[str]:
    """The store's table names; empty while the file or its schema does not exist yet."""
    if not db.exists():
        return set()
    return {r[0] for r in query(db, "SELECT table_name FROM duckdb_tables()")}


@dataclass
class StoreSnapshot:
    rows: dict[str, tuple]  # doc_id -> (status, fields, task_version, extracted_at, content_hash)
    calls: int
    history: int  # replaced ok rows
    duplicates: int  # doc ids present more than once in extractions (must be 0)

    @property
    def versions(self) -> set[str]:
        return {r[2] for r in self.rows.values()}


def snapshot(db: Path, corpus: str) -> StoreSnapshot:
    """The corpus's rows and counts; empty before the store has any table, an error when one of
    the tables read here is missing from a store that has others."""
    if not store_tables(db):
        return StoreSnapshot({}, 0, 0, 0)
    rows = query(
        db,
        "SELECT doc_id, status, fields, task_version, extracted_at, content_hash "
        "FROM extractions WHERE corpus = ?",
        [corpus],
    )
    ((calls,),) = query(db, "SELECT count(*) FROM calls WHERE corpus = ?", [corpus])
    # An ok row replaced = finished work done again (failed rows are legitimately retried).
    ((history,),) = query(
        db, "SELECT count(*) FROM extraction_history WHERE corpus = ? AND status = 'ok'", [corpus]
    )
    ids = [r[0] for r in rows]
    return StoreSnapshot(
        {r[0]: tuple(r[1:]) for r in rows}, calls, history, len(ids) - len(set(ids))
    )


def wait_for(
    predicate,
    timeout_s: float,
    proc: subprocess.Popen | None = None,  # type: ignore[no-untyped-def]
    interval_s: float = 0.05,
) -> bool:
    """Poll until predicate() is true; False on timeout or when proc exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(predicate())
        time.sleep(interval_s)
    return False
