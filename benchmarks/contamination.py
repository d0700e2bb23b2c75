"""The contamination table from evaluation runs with the re-run alone on and off.

Reads the results JSON of `python -m extraction_assets.evaluation` (one per gold set and mode)
and writes one table: per gold set, pack size and mode, the engine's own detector on the calls
that settled the answers, and the independent gold crosstalk on the ORIGINAL packs with its
chance level (extraction_assets/evaluation/crosstalk.py).

    .venv/bin/python benchmarks/contamination.py RESULTS_DIR --commit <sha> --command "<cmd>"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cell(block: dict | None) -> str:
    if not block or not block.get("answers"):
        return "-"
    return f"{block['contaminated']}/{block['answers']} ({block['rate']:.0%})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--command", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/contamination.md"))
    args = parser.parse_args()
    rows = []
    for path in sorted(args.results.glob("*.json")):
        if path.name.endswith(".predictions.json"):
            continue
        res = json.loads(path.read_text(encoding="utf-8"))
        mode = "on" if res.get("isolate_suspicious", True) else "off"
        for run in res["runs"]:
            overall = run["scores"]["overall"]
            # Field names only: the values quote the shared gold data, which stays out of git.
            fields = ", ".join(
                f"{k} {v}"
                for k, v in sorted((run.get("crosstalk") or {}).get("by_field", {}).items())
            )
            rows.append(
                (
                    res["gold"],
                    run["items_per_call"],
                    mode,
                    f"{overall['answered']}/{overall['n_documents']}",
                    run["run_summary"].get("rerun_alone", 0),
                    cell(run["contamination"]),
                    cell(run.get("crosstalk")),
                    cell(run.get("crosstalk_chance")),
                    fields or "-",
                )
            )
    lines = [
        "# Cross-item contamination, measured independently of the engine",
        "",
        f"Measured at commit {args.commit} on the shared CPU vLLM server (SmolLM2-135M-Instruct), "
        "which was heavily loaded by other sessions' tests (8 engineers, 2 cores): timings are "
        "not comparable and are left out. Commands:",
        "",
        "```bash",
        *args.command,
        "```",
        "",
        "| gold | items/call | re-run alone | answered | items re-run alone | engine detector (settling calls) | gold crosstalk (original packs) | chance (shuffled groups) | crosstalk by field |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    lines += [
        "",
        "Engine detector: answers naming someone found only in another document of the call that "
        "settled them (engine/contamination.py, what the older table counted). Gold crosstalk "
        "(evaluation/crosstalk.py, no engine code): answers, among items that had pack-mates in "
        "the FIRST request they were sent in (recorded from the requests), with a field whose value "
        "matches a pack-mate's gold value and not the item's own gold (enum fields left out). "
        "Chance: the same detector against a seeded shuffle of the documents into groups of the "
        "same sizes (pack-mates they never had).",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
