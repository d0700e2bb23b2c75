"""`extraction run`: the `extract_corpus` job for corpora on a persistent instance, and its summary.

Runs go through Dagster (`execute_in_process` on `$DAGSTER_HOME`, by default
`$EXTRACTION_HOME/dagster_home`), so they show in the UI afterwards like any other run.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from extraction_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Which process ran an in-process run: its pool slots are freed once that process is gone.
HOST_TAG = "extraction/host"
PROCESS_TAG = "extraction/process"  # "<pid>:<start time>" (a reused pid is another process)


def prepare_dagster_home(settings: Settings) -> Path:
    """A persistent DAGSTER_HOME holding the project's dagster.yaml (the UI then shows the runs)."""
    dagster_home = settings.dagster_home or settings.home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    if source.exists() and not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(source, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    # Two CLI runs starting on a fresh DAGSTER_HOME would race creating its SQLite schema: the first
    # one creates it under a file lock, the others find it made.
    with open(dagster_home / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
    return dagster_home


def ensure_server(settings: Settings) -> str:
    """The URL of a server that answers; starts the embedded one when none is configured."""
    from extraction_assets import serve

    if settings.llm.base_url or settings.llm.backend != "vllm":
        return settings.llm.base_url or "(backend default)"
    status = serve.server_status()
    if status.running and status.ready and status.url:
        print(f"using the running local server {status.url} ({status.model})")
        return status.url
    print(
        "starting the embedded vLLM server (CPU build, SmolLM2-135M-Instruct); ~1 min ...",
        flush=True,
    )
    handle = serve.start_server(serve.ServerConfig())
    print(f"server ready: {handle.url} (log: {handle.log_path})")
    return handle.url


def _start_time(pid: int) -> str | None:
    """The process's start time (Linux /proc, in clock ticks since boot); None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process_key(pid: int) -> str:
    return f"{pid}:{_start_time(pid) or ''}"


def _process_alive(key: str) -> bool:
    pid, _, started = key.partition(":")
    if not Path("/proc").is_dir():  # no /proc: the pid alone
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            return True
        return True
    return _start_time(int(pid)) == started


def run_tags() -> dict[str, str]:
    """Tags naming this process on the runs it executes in-process."""
    return {HOST_TAG: socket.gethostname(), PROCESS_TAG: _process_key(os.getpid())}


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Frees the pool slots still held by runs of `extraction run` processes of this host that
    died (SIGKILL, out of memory): the ids of those runs.

    An in-process run has no run monitoring: a slot its dead process held (the LLM endpoint's
    pool, extractions/capacity.py) would stay claimed, and every later extraction against that
    server would wait for it forever."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    run_ids = storage.get_concurrency_run_ids()
    if not run_ids:
        return []
    host = socket.gethostname()
    freed = []
    for run in instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(run_ids))):
        key = run.tags.get(PROCESS_TAG)
        if run.tags.get(HOST_TAG) != host or not key or _process_alive(key):
            continue
        storage.free_concurrency_slots_for_run(run.run_id)
        freed.append(run.run_id)
    return freed


@contextmanager
def keeping_pools(instance: dg.DagsterInstance, interval_s: float = 2.0) -> Iterator[None]:
    """While the block runs, every `interval_s`: free the slots of dead `extraction run`
    processes and hand free slots to stranded steps (`capacity.assign_stranded_steps`), this
    run's or another's. In-process runs have no daemon doing it for them (its `pool_keeper`
    sensor does it for the runs it launches)."""
    from extraction_assets.extractions.capacity import assign_stranded_steps

    done = threading.Event()

    def keep() -> None:  # the SQL storages open a connection per call: safe beside the run
        while not done.wait(interval_s):
            for run_id in release_dead_runs(instance):
                print(f"freed the pool slots of run {run_id} (its process is gone)", flush=True)
            for pool in assign_stranded_steps(instance):
                print(f"pool {pool}: a free slot handed to a waiting step", flush=True)

    keeper = threading.Thread(target=keep, name="pool-keeper", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()


def run_corpora(
    settings: Settings, corpora: list[str] | None = None, run_config: dict[str, Any] | None = None
) -> tuple[list[str], list[str], bool]:
    """Run the `extract_corpus` job for each corpus on the persistent instance: (corpora, run ids, ok)."""
    # Imported here: the definitions pull in the whole engine.
    from extraction_assets.corpora.partitions import CORPORA
    from extraction_assets.corpora.sources import list_corpora
    from extraction_assets.project import build_definitions

    defs = build_definitions(settings)
    corpora = corpora or list_corpora(settings.source_root)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(CORPORA, corpora)
    job = defs.resolve_job_def("extract_corpus")
    for run_id in release_dead_runs(instance):
        print(f"freed the pool slots of run {run_id} (its process is gone)", flush=True)
    ok = True
    run_ids = []
    for corpus in corpora:
        print(f"\n== corpus {corpus!r}: running job extract_corpus ==", flush=True)
        with keeping_pools(instance):
            result = job.execute_in_process(
                instance=instance,
                partition_key=corpus,
                run_config=run_config,
                raise_on_error=False,
                tags=run_tags(),
            )
        ok &= result.success
        run_ids.append(result.run_id)
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}", flush=True)
    return corpora, run_ids, ok


def recipe_config(
    settings: Settings,
    items_per_call: int | str | None,
    max_concurrency: int | str | None,
    isolate: bool,
) -> dict[str, Any]:
    """The run config that sets the recipe of every task's extraction step (None: the step's own
    default, written once in `extractions.run.Recipe`)."""
    from extraction_assets.tasks import load_task

    given = {
        "items_per_call": items_per_call,
        "max_concurrency": max_concurrency,
        "isolate_suspicious": isolate,
    }
    config = {k: v for k, v in given.items() if v is not None}
    return {
        "ops": {f"{load_task(ref).name}_extractions": {"config": config} for ref in settings.tasks}
    }


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: the job for the given corpora (default all) against the configured server."""
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home(settings)
    run_config = recipe_config(
        settings, args.items_per_call, args.max_concurrency, args.isolate_suspicious
    )
    t0 = time.monotonic()
    corpora, run_ids, ok = run_corpora(settings, args.corpus or None, run_config)
    print_summary(settings, corpora, run_ids, time.monotonic() - t0)
    return 0 if ok else 1


def print_summary(
    settings: Settings, corpora: list[str], run_ids: list[str], elapsed_s: float
) -> None:
    """Rows, failures and this invocation's items/min, read back from the store."""
    from extraction_assets.tasks import load_task
    from resources.store import DuckDBStore

    store = DuckDBStore.from_settings(settings)
    tasks = [load_task(ref) for ref in settings.tasks]
    views = {t.name: store.ensure_task_view(t.name, t.item_model) for t in tasks}
    print("\n== summary ==")
    for task_name, view in views.items():
        for corpus in corpora:
            counts = store.status_counts(corpus, task_name)
            rows = store.view_rows(task_name, corpus)
            print(
                f"task {task_name}, corpus {corpus}: {rows} rows in view {view}; "
                f"{counts['ok']} ok, {counts['failed']} failed"
            )
    done = store.extracted_in_runs(run_ids)
    rate = done / (elapsed_s / 60) if elapsed_s > 0 else 0.0
    print(f"this run: {done} documents extracted in {elapsed_s:.0f} s ({rate:.1f} items/min)")
    print(f"store: {store.location}")


def _int_or_auto(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not a number or "auto"') from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be at least 1")
    return number


def add_command(sub: Any) -> None:
    run_p = sub.add_parser(
        "run",
        help="extract corpora through the Dagster job (default: every corpus)",
        description="Run the extract_corpus job for each corpus (a folder under "
        "EXTRACTION_SOURCE_ROOT) with the tasks in EXTRACTION_TASKS, on the persistent Dagster "
        "instance ($DAGSTER_HOME, default $EXTRACTION_HOME/dagster_home), against the configured "
        "LLM (LLM_BACKEND, LLM_BASE_URL, LLM_MODEL); then print a summary. Only pending documents "
        "are extracted: an unchanged corpus costs no LLM call.",
    )
    run_p.add_argument("corpus", nargs="*", help="corpus (partition) names (default: all)")
    run_p.add_argument(
        "--items-per-call",
        type=_int_or_auto,
        default=None,
        help='documents per request, or "auto" (default: auto, 1 on vLLM, packs on Ollama/OpenAI)',
    )
    run_p.add_argument(
        "--max-concurrency",
        type=_int_or_auto,
        default=None,
        help='requests in flight, or "auto" (default: auto, up to 64 on vLLM, bounded by its KV '
        "cache)",
    )
    run_p.add_argument(
        "--no-isolate-suspicious",
        dest="isolate_suspicious",
        action="store_false",
        help="keep pack answers that borrow from a pack-mate (default: re-run those items alone)",
    )
    run_p.set_defaults(func=cmd_run)
