"""Throughput benchmark: items/min of the real engine and of the Dagster job vs the server's
ceiling, over pack sizes x requests in flight, on a continuous-batching server and on a
request-level one (`--max-num-seqs 1`, like a one-slot Ollama), plus the `auto` recipe.

Starts its own CPU vLLM server(s) on free ports (one mode at a time, stopped afterwards).
Results: benchmarks/results/throughput.{md,json,png}.

    .venv/bin/python benchmarks/throughput.py                      # quick shape, CPU grid
    .venv/bin/python benchmarks/throughput.py --shape production --packs 1,20 --in-flight 1,10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report
from benchmarks.loadgen import Measurement, ceiling, engine
from benchmarks.synthetic import SHAPES, TASK_NAME, bench_task, make_documents, write_corpus
from extraction_assets import serve
from extraction_assets.engine import EngineSettings
from extraction_assets.engine.autotune import choose_recipe
from resources.llm import LLMResource

RESULTS = Path(__file__).with_name("results")
REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench")
_pairs_run: list[tuple[str, int, int]] = []


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def pairs(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in x.split("x")) for x in text.split(",") if x]  # type: ignore


def seed_for(*parts: object) -> int:
    """A distinct, reproducible seed per (run, mode, config, runner): no document repeats."""
    return zlib.crc32(json.dumps([str(p) for p in parts]).encode()) & 0x7FFFFFFF


def items_for(n: int, c: int, args: argparse.Namespace, mode: str = "continuous") -> int:
    """Enough documents for `waves` full waves of c packs of n, within [min, max] items.

    A one-slot server runs packs one after the other whatever c is, so there two packs (at
    least min_items) measure its rate; more would only lengthen the run."""
    if mode.startswith("request-level"):
        return math.ceil(args.min_items / n) * n
    want = max(n * c * args.waves, args.min_items, n)
    return max(n, min(want, args.max_items) // n * n)


def grid(
    packs: list[int], in_flight: list[int], args: argparse.Namespace, mode: str
) -> list[tuple[int, int]]:
    """The (n, c) points to measure; a point whose c exceeds the packs its capped corpus
    holds would repeat the previous one (same packs, all in flight) and is skipped."""
    points = []
    for n in packs:
        seen_effective: set[int] = set()
        for c in in_flight:
            effective = min(c, items_for(n, c, args, mode) // n)
            if mode == "continuous" and effective in seen_effective:
                log.info(
                    "skip n=%d c=%d: the %d-item cap holds only %d packs",
                    n,
                    c,
                    args.max_items,
                    effective,
                )
                continue
            seen_effective.add(effective)
            points.append((n, c))
    return points


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


async def measure_pair(url: str, model: str, args, mode: str, n: int, c: int) -> list[dict]:
    task = bench_task(args.shape)
    shape = SHAPES[args.shape]
    k = items_for(n, c, args, mode)
    rows = []
    order = [("ceiling", ceiling), ("engine", engine)]
    # Alternate which runner goes first: the committed runs (ceiling always first) showed a
    # first-runner penalty at many points; alternating cancels an order bias over the grid.
    _pairs_run.append((mode, n, c))
    if len(_pairs_run) % 2 == 0:
        order.reverse()
    for runner, fn in order:
        docs = make_documents(shape, k, seed_for(args.run_id, mode, n, c, runner))
        load_before = load()
        m: Measurement = await fn(url, model, task, docs, n, c)
        row = {"mode": mode, **m.row(), "load_1min": load_before}
        log.info(
            "%s %s n=%d c=%d: %d items in %.1fs = %.1f items/min (%d ok) load %s",
            mode,
            runner,
            n,
            c,
            m.items,
            m.elapsed_s,
            m.items_per_min,
            m.ok_items,
            load_before,
        )
        rows.append(row)
    return rows


def dagster_run(url: str, model: str, args, n: int, c: int) -> dict:
    """The whole materialisation: `python -m extraction_assets run` in a temp home."""
    shape = SHAPES[args.shape]
    k = items_for(n, c, args)
    with tempfile.TemporaryDirectory(prefix="bench-dagster-") as tmp:
        root = Path(tmp)
        write_corpus(
            root / "sources",
            "bench",
            make_documents(shape, k, seed_for(args.run_id, "dagster", n, c)),
        )
        env = {
            **os.environ,
            "EXTRACTION_SOURCE_ROOT": str(root / "sources"),
            "EXTRACTION_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster"),
            "LLM_BASE_URL": url,
            "LLM_MODEL": model,
            "LLM_BACKEND": "vllm",
            "EXTRACTION_TASKS": TASK_NAME,
            "BENCH_SHAPE": args.shape,
            "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
        }
        load_before = load()
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "run_cli.py"),
                "run",
                "bench",
                "--items-per-call",
                str(n),
                "--max-concurrency",
                str(c),
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=3600,
        )
        wall = time.monotonic() - t0
        import duckdb

        db = root / "home" / "store.duckdb"
        ok = failed = calls = ptok = ctok = 0
        span = wall
        if db.exists():
            con = duckdb.connect(str(db), read_only=True)
            ok, failed = con.execute(
                "SELECT count(*) FILTER (status='ok'), count(*) FILTER (status='failed') "
                "FROM extractions"
            ).fetchone()
            calls, ptok, ctok = con.execute(
                "SELECT count(*), coalesce(sum(prompt_tokens),0), "
                "coalesce(sum(completion_tokens),0) FROM calls"
            ).fetchone()
            # The extraction step's own span: first request sent to last answer received. The
            # rest of the job time is fixed per run (step processes, corpus sync, table export).
            step_s = con.execute(
                "SELECT epoch(max(started_at + to_microseconds((latency_s * 1e6)::BIGINT)) "
                "- min(started_at)) FROM calls"
            ).fetchone()[0]
            con.close()
        job_s = None
        for line in proc.stdout.splitlines():
            if line.startswith("this run:") and " in " in line:
                job_s = float(line.split(" in ")[1].split(" s")[0])
        span = job_s or wall
    done = ok + failed
    log.info(
        "dagster n=%d c=%d: %d items, job %.1fs, wall %.1fs (rc %d)",
        n,
        c,
        done,
        span,
        wall,
        proc.returncode,
    )
    if proc.returncode != 0:
        log.warning("dagster run failed:\n%s\n%s", proc.stdout[-2000:], proc.stderr[-3000:])
    step_s = locals().get("step_s")
    return {
        "mode": "continuous",
        "runner": "dagster",
        "items_per_call": n,
        "in_flight": c,
        "extraction_step_s": round(step_s, 2) if step_s else None,
        "step_items_per_min": round(60 * done / step_s, 2) if step_s else None,
        "items": done,
        "ok_items": ok,
        "failed_items": failed,
        "calls": calls,
        "prompt_tokens": ptok,
        "completion_tokens": ctok,
        "elapsed_s": round(span, 2),
        "wall_s": round(wall, 2),
        "items_per_min": round(60 * done / span, 2) if span else 0,
        "ok_per_min": round(60 * ok / span, 2) if span else 0,
        "in_tok_s": round(ptok / span, 1),
        "out_tok_s": round(ctok / span, 1),
        "errors": int(proc.returncode != 0),
        "load_1min": load_before,
    }


async def run_auto(url: str, model: str, args, mode: str) -> dict:
    """choose_recipe on a fresh sample, then the engine at the chosen point (fresh documents)."""
    task = bench_task(args.shape)
    sample = make_documents(SHAPES[args.shape], args.auto_sample, seed_for(args.run_id, "auto"))
    client = LLMResource(base_url=url, model=model, timeout_s=3600, max_retries=1).get_client()
    try:
        n, c, rep = await choose_recipe(
            task, sample, client, EngineSettings(), log, concurrencies=args.auto_in_flight
        )
    finally:
        await client.aclose()
    rows = await measure_pair(url, model, args, f"{mode}/auto", n, c)
    return {
        "items_per_call": n,
        "max_concurrency": c,
        "reason": rep.reason,
        "probe_s": round(rep.probe_s, 1),
        "probes": [
            {
                "n": p.items_per_call,
                "c": p.max_concurrency,
                "items": p.items,
                "ok": p.ok_items,
                "s": round(p.elapsed_s, 1),
                "ok_per_min": round(p.ok_items_per_min, 1),
            }
            for p in rep.probes
        ],
        "max_pack_by_context": rep.max_pack_by_context,
        "max_in_flight_by_memory": rep.max_in_flight_by_memory,
        "rows": rows,
    }


async def sweep_mode(mode: str, url: str, model: str, args) -> dict:
    out: dict = {"mode": mode, "url": url, "rows": [], "load_start": load()}
    grid_c = args.in_flight if mode == "continuous" else args.request_level_in_flight
    points = args.points if mode == "continuous" else args.request_level_points
    for n, c in [] if args.only_auto else points or grid(args.packs, grid_c, args, mode):
        out["rows"] += await measure_pair(url, model, args, mode, n, c)
    if mode == "continuous":
        for spec in [] if args.only_auto else args.dagster:
            n, c = (int(x) for x in spec.split("x"))
            out["rows"].append(await asyncio.to_thread(dagster_run, url, model, args, n, c))
        if args.auto:
            out["auto"] = await run_auto(url, model, args, mode)
    out["load_end"] = load()
    return out


def start(mode: str, tmp: Path) -> tuple[str, str, Path]:
    state = tmp / f"server-{mode}"
    config = serve.ServerConfig(
        port=serve.free_port(),
        state_dir=state,
        gpu=False,
        max_num_seqs=1 if mode == "request-level" else None,
        ready_timeout=900,
    )
    t0 = time.monotonic()
    handle = serve.start_server(config)
    log.info("%s server ready at %s in %.0fs", mode, handle.url, time.monotonic() - t0)
    return handle.url, handle.model, state


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="quick")
    p.add_argument("--packs", type=ints, default=[1, 5, 10, 20])
    p.add_argument("--in-flight", type=ints, default=[1, 6, 10, 32, 64])
    p.add_argument(
        "--request-level-in-flight",
        type=ints,
        default=[1, 6],
        help="grid for --max-num-seqs 1 (more in flight only queues)",
    )
    p.add_argument(
        "--points",
        type=pairs,
        default=None,
        help="explicit NxC points for the continuous server (instead of the grid)",
    )
    p.add_argument("--request-level-points", type=pairs, default=None)
    p.add_argument("--modes", default="continuous,request-level")
    p.add_argument(
        "--dagster",
        type=lambda s: [x for x in s.split(",") if x],
        default=["1x32", "20x10"],
        help="NxC points run through the Dagster job",
    )
    p.add_argument("--no-auto", dest="auto", action="store_false")
    p.add_argument("--only-auto", action="store_true", help="only the auto probe + its point")
    p.add_argument("--auto-sample", type=int, default=128)
    p.add_argument("--auto-in-flight", type=ints, default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--waves", type=int, default=1, help="full waves of c packs per measurement")
    p.add_argument("--min-items", type=int, default=12)
    p.add_argument("--max-items", type=int, default=200)
    p.add_argument("--url", default=None, help="use this server (for the first mode) instead")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--out", type=Path, default=RESULTS / "throughput")
    args = p.parse_args()
    # A kill runs the `finally`s below: the servers this run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.run_id = f"{time.time():.0f}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    results: dict = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": report.machine(),
        "modes": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp:
        for mode in args.modes.split(","):
            state = None
            if args.url:
                url, model = args.url, args.model
            else:
                url, model, state = start(mode, Path(tmp))
            try:
                results["modes"].append(asyncio.run(sweep_mode(mode, url, model, args)))
            finally:
                if state is not None:
                    serve.stop_server(state)
            args.url = None  # later modes start their own server
    results["elapsed_min"] = round((time.monotonic() - started) / 60, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write(results, args.out)
    log.info("done in %.1f min: %s.{md,json,png}", results["elapsed_min"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
