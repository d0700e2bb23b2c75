"""What the durability choice costs: acknowledged calls per second, local file vs DuckLake.

A local store acknowledges a call once it is in the run's fsync'd journal (merged into DuckDB
every few seconds); a lake store acknowledges it once it is committed to the lake, because a
worker machine may die with its disk. This drives each store's ``outcome_writer`` the way the
engine does (``--in-flight`` callers writing one-item calls as fast as they can, so calls that
finish together share a commit) and reports calls acknowledged per second and the latency of an
acknowledgement. No LLM: this is the store's ceiling, to set against the server's rate (the
embedded CPU server gives ~500 items/min = ~8 calls/s at one item per call).

Needs PostgreSQL (scripts/postgres is started in a temporary folder) and the DuckLake extension
packages. Prints a Markdown table; with --write, also writes benchmarks/results/store_lake.md.

    .venv/bin/python benchmarks/store_lake.py --calls 400 --in-flight 64 --write
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult  # noqa: E402
from resources.store import CallContext, DuckDBStore  # noqa: E402
from tests.postgres import create_database, postgres_server  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "store_lake.md"


def _outcome(n: int) -> CallOutcome:
    doc = Document.make("bench", f"d{n}", f"text {n}")
    result = ItemResult(doc.doc_id, doc.content_hash, "ok", fields={"name": f"n{n}", "n": n})
    call = CallRecord(f"c{n}", "u", 1, 1, 900, 300, 1.0, "stop", 1, 0, None, time.time())
    return CallOutcome(call, [result])


async def _drive(store: DuckDBStore, calls: int, in_flight: int) -> tuple[float, list[float]]:
    context = CallContext("bench-run", "bench", "bio", "v1", "vllm", "m")
    latencies: list[float] = []
    queue = list(range(calls))
    start = time.perf_counter()
    async with store.outcome_writer(context) as writer:

        async def caller() -> None:
            while queue:
                n = queue.pop()
                t0 = time.perf_counter()
                await writer.write(_outcome(n))
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(caller() for _ in range(in_flight)))
        acknowledged = time.perf_counter() - start
    return acknowledged, latencies


def measure(store: DuckDBStore, calls: int, in_flight: int) -> dict[str, float]:
    store.ensure_schema()
    elapsed, latencies = asyncio.run(_drive(store, calls, in_flight))
    assert store.status_counts("bench", "bio").get("ok") == calls
    ordered = sorted(latencies)
    return {
        "calls_per_s": calls / elapsed,
        "ack_median_ms": statistics.median(latencies) * 1000,
        "ack_p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument(
        "--write", action="store_true", help="write benchmarks/results/store_lake.md"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        local = DuckDBStore(path=f"{tmp}/store.duckdb")
        rows.append(
            (
                "local DuckDB file (journal, merged every 5 s)",
                measure(local, args.calls, args.in_flight),
            )
        )
        with postgres_server() as conninfo:
            lake = DuckDBStore(
                path=f"ducklake:postgres:{create_database(conninfo)}", data_path=f"{tmp}/lake-data"
            )
            rows.append(
                (
                    "DuckLake on PostgreSQL (commit before ack)",
                    measure(lake, args.calls, args.in_flight),
                )
            )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"Measured at {commit} with `.venv/bin/python benchmarks/store_lake.py --calls {args.calls} "
        f"--in-flight {args.in_flight}` (no LLM: the store's ceiling).",
        "",
        "| store | calls acknowledged/s | ack median ms | ack p95 ms |",
        "|---|---|---|---|",
        *(
            f"| {name} | {r['calls_per_s']:.1f} | {r['ack_median_ms']:.0f} | {r['ack_p95_ms']:.0f} |"
            for name, r in rows
        ),
    ]
    print("\n".join(lines))
    if args.write:
        RESULTS.write_text(
            "# Store durability cost: local journal vs DuckLake commit\n\n"
            + "\n".join(lines)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
