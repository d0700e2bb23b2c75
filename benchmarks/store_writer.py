"""What the store costs per item recorded: ``DuckDBStore.record_outcomes`` in the batches the
group-commit writer hands it (20 calls of 5 items), first answers, then every document answered
again with other fields (each old row to history, its differences to ``changes``).

CPU seconds of this process (``time.process_time``) and wall seconds per pass, and the import
lookups the pass made (a ``sys.meta_path`` spy: DuckDB 1.4 tries ``import pandas`` for each Python
value it converts where pandas is not installed). ``--checkout`` imports the store from another
checkout (e.g. a worktree of an older commit) to compare.

    .venv/bin/python benchmarks/store_writer.py                     # 5,000 items, writes results
    .venv/bin/python benchmarks/store_writer.py --checkout /tmp/old --no-write
"""

from __future__ import annotations

import argparse
import importlib.abc
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results") / "store_writer.md"
CALLS_PER_BATCH, ITEMS_PER_CALL = 20, 5


class _Spy(importlib.abc.MetaPathFinder):
    lookups = 0

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        _Spy.lookups += 1


def run(checkout: Path, items: int) -> list[tuple[str, float, float, int]]:
    sys.path.insert(0, str(checkout))
    from extraction_assets.types import CallOutcome, CallRecord, ItemResult
    from resources.store import CallContext, DuckDBStore

    def batch(answer: str, b: int) -> list[CallOutcome]:
        return [
            CallOutcome(
                CallRecord(
                    call_id=f"{answer}-{b}-{k}",
                    base_url="http://127.0.0.1:8000/v1",
                    pack_size=ITEMS_PER_CALL,
                    attempt=1,
                    prompt_tokens=900,
                    completion_tokens=300,
                    latency_s=4.2,
                    finish_reason="stop",
                    ok_items=ITEMS_PER_CALL,
                    failed_items=0,
                    error=None,
                    started_at=time.time(),
                ),
                [
                    ItemResult(
                        f"d{b}-{k}-{j}",
                        "h",
                        "ok",
                        {"name": f"{answer} {j}", "died": 1900 + j},
                        raw_answer='{"name": "..."}',
                        prompt_tokens=180,
                        completion_tokens=60,
                        latency_s=4.2,
                    )
                    for j in range(ITEMS_PER_CALL)
                ],
            )
            for k in range(CALLS_PER_BATCH)
        ]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(path=str(Path(tmp) / "store.duckdb"))
        ctx = CallContext("run-1", "bench", "bio", "v1", "vllm", "m")
        store.record_outcomes(batch("warm", -1), ctx)  # lazy imports settle
        sys.meta_path.insert(0, _Spy())
        for answer in ("first answers", "answered again"):
            _Spy.lookups = 0
            cpu, wall = time.process_time(), time.perf_counter()
            for b in range(items // (CALLS_PER_BATCH * ITEMS_PER_CALL)):
                store.record_outcomes(batch(answer, b), ctx)
            rows.append(
                (answer, time.process_time() - cpu, time.perf_counter() - wall, _Spy.lookups)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--checkout", type=Path, default=HERE)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = run(args.checkout.resolve(), args.items)
    commit = subprocess.run(
        ["git", "-C", str(args.checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "-C", str(args.checkout), "status", "--porcelain", "resources"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    table = [
        "| pass | items | CPU s | wall s | CPU ms per item | import lookups per item |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {answer} | {args.items:,} | {cpu:.2f} | {wall:.2f} | {1000 * cpu / args.items:.2f} "
            f"| {lookups / args.items:.1f} |"
            for answer, cpu, wall, lookups in rows
        ),
    ]
    print(f"commit {commit}{' (resources/ modified)' if dirty else ''}", *table, sep="\n")
    if not args.no_write:
        RESULTS.write_text(
            "# The store's cost per recorded item\n\n"
            f"> Measured at commit `{commit}`{' (resources/ modified)' if dirty else ''}.\n\n"
            f"Machine: {platform.platform()}; Python {platform.python_version()}, "
            f"DuckDB {duckdb.__version__}.\n"
            f"Command: `.venv/bin/python benchmarks/store_writer.py --items {args.items}` "
            f"({time.strftime('%Y-%m-%d')}).\n\n" + "\n".join(table) + "\n"
        )


if __name__ == "__main__":
    main()
