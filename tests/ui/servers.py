"""A real `dagster-daemon` (and optionally `dagster-webserver`) on a temporary project, for end-to-end
tests: the processes a user starts with `make ui`, run from the repository root (the project in pyproject.toml),
with their own DAGSTER_HOME (a copy of the repo's dagster.yaml), store and source root.

Both run in their own process group (the daemon's code server and run workers included) and are always
terminated at exit; their logs are kept so a failing test can show their last lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dagster as dg

from extraction_assets.settings import SAMPLE_SOURCE_ROOT
from resources.store import DuckDBStore

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE_DOCUMENTS = SAMPLE_SOURCE_ROOT / "biographies" / "documents.jsonl"
ARTIFACTS = REPO_ROOT / "test-artifacts"
T = TypeVar("T")


# The UI's own backfill mutation (the Launchpad's "Launch backfill"), as the browser sends it.
LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_documents(n: int, max_chars: int = 400) -> list[dict]:
    """The first `n` short documents of the bundled sample (short keeps the CPU model's answers short)."""
    rows = [
        json.loads(line)
        for line in SAMPLE_DOCUMENTS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    short = [r for r in rows if len(r["text"]) <= max_chars]
    return short[:n]


def write_corpus(source_root: Path, corpus: str, documents: list[dict]) -> Path:
    """Write a corpus file atomically (a hidden temp file, then a rename), so the sensor never reads a
    half-written file; hidden files are ignored by the source reader."""
    folder = source_root / corpus
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".documents.jsonl.tmp"
    tmp.write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8"
    )
    os.replace(tmp, folder / "documents.jsonl")
    return folder


@dataclass
class DagsterProject:
    """A temporary project: its environment, DAGSTER_HOME, store, and the processes serving it."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    port: int | None = None

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def source_root(self) -> Path:
        return Path(self.env["EXTRACTION_SOURCE_ROOT"])

    @property
    def store_path(self) -> Path:
        return Path(self.env["EXTRACTION_HOME"]) / "store.duckdb"

    @property
    def url(self) -> str:
        assert self.port is not None, "no webserver started"
        return f"http://127.0.0.1:{self.port}"

    def instance(self) -> dg.DagsterInstance:
        """The same instance the daemon and webserver use (SQLite storage under DAGSTER_HOME)."""
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Read the store like any reader does: read-only, retrying while a run holds the write lock."""
        if not self.store_path.exists():
            return []
        with DuckDBStore(path=str(self.store_path)).connect(read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    # --- processes ------------------------------------------------------------------------------

    def start(self, name: str, argv: list[str]) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with log.open("ab") as out:
            self.processes[name] = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: code servers and run workers included
            )

    def start_daemon(self) -> None:
        self.start("daemon", [str(BIN / "dagster-daemon"), "run"])

    def start_webserver(self, timeout_s: float = 180) -> None:
        self.port = free_port()
        self.start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
        )
        wait_for(
            lambda: _answers(f"{self.url}/server_info"),
            timeout_s,
            "the webserver's /server_info",
            self,
        )

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 120) -> dict:
        """POST a GraphQL request to the webserver, as the UI does; its `data`, failing on `errors`."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def stop(self) -> None:
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Whatever is left of the group (a run worker that ignored SIGTERM) is killed.
            _signal_group(proc, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The last lines of each process log, plus whether it is still alive: for assertion messages."""
        parts = []
        for name, log in self.logs.items():
            proc = self.processes[name]
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            parts.append(
                f"--- {name} ({state}), last {lines} lines of {log}:\n" + "\n".join(text[-lines:])
            )
        return "\n".join(parts)

    # --- runs -----------------------------------------------------------------------------------

    def runs(self, corpus: str | None = None) -> list[dg.DagsterRun]:
        """Runs of the instance, oldest first; only `corpus`'s if given."""
        filters = dg.RunsFilter(tags={"dagster/partition": corpus}) if corpus else None
        with self.instance() as instance:
            records = instance.get_run_records(filters=filters)
        return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]

    def sensor_ticks(self, name: str) -> int:
        """How many times the daemon has evaluated sensor `name` so far."""
        with self.instance() as instance:
            states = [s for s in instance.all_instigator_state() if s.instigator_name == name]
            return sum(
                len(instance.get_ticks(s.instigator_origin_id, s.selector_id)) for s in states
            )

    def wait_for_run(self, run_id: str, timeout_s: float) -> dg.DagsterRun:
        """Wait until the run finished; fail with the run's errors and the processes' logs unless it succeeded."""

        def finished() -> dg.DagsterRun | None:
            with self.instance() as instance:
                run = instance.get_run_by_id(run_id)
            return run if run and run.is_finished else None

        run = wait_for(finished, timeout_s, f"run {run_id} to finish", self)
        if run.status != dg.DagsterRunStatus.SUCCESS:
            raise AssertionError(
                f"run {run_id} ended {run.status}:\n{self.run_errors(run_id)}\n{self.tail()}"
            )
        return run

    def run_errors(self, run_id: str) -> str:
        with self.instance() as instance:
            records = instance.all_logs(run_id)
        errors = [
            f"{r.step_key or ''}: {r.message} {r.dagster_event.event_specific_data if r.dagster_event else ''}"
            for r in records
            if r.level >= 40 or (r.dagster_event and r.dagster_event.is_failure)
        ]
        return "\n".join(errors[-10:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def wait_for(
    probe: Callable[[], T | bool | None],
    timeout_s: float,
    what: str,
    project: DagsterProject,
    every_s: float = 1.0,
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` with the processes' logs."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value  # type: ignore[return-value]
        for name, proc in project.processes.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited ({proc.returncode}) while waiting for {what}\n{project.tail()}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g} s waiting for {what}\n{project.tail()}"
            )
        time.sleep(every_s)


@contextmanager
def dagster_project(
    root: Path,
    llm_url: str,
    llm_model: str,
    automation: str,
    sensor_interval_s: int = 5,
    tasks: str = "biography",
) -> Iterator[DagsterProject]:
    """A temporary project under `root` (DAGSTER_HOME, EXTRACTION_HOME, sources); processes started on it
    with `start_daemon` / `start_webserver` are terminated on exit, whatever happened. `tasks` is
    EXTRACTION_TASKS: the default task, or e.g. tests.pipeline.helpers.SHORT_TASK (an absolute spec
    path, so the daemon's code server and run workers find it) for tests of mechanics only."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    (root / "sources").mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EXTRACTION_HOME": str(root / "extraction_home"),
        "EXTRACTION_SOURCE_ROOT": str(root / "sources"),
        "EXTRACTION_TASKS": tasks,
        "LLM_BACKEND": "vllm",
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": llm_model,
        "EXTRACTION_SENSOR_INTERVAL_S": str(sensor_interval_s),
        "EXTRACTION_AUTOMATION_DEFAULT": automation,
        "PYTHONUNBUFFERED": "1",
    }
    for var in ("EXTRACTION_DB", "EXTRACTION_EXPORT_DIR", "LLM_API_KEY", "OPENAI_API_KEY"):
        env.pop(var, None)
    project = DagsterProject(root=root, env=env)
    # Create the SQLite storages before any process starts: the daemon and a test opening the instance
    # at the same moment both stamp the schema version, which breaks every later open.
    with project.instance():
        pass
    try:
        yield project
    finally:
        project.stop()
