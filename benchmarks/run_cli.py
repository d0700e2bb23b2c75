"""`python -m extraction_assets run ...` with the benchmark task registered.

The `run` command resolves tasks by name from the registry (`EXTRACTION_TASKS`) and executes
the `extract_corpus` job in-process, so registering the synthetic task before calling the
project's own CLI entry point is all it takes: the Dagster job, store and engine are the
project's, unchanged. BENCH_SHAPE picks the token shape.

    BENCH_SHAPE=quick EXTRACTION_TASKS=bench_copy python benchmarks/run_cli.py run CORPUS ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.synthetic import TASK_NAME, bench_task
from extraction_assets.__main__ import main
from extraction_assets.tasks import TASKS

if __name__ == "__main__":
    TASKS[TASK_NAME] = bench_task(os.environ.get("BENCH_SHAPE", "quick"))
    sys.exit(main(sys.argv[1:]))
