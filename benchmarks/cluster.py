"""One Celery worker vs two, and the local store vs the lake, end to end against the same server.

1. Workers: `scripts/cluster start` with 1, then 2 workers, against --replicas vLLM replicas the
   cluster starts (CPU build, small KV cache), or with --replicas 0 the server at --llm-url
   standing for them; CORPORA synthetic corpora of DOCS documents each
   (`benchmarks/synthetic_biographies.py`), one backfill of all of them launched as the UI does;
   the wall time from the launch to the last run's end, and documents per minute.
2. Stores: `extraction run` (one machine, in-process) on one synthetic corpus, with a fresh local
   DuckDB store, then with a fresh DuckLake store (scripts/postgres); wall time and documents/min.

Prints a Markdown table; with --write, writes benchmarks/results/cluster.md (with the commit, the
command and the machine's load average before each measurement).

    .venv/bin/python benchmarks/cluster.py --llm-url http://127.0.0.1:8000/v1 --corpora 4 --docs 8 --write
    .venv/bin/python benchmarks/cluster.py --replicas 2 --workers 2 --corpora 4 --docs 8   # own replicas
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction_assets.extractions.capacity import endpoint_pool  # noqa: E402
from tests.cluster.harness import local_cluster  # noqa: E402
from tests.postgres import create_database, postgres_server  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cluster.md"


def served_model(url: str) -> str:
    with urllib.request.urlopen(f"{url.rstrip('/')}/models", timeout=10) as response:
        return str(json.loads(response.read())["data"][0]["id"])


def synthetic(root: Path, corpus: str, docs: int, seed: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "benchmarks.synthetic_biographies", str(root), str(docs),
         "--corpus", corpus, "--seed", str(seed)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def workers_case(
    url: str, model: str, workers: int, corpora: int, docs: int, replicas: int
) -> dict:
    before = load()
    # With --replicas the cluster starts its own vLLM replicas (scripts/cluster's CLUSTER_VLLM),
    # all in LLM_BASE_URL; without, the server at --llm-url stands for them.
    extra = {"CLUSTER_WORKERS": str(workers)}
    if replicas:
        # scripts/cluster's ports (8101, 8102, ...): below the ephemeral range, so no replica's
        # own sockets take the next one's port (a free_port() base did, for the second).
        extra |= {"CLUSTER_VLLM": str(replicas)}
    # The real task (not the tests' two-field one): its throughput is what is measured.
    with local_cluster(url, model, tasks="biography", **extra) as cluster:
        os.environ["DAGSTER_PG_URL"] = cluster.shared["DAGSTER_PG_URL"]
        os.environ["DAGSTER_HOME"] = str(cluster.dir / "head" / "dagster_home")
        names = [f"bench_{i}" for i in range(corpora)]
        for i, name in enumerate(names):
            synthetic(cluster.source_root, name, docs, seed=100 + i)
        with cluster.instance() as instance:
            instance.add_dynamic_partitions("corpora", names)
            # The endpoints' pool with a slot per worker (the default limit, 1, would put one
            # extraction step at a time on the replicas whatever the number of workers); each
            # step then sends 1/workers of the in-flight count.
            pool = endpoint_pool(cluster.shared["LLM_BASE_URL"])
            assert pool is not None
            instance.event_log_storage.set_concurrency_slots(pool, workers)
        started = time.monotonic()
        backfill = cluster.launch_backfill(names)
        records = cluster.wait_for_runs({"dagster/backfill": backfill}, corpora, 3600)
        seconds = time.monotonic() - started
        stored = cluster.query("SELECT count(*) FROM extractions")[0][0]
        steps = {
            w.split("@")[0]
            for r in records
            for ws in cluster.step_workers(r.dagster_run.run_id).values()
            for w in ws
        }
    servers = f"{replicas} replicas" if replicas else "one server"
    return {
        "case": f"{workers} worker{'s' if workers > 1 else ''} (cluster, lake, {servers}, "
        f"pool limit {workers})",
        "documents": corpora * docs,
        "stored": stored,
        "seconds": seconds,
        "docs_per_min": 60 * stored / seconds,
        "load_before": before,
        "note": f"{corpora} corpora backfilled; steps ran on {', '.join(sorted(steps))}",
    }


def store_case(url: str, model: str, lake: str | None, docs: int, folder: Path) -> dict:
    home = folder / ("lake" if lake else "local")
    synthetic(home / "sources", "bench_store", docs, seed=7)
    env = {
        **os.environ,
        "EXTRACTION_HOME": str(home / "home"),
        "EXTRACTION_SOURCE_ROOT": str(home / "sources"),
        "LLM_BASE_URL": url,
        "LLM_MODEL": model,
        "EXTRACTION_GOLD_SAMPLE": "none",
        "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
    }
    for var in ("DAGSTER_HOME", "EXTRACTION_STORE", "EXTRACTION_DB", "EXTRACTION_CELERY_BROKER"):
        env.pop(var, None)
    if lake:
        env["EXTRACTION_STORE"] = lake
        env["EXTRACTION_LAKE_DATA_PATH"] = str(home / "lake-data")
    before = load()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "extraction_assets", "run", "bench_store"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"extraction run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {
        "case": "one machine, " + ("DuckLake store" if lake else "local DuckDB store"),
        "documents": docs,
        "stored": docs,
        "seconds": seconds,
        "docs_per_min": 60 * docs / seconds,
        "load_before": before,
        "note": "`extraction run` (in-process), fresh store",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--corpora", type=int, default=4)
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument(
        "--replicas", type=int, default=0,
        help="vLLM replicas the cluster starts for the worker cases (0: use --llm-url)",
    )  # fmt: skip
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-stores", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    model = served_model(args.llm_url)
    rows = []
    if not args.skip_workers:
        for workers in (int(w) for w in args.workers.split(",")):
            rows.append(
                workers_case(args.llm_url, model, workers, args.corpora, args.docs, args.replicas)
            )
            print(rows[-1], flush=True)
    if not args.skip_stores:
        with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp, postgres_server() as pg:
            for lake in (None, f"ducklake:postgres:{create_database(pg)}"):
                rows.append(
                    store_case(args.llm_url, model, lake, args.corpora * args.docs, Path(tmp))
                )
                print(rows[-1], flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    table = [
        "| case | documents | stored | wall s | documents/min | load before (1/5/15 min) | note |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['case']} | {r['documents']} | {r['stored']} | {r['seconds']:.0f} | "
            f"{r['docs_per_min']:.1f} | {r['load_before']} | {r['note']} |"
            for r in rows
        ),
    ]
    text = "\n".join(table)
    print(text)
    if args.write:
        command = "python benchmarks/cluster.py " + shlex.join(sys.argv[1:])
        RESULTS.write_text(
            f"# Cluster: one worker vs two, local store vs lake\n\n"
            f"Measured at commit {commit} with `{command}` against the vLLM server at "
            f"{args.llm_url} ({model}, CPU build, 2 cores shared by every process).\n\n"
            f"{text}\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
