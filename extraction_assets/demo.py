"""The main job on the embedded default: local vLLM on CPU, the bundled sample corpus, a real instance.

`python -m extraction_assets demo` (what `make demo` runs):
1. makes sure an LLM server answers (starts the embedded local vLLM server unless LLM_BASE_URL is set),
2. registers a partition per corpus under the source root in a persistent Dagster instance,
3. runs the `extract_corpus` job for each corpus (so the runs are visible in the UI afterwards),
4. prints a summary of the typed table and where the DuckDB file is.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from extraction_assets.cli._run import (
    ensure_server,
    prepare_dagster_home,
    print_summary,
    run_corpora,
)
from extraction_assets.settings import Settings


def main(args: argparse.Namespace | None = None) -> int:
    """`demo`: the embedded server, every corpus under the source root, a summary."""
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    dagster_home = prepare_dagster_home(settings)
    url = ensure_server(settings)
    if not settings.llm.base_url:
        settings = replace(settings, llm=settings.llm.model_copy(update={"base_url": url}))
    t0 = time.monotonic()
    corpora, run_ids, ok = run_corpora(settings)
    if not corpora:
        print(f"no corpus folders under {settings.source_root}", file=sys.stderr)
        return 1
    print_summary(settings, corpora, run_ids, time.monotonic() - t0)
    print(f"\nDagster instance: DAGSTER_HOME={dagster_home}")
    print("Open the UI on it:  make ui   (then http://127.0.0.1:3000)")
    return 0 if ok else 1
