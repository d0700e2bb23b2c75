"""N concurrent runs against one LLM server, with and without the endpoint pool's limit.

    python -m benchmarks.concurrent_runs --runs 4 --docs 16 --limit 1 [--shape biography|quick]
        [--url http://127.0.0.1:8000/v1] [--label TEXT] [--out benchmarks/results/concurrent_runs.json]

Writes N synthetic corpora (`biography`: `python -m benchmarks.synthetic_biographies ROOT D
--corpus synK --seed K`, the biography task; `quick`: the throughput benchmark's `bench_copy`
task, quick shape, ~18 output tokens per item), then launches N `extraction run synK` processes
at once: one EXTRACTION_HOME (one store), one DAGSTER_HOME (the project's dagster.yaml), one
server. `--limit K` sets the endpoint pool's limit on the instance (`dagster instance
concurrency set`), `--limit none` runs without a pool (EXTRACTION_LLM_POOL=none: every run
sends its full auto in-flight count). Recipe: auto.

Measured: total wall (first process start to last process end), the server's span (first call
sent to last answer, from the store's `calls`), items/min over both, per run its wall, its
extraction span, items/min, the in-flight count auto chose and the wait for the pool (extraction
step start minus run start), failed items and calls with an error (timeouts); while it runs, the
server's requests running and waiting (vLLM /metrics, sampled every second) and the load average.
Each point is appended to `--out` (JSON lines) and printed as a markdown row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEP = {"biography": "biography_extractions", "quick": "bench_copy_extractions"}


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def write_corpora(sources: Path, shape: str, runs: int, docs: int) -> list[str]:
    names = [f"syn{k}" for k in range(1, runs + 1)]
    for k, name in enumerate(names, start=1):
        if shape == "biography":
            subprocess.run(
                [sys.executable, "-m", "benchmarks.synthetic_biographies", str(sources),
                 str(docs), "--corpus", name, "--seed", str(k)],
                cwd=REPO, check=True,
            )  # fmt: skip
        else:
            from benchmarks.synthetic import SHAPES, make_documents, write_corpus

            write_corpus(sources, name, make_documents(SHAPES[shape], docs, seed=k, corpus=name))
    return names


class ServerWatch:
    """The server's requests running and waiting (vLLM /metrics), sampled every second."""

    def __init__(self, url: str) -> None:
        self.metrics = url.rstrip("/").removesuffix("/v1") + "/metrics"
        self.running: list[float] = []
        self.waiting: list[float] = []
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while not self._stop.wait(1.0):
                self.loads.append(load())
                try:
                    text = http.get(self.metrics).text
                except httpx.HTTPError:
                    continue
                for name, out in (("running", self.running), ("waiting", self.waiting)):
                    m = re.search(rf"^vllm:num_requests_{name}{{[^}}]*}} ([0-9.e+]+)", text, re.M)
                    if m:
                        out.append(float(m.group(1)))

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def served_model(url: str) -> str:
    data = httpx.get(url.rstrip("/") + "/models", timeout=10, trust_env=False).json()
    return str(data["data"][0]["id"])


def run_point(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import dagster as dg

    from extraction_assets.extractions.capacity import endpoint_pool

    sources, home, dagster_home = root / "sources", root / "home", root / "dagster_home"
    corpora = write_corpora(sources, args.shape, args.runs, args.docs)
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EXTRACTION_HOME": str(home),
        "EXTRACTION_SOURCE_ROOT": str(sources),
        "DAGSTER_HOME": str(dagster_home),
        "LLM_BACKEND": "vllm",
        "LLM_BASE_URL": args.url,
        "LLM_MODEL": served_model(args.url),
        "EXTRACTION_GOLD_SAMPLE": "none",
        "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
    }
    pool = endpoint_pool(args.url)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)  # the schema, once, before N processes race to make it
        if args.limit == "none":
            env["EXTRACTION_LLM_POOL"] = "none"
        elif pool is not None:
            instance.event_log_storage.set_concurrency_slots(pool, int(args.limit))
    if args.shape == "biography":
        command = [sys.executable, "-m", "extraction_assets", "run"]
        env["EXTRACTION_TASKS"] = "biography"
    else:
        command = [sys.executable, str(REPO / "benchmarks" / "run_cli.py"), "run"]
        env["EXTRACTION_TASKS"] = "bench_copy"
        env["BENCH_SHAPE"] = args.shape
    load_before = load()
    spans: dict[str, tuple[float, float, int]] = {}
    logs = root / "logs"
    logs.mkdir()
    with ServerWatch(args.url) as watch:
        started = time.time()
        procs = {}
        for corpus in corpora:
            log = (logs / f"{corpus}.log").open("w")
            procs[corpus] = (
                subprocess.Popen(
                    [*command, corpus], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
                ),
                time.time(),
                log,
            )
        deadline = time.time() + args.timeout
        while len(spans) < len(procs) and time.time() < deadline:
            for corpus, (proc, t0, log) in procs.items():
                if corpus not in spans and proc.poll() is not None:
                    spans[corpus] = (t0, time.time(), proc.returncode)
                    log.close()
            time.sleep(0.2)
        ended = max(end for _, end, _ in spans.values())
    per_run = _per_run(home / "store.duckdb", dagster_home, STEP[args.shape], spans)
    calls = [r for r in per_run.values()]
    first = min((r["first_call"] for r in calls if r["first_call"]), default=None)
    last = max((r["last_answer"] for r in calls if r["last_answer"]), default=None)
    items = sum(r["items"] for r in calls)
    server_s = (last - first) if first and last else None
    wall = ended - started
    failed_logs = [c for c, (_, _, rc) in spans.items() if rc != 0]
    return {
        "commit": commit(),
        "label": args.label,
        "shape": args.shape,
        "runs": args.runs,
        "docs_per_run": args.docs,
        "limit": args.limit,
        "pool": None if args.limit == "none" else pool,
        "items": items,
        "ok": sum(r["ok"] for r in calls),
        "failed": sum(r["failed"] for r in calls),
        "error_calls": sum(r["error_calls"] for r in calls),
        "wall_s": round(wall, 1),
        "server_span_s": round(server_s, 1) if server_s else None,
        "items_per_min_wall": round(60 * items / wall, 2) if wall else None,
        "items_per_min_server": round(60 * items / server_s, 2) if server_s else None,
        "max_running": max(watch.running, default=None),
        "max_waiting": max(watch.waiting, default=None),
        "load_before": load_before,
        "load_max": max(watch.loads, default=None),
        "load_mean": round(sum(watch.loads) / len(watch.loads), 2) if watch.loads else None,
        "failed_runs": failed_logs,
        "per_run": per_run,
    }


def _per_run(
    db: Path, dagster_home: Path, step: str, spans: dict[str, tuple[float, float, int]]
) -> dict[str, dict[str, Any]]:
    import dagster as dg
    import duckdb

    out: dict[str, dict[str, Any]] = {}
    rows = []
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute(
                "SELECT corpus, count(*) FILTER (error IS NOT NULL), sum(ok_items), "
                "sum(failed_items), epoch(min(started_at)), "
                "epoch(max(started_at + to_microseconds((latency_s * 1e6)::BIGINT))) "
                "FROM calls WHERE corpus NOT LIKE '[gold]%' GROUP BY corpus"
            ).fetchall()
            final = dict(
                con.execute(
                    "SELECT corpus, count(*) FILTER (status = 'ok') FROM extractions GROUP BY corpus"
                ).fetchall()
            )
    by_corpus = {r[0]: r for r in rows}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            corpus = run.tags.get("dagster/partition", "")
            t0, t1, rc = spans.get(corpus, (0.0, 0.0, -1))
            events = {}
            for record in instance.all_logs(run.run_id):
                e = record.dagster_event
                if e is None:
                    continue
                if e.event_type_value == dg.DagsterEventType.RUN_START.value:
                    events.setdefault("run_start", record.timestamp)
                if e.step_key == step and e.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                    events.setdefault(e.event_type_value, record.timestamp)
                if e.step_key == step and e.event_type_value == "ASSET_MATERIALIZATION":
                    meta = e.step_materialization_data.materialization.metadata
                    events["max_concurrency"] = meta["max_concurrency"].value
            r = by_corpus.get(corpus)
            # The calls' times are the store's (UTC naive timestamps): epoch() reads them as UTC.
            first, last = (r[4], r[5]) if r else (None, None)
            ok, failed = (int(r[2] or 0), int(r[3] or 0)) if r else (0, 0)
            span = (last - first) if first and last else None
            out[corpus] = {
                "run_id": run.run_id,
                "status": run.status.value,
                "rc": rc,
                "wall_s": round(t1 - t0, 1),
                "pool_wait_s": round(events["STEP_START"] - events["run_start"], 1)
                if "STEP_START" in events and "run_start" in events
                else None,
                "extraction_span_s": round(span, 1) if span else None,
                "items": ok + failed,
                "ok": ok,
                "failed": failed,
                "ok_rows": final.get(corpus, 0) if db.exists() else 0,
                "error_calls": int(r[1]) if r else 0,
                "items_per_min": round(60 * (ok + failed) / span, 2) if span else None,
                "max_concurrency": events.get("max_concurrency"),
                "first_call": first,
                "last_answer": last,
            }
    return out


def markdown_row(p: dict[str, Any]) -> str:
    runs = "; ".join(
        f"{c}: {r['wall_s']} s wall, waited {r['pool_wait_s']} s, {r['items_per_min']} items/min "
        f"at {r['max_concurrency']} in flight"
        for c, r in sorted(p["per_run"].items())
    )
    return (
        f"| {p['shape']} | {p['runs']} x {p['docs_per_run']} | {p['limit']} | {p['items']} "
        f"({p['failed']} failed, {p['error_calls']} calls with an error) | {p['wall_s']} | "
        f"{p['items_per_min_wall']} | {p['items_per_min_server']} | {p['max_running']:.0f} / "
        f"{p['max_waiting']:.0f} | {p['load_before']} / {p['load_mean']} | {runs} |"
        if p["max_running"] is not None
        else f"| {p['shape']} | {p['runs']} x {p['docs_per_run']} | {p['limit']} | {p['items']} | "
        f"{p['wall_s']} | {p['items_per_min_wall']} | {p['items_per_min_server']} | - | "
        f"{p['load_before']} / {p['load_mean']} | {runs} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--docs", type=int, default=16, help="documents per corpus")
    parser.add_argument("--limit", default="1", help='the pool limit, or "none" (no pool)')
    parser.add_argument("--shape", choices=["biography", "quick"], default="biography")
    parser.add_argument("--url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--label", default="")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks/results/concurrent_runs.json"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
        point = run_point(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="concurrent-runs-") as tmp:
            point = run_point(args, Path(tmp))
    point["command"] = "python -m benchmarks.concurrent_runs " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(point) + "\n")
    print(json.dumps(point, indent=1))
    print(markdown_row(point))


if __name__ == "__main__":
    main()
