"""How long planning takes on a large corpus: source read + sync + pending set + change report.

For N synthetic documents (written as JSONL under a temp source root) the store is filled,
every document is marked extracted (ok rows inserted in bulk, as after a full run), and then
two planning passes are timed: the corpus unchanged, and 1% of the texts edited (exactly
those must come back pending). Each size runs in its own process so peak RSS is per size.

    .venv/bin/python benchmarks/store_scale.py                 # 100k and 1M, writes results
    .venv/bin/python benchmarks/store_scale.py --docs 100000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extraction_assets.corpora.sources import iter_corpus, scan_corpus
from resources.store import DuckDBStore

CORPUS = "synthetic"
TASK = "bio"
VERSION = "v1"
RESULTS = Path(__file__).with_name("results") / "store_scale.md"
WORDS = [
    "narrator",
    "trustworthy",
    "generation",
    "died",
    "year",
    "teacher",
    "student",
    "city",
    "scholar",
    "hadith",
]


def text_for(i: int, edit: int = 0) -> str:
    words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(40))
    return f"Entry {i}: {words}." + (f" Corrected {edit}." if edit else "")


def write_corpus(root: Path, n: int, changed: set[int]) -> None:
    folder = root / CORPUS
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "documents.jsonl").open("w", encoding="utf-8") as f:
        for i in range(n):
            row = {
                "id": f"doc-{i:08d}",
                "text": text_for(i, 1 if i in changed else 0),
                "lang": "en",
            }
            f.write(json.dumps(row) + "\n")


def timed(label: str, timings: dict[str, float], fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    timings[label] = time.perf_counter() - t0
    return result


def plan(
    store: DuckDBStore, root: Path, run_id: str, python_reader: bool = False
) -> tuple[dict[str, float], object, int, int]:
    """What the corpus asset does before extracting (scan + sync), then the pending set and report.

    ``python_reader`` syncs through the streaming Python reader instead (the path taken by files
    DuckDB's reader cannot vouch for), for comparison.
    """
    timings: dict[str, float] = {}
    if python_reader:
        sync = timed(
            "scan+sync", timings, store.sync_documents, CORPUS, iter_corpus(root, CORPUS), run_id
        )
    else:
        scan = timed("scan", timings, scan_corpus, root, CORPUS)
        sync = timed(
            "sync", timings, store.sync_corpus, scan, run_id, lambda: iter_corpus(root, CORPUS)
        )
        timings["scan+sync"] = timings.pop("scan") + timings.pop("sync")
    pending = timed("pending", timings, store.pending_documents, CORPUS, TASK, VERSION)
    report = timed("change_report", timings, store.change_report, run_id, CORPUS)
    timings["planning total"] = sum(timings.values())
    timings["reader"] = sync.reader  # type: ignore[assignment]
    return timings, sync, len(pending), len(report)


def run_size(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="store-scale-") as tmp:
        root = Path(tmp) / "sources"
        store = DuckDBStore(path=str(Path(tmp) / "store.duckdb"))
        out: dict = {"docs": n, "load before": os.getloadavg()[0]}
        t0 = time.perf_counter()
        write_corpus(root, n, set())
        out["write source s"] = time.perf_counter() - t0
        out["source MiB"] = (root / CORPUS / "documents.jsonl").stat().st_size / 2**20
        t0 = time.perf_counter()
        count = sum(1 for _ in iter_corpus(root, CORPUS))
        out["python reader only s"] = time.perf_counter() - t0
        assert count == n
        timings = {}
        first = timed(
            "initial sync",
            timings,
            store.sync_corpus,
            scan_corpus(root, CORPUS),
            "r0",
            lambda: iter_corpus(root, CORPUS),
        )
        assert (first.new, first.reader) == (n, "duckdb")
        out["initial sync s"] = timings["initial sync"]
        with store.connect() as con:  # every document extracted once, as after a full run
            con.execute(
                "INSERT INTO extractions (corpus, task, doc_id, content_hash, task_version, backend, model, "
                "status, fields, error, raw_answer, attempts, prompt_tokens, completion_tokens, "
                "latency_s, extracted_at, run_id) SELECT corpus, ?, doc_id, content_hash, ?, 'vllm', 'm', 'ok', "
                '\'{"name": "x", "death_year": 240}\', NULL, NULL, 1, 100, 20, 0.1, now()::TIMESTAMP, \'r0\' '
                "FROM documents WHERE corpus = ?",
                [TASK, VERSION, CORPUS],
            )
        out["store file MiB"] = os.path.getsize(store.path) / 2**20

        timings, sync, pending, report = plan(store, root, "r1")
        assert (sync.unchanged, sync.changed, pending, report) == (n, 0, 0, 0)
        out["unchanged"] = timings

        changed = set(range(0, n, 100))  # exactly 1%
        write_corpus(root, n, changed)
        timings, sync, pending, report = plan(store, root, "r2")
        assert (sync.changed, pending, report) == (len(changed), len(changed), len(changed))
        assert sync.reader == "duckdb"
        out["1% changed"] = timings
        out["pending after 1% change"] = pending

        # The same kind of pass through the Python reader, for comparison (another 1%).
        changed_again = set(range(1, n, 100))
        write_corpus(root, n, changed | changed_again)
        timings, sync, pending, report = plan(store, root, "r3", python_reader=True)
        assert (sync.changed, pending) == (len(changed_again), 2 * len(changed))
        out["1% changed, python reader"] = timings
        out["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["load after"] = os.getloadavg()[0]
    return out


def markdown(results: list[dict]) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Store planning at scale",
        "",
        f"Machine: {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.platform()}; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}.",
        f"Command: `.venv/bin/python benchmarks/store_scale.py` ({time.strftime('%Y-%m-%d')}).",
        "",
        "Planning = what the corpus asset does before extracting (`scan_corpus`: fingerprint, line",
        "count and plainness of the files in one pass over their bytes; `sync_corpus`: skipped when the",
        "fingerprint is the one last synced, else DuckDB's `read_json` parses and hashes the JSONL into",
        "a temp table and one transaction applies the diff) + `pending_documents` + `change_report`.",
        "The last pass per size goes through the streaming Python reader (`sync_documents`), the path",
        "files DuckDB cannot vouch for take, for comparison. Texts are ~330 characters. Peak RSS is for",
        "the whole process of one size (all passes). 1-minute load average in the last column (2 cores).",
        "",
        "| docs | pass | reader | scan+sync s | pending s | change report s | planning s | pending docs |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for name in ("unchanged", "1% changed", "1% changed, python reader"):
            t = r[name]
            pending = {"unchanged": 0, "1% changed": 1, "1% changed, python reader": 2}[name]
            reader = "skipped (fingerprint)" if t["reader"].startswith("skipped") else t["reader"]
            lines.append(
                f"| {r['docs']:,} | {name} | {reader} | {t['scan+sync']:.2f} | {t['pending']:.2f} | "
                f"{t['change_report']:.2f} | **{t['planning total']:.2f}** | "
                f"{pending * r['docs'] // 100:,} |"
            )
    lines += [
        "",
        "| docs | source MiB | python reader alone s | initial sync s | store file MiB | peak RSS MiB | load avg |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['docs']:,} | {r['source MiB']:.0f} | {r['python reader only s']:.2f} | "
            f"{r['initial sync s']:.2f} | {r['store file MiB']:.0f} | {r['peak RSS MiB']:.0f} | "
            f"{r['load before']:.1f} -> {r['load after']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only, keep the results file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_size(args.docs[0])))
        return
    results = []
    for n in args.docs:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--docs", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1], indent=1))
    text = markdown(results)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
