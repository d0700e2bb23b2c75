"""The main job on the embedded default: local vLLM on CPU, the bundled sample corpus, a real instance.

`python -m extraction_assets demo` (what `make demo` runs):
1. makes sure an LLM server answers (starts the embedded local vLLM server unless LLM_BASE_URL is set),
2. registers a partition per corpus under the source root in a persistent Dagster instance,
3. runs the `extract_corpus` job for each corpus (so the runs are visible in the UI afterwards),
4. prints a summary of the typed table and where the DuckDB file is.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from extraction_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def prepare_dagster_home(home: Path) -> Path:
    """A persistent DAGSTER_HOME holding the project's dagster.yaml (the UI then shows the demo's runs)."""
    dagster_home = Path(os.environ.get("DAGSTER_HOME", home / "dagster_home")).resolve()
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


def ensure_server() -> str:
    """The URL of a server that answers; starts the embedded one when none is configured."""
    from extraction_assets import serve

    if os.environ.get("LLM_BASE_URL") or os.environ.get("LLM_BACKEND", "vllm") != "vllm":
        return os.environ.get("LLM_BASE_URL", "(backend default)")
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


def run_corpora(
    settings: Settings, corpora: list[str] | None = None, run_config: dict | None = None
) -> tuple[list[str], list[str], bool]:
    """Run the `extract_corpus` job for each corpus on the persistent instance: (corpora, run ids, ok)."""
    # Imported after the environment is settled: the definitions read it.
    from extraction_assets.corpora.partitions import corpus_partitions
    from extraction_assets.corpora.sources import list_corpora
    from extraction_assets.definitions import build_definitions

    defs = build_definitions(settings)
    corpora = corpora or list_corpora(settings.source_root)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(corpus_partitions.name, corpora)
    job = defs.resolve_job_def("extract_corpus")
    ok = True
    run_ids = []
    for corpus in corpora:
        print(f"\n== corpus {corpus!r}: running job extract_corpus ==", flush=True)
        result = job.execute_in_process(
            instance=instance, partition_key=corpus, run_config=run_config, raise_on_error=False
        )
        ok &= result.success
        run_ids.append(result.run_id)
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}", flush=True)
    return corpora, run_ids, ok


def main(args: argparse.Namespace | None = None) -> int:
    """`demo`: the embedded server, every corpus under the source root, a summary."""
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    dagster_home = prepare_dagster_home(settings.home)
    url = ensure_server()
    os.environ.setdefault("LLM_BASE_URL", url)
    t0 = time.monotonic()
    corpora, run_ids, ok = run_corpora(settings)
    if not corpora:
        print(f"no corpus folders under {settings.source_root}", file=sys.stderr)
        return 1
    print_summary(settings, corpora, run_ids, time.monotonic() - t0)
    print(f"\nDagster instance: DAGSTER_HOME={dagster_home}")
    print("Open the UI on it:  make ui   (then http://127.0.0.1:3000)")
    return 0 if ok else 1


def run_main(args: argparse.Namespace) -> int:
    """`run`: the job for the given corpora (default all) against the configured server, no server start."""
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home(settings.home)
    ops = {
        f"{task}_extractions": {
            "config": {
                "items_per_call": args.items_per_call,
                "max_concurrency": args.max_concurrency,
                "isolate_suspicious": args.isolate_suspicious,
            }
        }
        for task in settings.tasks
    }
    t0 = time.monotonic()
    corpora, run_ids, ok = run_corpora(settings, args.corpus or None, {"ops": ops})
    print_summary(settings, corpora, run_ids, time.monotonic() - t0)
    return 0 if ok else 1


def print_summary(
    settings: Settings, corpora: list[str], run_ids: list[str], elapsed_s: float
) -> None:
    """Rows, failures and this invocation's items/min, read back from the store."""
    from extraction_assets.tasks import get_task
    from resources.store import DuckDBStore

    store = DuckDBStore(path=str(settings.store_path))
    views = {t: store.ensure_task_view(t, get_task(t).item_model) for t in settings.tasks}
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
    print(f"DuckDB file: {settings.store_path}")
