"""The whole example: convert, extract through the Dagster job, score.

    python run.py [--limit 20] [--items-per-call 1] [--max-concurrency 8]

The LLM is whatever LLM_* says (default: the local vLLM server at 127.0.0.1:8000). The store,
exports and Dagster instance go to data/home (EXTRACTION_HOME): `make ui` style with
DAGSTER_HOME=data/home/dagster_home shows the run, the assets and the gold_sample check.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--data", help="the Re-DocRED folder (default ../shared/data/redocred)")
    parser.add_argument("--items-per-call", default="1")
    parser.add_argument("--max-concurrency", default="8")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    data = HERE / "data"
    env = {
        **os.environ,
        "EXTRACTION_TASKS": str(HERE / "relations.yaml"),
        "EXTRACTION_SOURCE_ROOT": str(data / "corpora"),
        "EXTRACTION_HOME": os.environ.get("EXTRACTION_HOME", str(data / "home")),
        "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
    }
    env.setdefault("EXTRACTION_GOLD_SAMPLE", "sample")  # on: the task's own gold is scored
    python = sys.executable
    convert = [python, str(HERE / "convert.py"), "--limit", str(args.limit)]
    if args.data:
        convert += ["--data", args.data]
    steps = [
        convert,
        [
            python,
            "-m",
            "extraction_assets",
            "run",
            "redocred",
            "--items-per-call",
            args.items_per_call,
            "--max-concurrency",
            args.max_concurrency,
        ],
        [
            python,
            str(HERE / "score.py"),
            "--store",
            str(Path(env["EXTRACTION_HOME"]) / "store.duckdb"),
        ]
        + (["--out", str(args.out)] if args.out else []),
    ]
    for step in steps:
        print("$", " ".join(step), flush=True)
        code = subprocess.call(step, env=env)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
