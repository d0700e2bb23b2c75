"""Pipeline efficiency: the engine (and the Dagster job) against the server's ceiling, repeated.

One pass of the sweep (`throughput.py`) measures each runner once, a minute apart; on a shared
2-core machine that noise alone moves a ratio by +-50%. Here every point is measured in R rounds,
each round running the bare load generator (ceiling), the engine and optionally the Dagster job
back to back on fresh documents, with the order rotated between rounds; the efficiency of a point
is the median over rounds of engine / ceiling items/min measured in the same round.

    .venv/bin/python benchmarks/efficiency.py --points 1x64,5x10,20x10 --rounds 3 --items 320
    .venv/bin/python benchmarks/efficiency.py --url http://127.0.0.1:8000/v1 ...   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report
from benchmarks.loadgen import ceiling, engine
from benchmarks.synthetic import SHAPES, bench_task, make_documents
from benchmarks.throughput import dagster_run, load, pairs, seed_for, start
from extraction_assets import serve
from extraction_assets.engine import EngineSettings
from extraction_assets.engine.autotune import choose_recipe
from resources.llm import LLMResource

RESULTS = Path(__file__).with_name("results")
log = logging.getLogger("efficiency")


async def one(
    runner: str, url: str, model: str, args: argparse.Namespace, n: int, c: int, rnd: int
) -> dict:
    if runner == "dagster":
        ns = argparse.Namespace(
            shape=args.shape,
            waves=1,
            min_items=args.items,
            max_items=args.items,
            run_id=f"{args.run_id}-{rnd}",
        )
        row = await asyncio.to_thread(dagster_run, url, model, ns, n, c)
        return {
            "runner": runner,
            "items": row["items"],
            "ok": row["ok_items"],
            "s": row["elapsed_s"],
            "items_per_min": row["items_per_min"],
            "step_s": row["extraction_step_s"],
            "step_items_per_min": row["step_items_per_min"],
            "load": row["load_1min"],
        }
    fn = ceiling if runner == "ceiling" else engine
    docs = make_documents(
        SHAPES[args.shape], args.items // n * n, seed_for(args.run_id, n, c, runner, rnd)
    )
    before = load()
    m = await fn(url, model, bench_task(args.shape), docs, n, c)
    return {
        "runner": runner,
        "items": m.items,
        "ok": m.ok_items,
        "s": round(m.elapsed_s, 2),
        "items_per_min": round(m.items_per_min, 2),
        "load": before,
    }


async def measure(url: str, model: str, args: argparse.Namespace) -> list[dict]:
    runners = ["ceiling", "engine"] + (["dagster"] if args.dagster else [])
    points = []
    for n, c in args.points:
        rounds = []
        for rnd in range(args.rounds):
            order = runners[rnd % len(runners) :] + runners[: rnd % len(runners)]
            rows = {}
            for runner in order:
                rows[runner] = await one(runner, url, model, args, n, c, rnd)
                log.info(
                    "n=%d c=%d round %d %s: %s items in %ss = %s items/min (load %s)",
                    n,
                    c,
                    rnd,
                    runner,
                    rows[runner]["items"],
                    rows[runner]["s"],
                    rows[runner]["items_per_min"],
                    rows[runner]["load"],
                )
            rounds.append({"order": order, **rows})
        ratios = {
            r: [x[r]["items_per_min"] / x["ceiling"]["items_per_min"] for x in rounds]
            for r in runners[1:]
        }
        if args.dagster:  # the job's extraction step alone, without its fixed start-up cost
            ratios["dagster extraction step"] = [
                (x["dagster"]["step_items_per_min"] or 0) / x["ceiling"]["items_per_min"]
                for x in rounds
            ]
        points.append(
            {
                "items_per_call": n,
                "in_flight": c,
                "rounds": rounds,
                "efficiency": {
                    r: {"median": statistics.median(v), "all": v} for r, v in ratios.items()
                },
            }
        )
        log.info(
            "n=%d c=%d efficiency: %s",
            n,
            c,
            {r: [round(x, 3) for x in v] for r, v in ratios.items()},
        )
    return points


async def compare_auto(url: str, model: str, args: argparse.Namespace) -> dict:
    """The auto probe once, then the engine at its choice and at the reference point (the sweep's
    best) back to back for R rounds, order rotated: auto / best per round, and the median."""
    task = bench_task(args.shape)
    sample = make_documents(SHAPES[args.shape], args.auto_sample, seed_for(args.run_id, "auto"))
    client = LLMResource(base_url=url, model=model, timeout_s=3600, max_retries=1).get_client()
    try:
        n, c, rep = await choose_recipe(task, sample, client, EngineSettings(), log)
    finally:
        await client.aclose()
    ref_n, ref_c = args.auto_reference
    rounds = []
    for rnd in range(args.rounds):
        order = [("auto", n, c), ("best", ref_n, ref_c)]
        if rnd % 2:
            order.reverse()
        row = {}
        for name, pn, pc in order:
            row[name] = await one("engine", url, model, args, pn, pc, 100 + rnd)
            log.info(
                "round %d %s (%dx%d): %s items/min", rnd, name, pn, pc, row[name]["items_per_min"]
            )
        rounds.append(row)
    ratios = [r["auto"]["items_per_min"] / r["best"]["items_per_min"] for r in rounds]
    return {
        "chosen": [n, c],
        "reason": rep.reason,
        "probe_s": round(rep.probe_s, 1),
        "reference": [ref_n, ref_c],
        "rounds": rounds,
        "ratios": ratios,
        "median": statistics.median(ratios),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Pipeline efficiency against the server's ceiling (repeated, interleaved)",
        "",
        f"Command: `{results['command']}` ({results['date']}, {results['elapsed_min']} min).",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, GPU {m['gpu']}; {m['model']}; "
        f"{', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
        f"Shape `{results['shape']}`, {results['items']} items per measurement, "
        f"{results['rounds']} rounds per point, runner order rotated each round; "
        "fresh documents (own seed) for every measurement.",
        "",
        "| per call | in flight | runner | items/min per round | efficiency per round | "
        "median efficiency |",
        "|---:|---:|---|---|---|---:|",
    ]
    for p in results["points"]:
        ceil = ", ".join(f"{r['ceiling']['items_per_min']:.0f}" for r in p["rounds"])
        lines.append(f"| {p['items_per_call']} | {p['in_flight']} | ceiling | {ceil} | | |")
        for runner, eff in p["efficiency"].items():
            key, col = (
                ("dagster", "step_items_per_min")
                if runner == "dagster extraction step"
                else (runner, "items_per_min")
            )
            ipm = ", ".join(f"{r[key][col] or 0:.0f}" for r in p["rounds"])
            each = ", ".join(f"{100 * x:.0f}%" for x in eff["all"])
            lines.append(
                f"| {p['items_per_call']} | {p['in_flight']} | {runner} | {ipm} | "
                f"{each} | **{100 * eff['median']:.0f}%** |"
            )
    loads = [
        float(r[k]["load"])
        for p in results["points"]
        for r in p["rounds"]
        for k in r
        if k != "order"
    ]
    if loads:
        lines += [
            "",
            f"1-minute load average before each measurement: {min(loads)} to {max(loads)}.",
        ]
    auto = results.get("auto")
    if auto:
        n, c = auto["chosen"]
        rn, rc = auto["reference"]
        lines += [
            "",
            "## `auto` against the best point of the sweep",
            "",
            f"The probe chose {n} per call x {c} in flight ({auto['reason']}; probe "
            f"{auto['probe_s']} s). Engine items/min per round, auto vs the reference {rn} x {rc}: "
            + "; ".join(
                f"{r['auto']['items_per_min']:.0f} vs {r['best']['items_per_min']:.0f}"
                for r in auto["rounds"]
            )
            + f". Ratio per round: {', '.join(f'{100 * x:.0f}%' for x in auto['ratios'])}; "
            f"**median {100 * auto['median']:.0f}%**.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="quick")
    p.add_argument("--points", type=pairs, default=[(1, 64), (5, 10), (20, 10)])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--items", type=int, default=320, help="items per measurement")
    p.add_argument("--dagster", action="store_true", help="also run the Dagster job each round")
    p.add_argument(
        "--auto-reference",
        type=lambda t: pairs(t)[0],
        default=None,
        help="NxC: also run the auto probe and compare its choice with this point",
    )
    p.add_argument("--auto-sample", type=int, default=128)
    p.add_argument("--url", default=None, help="use this server instead of starting one")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--out", type=Path, default=RESULTS / "efficiency")
    args = p.parse_args()
    args.run_id = f"{time.time():.0f}"
    # A kill runs the `finally` below: the server this run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("extraction").setLevel(logging.WARNING)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-eff-") as tmp:
        state = None
        url, model = args.url, args.model
        if url is None:
            url, model, state = start("continuous", Path(tmp))
        try:
            points = asyncio.run(measure(url, model, args))
            auto = asyncio.run(compare_auto(url, model, args)) if args.auto_reference else None
        finally:
            if state is not None:
                serve.stop_server(state)
    results = {
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_min": round((time.monotonic() - started) / 60, 1),
        "machine": report.machine(),
        "shape": args.shape,
        "items": args.items,
        "rounds": args.rounds,
        "points": points,
        "auto": auto,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
