"""The local cluster of `scripts/cluster` for tests: started on free ports in its own folder, talked
to as a user does (GraphQL on the webserver, the instance on PostgreSQL, the lake read-only), and
stopped, whatever happened.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dagster as dg

from extraction_assets.serve import free_port
from resources.store import DuckDBStore
from tests.ui.servers import LAUNCH_BACKFILL

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "cluster"
T = TypeVar("T")
REPOSITORY = {"repositoryLocationName": "extraction_assets", "repositoryName": "__repository__"}
LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""


@dataclass
class Cluster:
    dir: Path
    env: dict[str, str]  # what scripts/cluster was started with
    shared: dict[str, str]  # what every machine shares (scripts/cluster env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['CLUSTER_UI_PORT']}"

    @property
    def source_root(self) -> Path:
        return Path(self.shared["EXTRACTION_SOURCE_ROOT"])

    @property
    def ports(self) -> list[int]:
        return [
            int(self.env[k]) for k in ("CLUSTER_PG_PORT", "CLUSTER_REDIS_PORT", "CLUSTER_UI_PORT")
        ]

    def script(
        self, action: str, timeout_s: float = 900, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), action], env={**self.env, **env}, capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip

    def restart_workers(self, **env: str) -> None:
        """Stop the workers (a warm shutdown: they are idle) and start them again with `env`."""
        for pidfile in (self.dir / "run").glob("worker*.pid"):
            group = int(pidfile.read_text())
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        started = self.script("start", **env)
        assert started.returncode == 0, f"{started.stderr}\n{self.tail()}"

    def instance(self) -> dg.DagsterInstance:
        """The head's instance (its storage on the cluster's PostgreSQL)."""
        return dg.DagsterInstance.from_config(str(self.dir / "head" / "dagster_home"))

    def store(self) -> DuckDBStore:
        return DuckDBStore(
            path=self.shared["EXTRACTION_STORE"], data_path=self.shared["EXTRACTION_LAKE_DATA_PATH"]
        )

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.store().connect(read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def pid(self, name: str) -> int:
        return int((self.dir / "run" / f"{name}.pid").read_text())

    def kill(self, name: str) -> None:
        """SIGKILL a process of the cluster with everything it started (a machine lost)."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid(name), signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        parts = []
        for log in sorted((self.dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            parts.append(f"--- {log.name}, last {lines} lines:\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    # --- GraphQL, as the UI -------------------------------------------------------------------

    def graphql(self, query: str, variables: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch_run(self, corpus: str, run_config: dict | None = None) -> str:
        """One run of `extract_corpus` for a corpus, launched as the UI's launchpad does."""
        result = self.graphql(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {**REPOSITORY, "jobName": "extract_corpus"},
                    "runConfigData": run_config or {},
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": corpus}]},
                }
            },
        )["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return str(result["run"]["runId"])

    def launch_backfill(self, corpora: list[str]) -> str:
        result = self.graphql(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "selector": {
                        "repositorySelector": REPOSITORY,
                        "partitionSetName": "extract_corpus_partition_set",
                    },
                    "partitionNames": corpora,
                }
            },
        )["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return str(result["backfillId"])

    # --- runs ---------------------------------------------------------------------------------

    def runs(self, tags: dict[str, str]) -> list[dg.RunRecord]:
        with self.instance() as instance:
            records = instance.get_run_records(filters=dg.RunsFilter(tags=tags))
        return sorted(records, key=lambda r: r.create_timestamp)

    def wait_for_runs(
        self, tags: dict[str, str], count: int, timeout_s: float
    ) -> list[dg.RunRecord]:
        """Wait until `count` runs with these tags finished; fail unless all succeeded."""

        def finished() -> list[dg.RunRecord] | None:
            records = self.runs(tags)
            done = len(records) >= count and all(r.dagster_run.is_finished for r in records)
            return records if done else None

        records = wait_for(finished, timeout_s, f"{count} runs tagged {tags}", self, every_s=3)
        failed = [r for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, (
            "\n".join(
                f"{r.dagster_run.run_id} {r.dagster_run.status}: {self.run_errors(r.dagster_run.run_id)}"
                for r in failed
            )
            + "\n"
            + self.tail()
        )
        return records

    def run_errors(self, run_id: str) -> str:
        with self.instance() as instance:
            records = instance.all_logs(run_id)
        lines = []
        for r in records:
            event = r.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            if r.level >= 40 or (event and event.is_failure) or error is not None:
                # The error's own text: "An exception was thrown during execution" says nothing.
                detail = error.to_string() if error is not None else ""
                lines.append(f"{r.step_key or ''}: {r.message}\n{detail}")
        return "\n".join(lines)[-6000:]

    def step_workers(self, run_id: str) -> dict[str, list[str]]:
        """Which Celery workers executed each step of a run, in the order they took it
        (dagster_celery's engine events)."""
        out: dict[str, list[str]] = {}
        with self.instance() as instance:
            records = instance.all_logs(run_id)
        for r in sorted(records, key=lambda r: r.timestamp):
            event = r.dagster_event
            if event is None or not event.is_engine_event or "in celery worker" not in r.message:
                continue
            data = event.event_specific_data
            metadata = getattr(data, "metadata", None) or {}
            worker = metadata.get("Celery worker")
            if worker is not None and r.step_key:
                took = out.setdefault(r.step_key, [])
                name = str(getattr(worker, "value", worker))
                if name not in took:
                    took.append(name)
        return out

    def messages(self, run_id: str) -> list[str]:
        with self.instance() as instance:
            return [r.message for r in instance.all_logs(run_id)]


def wait_for(
    probe: Callable[[], T | bool | None], timeout_s: float, what: str, cluster: Cluster,
    every_s: float = 1.0,
) -> T:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g} s waiting for {what}\n{cluster.tail()}"
            )
        time.sleep(every_s)


def write_corpus(source_root: Path, corpus: str, documents: list[dict]) -> None:
    folder = source_root / corpus
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".documents.jsonl.tmp"
    tmp.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    os.replace(tmp, folder / "documents.jsonl")


def processes_under(folder: Path) -> list[str]:
    """Live processes whose command line names `folder` (PostgreSQL's data dir, a worker's...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(folder) in cmdline:
                found.append(f"{proc.name}: {cmdline.strip()}")
    return found


@contextmanager
def local_cluster(
    llm_url: str, llm_model: str, tasks: str = "biography", **extra: str
) -> Iterator[Cluster]:
    """`scripts/cluster start` with two workers and no vLLM of its own (the given server stands for
    the replicas), `stop` at exit. `tasks` is EXTRACTION_TASKS (a spec file by absolute path: the
    workers run in folders of their own)."""
    # Under /tmp: PostgreSQL runs as `postgres`, who cannot enter root's private pytest folders.
    folder = Path(tempfile.mkdtemp(prefix="extraction-cluster-"))
    (folder / "sources").mkdir()
    env = {
        **os.environ,
        "EXTRACTION_CLUSTER_DIR": str(folder),
        "PYTHON": sys.executable,
        "CLUSTER_WORKERS": "2",
        "CLUSTER_VLLM": "0",
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": llm_model,
        "LLM_BACKEND": "vllm",
        "CLUSTER_PG_PORT": str(free_port()),
        "CLUSTER_REDIS_PORT": str(free_port()),
        "CLUSTER_UI_PORT": str(free_port()),
        "EXTRACTION_SOURCE_ROOT": str(folder / "sources"),
        "EXTRACTION_TASKS": tasks,
        "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
        "EXTRACTION_GOLD_SAMPLE": "none",
        **extra,
    }
    for var in ("EXTRACTION_HOME", "DAGSTER_HOME", "EXTRACTION_DB", "EXTRACTION_STORE",
                "EXTRACTION_EXPORT_DIR", "LLM_API_KEY", "OPENAI_API_KEY"):  # fmt: skip
        env.pop(var, None)
    cluster = Cluster(dir=folder, env=env, shared={})
    try:
        started = cluster.script("start")
        if started.returncode != 0:
            raise AssertionError(
                f"scripts/cluster start failed:\n{started.stderr}\n{cluster.tail()}"
            )
        shared = cluster.script("env").stdout
        cluster.shared = {
            k.removeprefix("export "): shlex.split(v)[0]
            for k, _, v in (line.partition("=") for line in shared.splitlines() if "=" in line)
        }
        yield cluster
    finally:
        cluster.script("stop", timeout_s=300)
        # Failures carry the logs' tails (Cluster.tail); the folder itself is not kept.
        shutil.rmtree(folder, ignore_errors=True)
