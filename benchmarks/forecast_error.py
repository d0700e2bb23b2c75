"""The forecast's error on a real run: the forecast from the store as it was before the run,
against the calls the run recorded.

    python -m benchmarks.forecast_error [--before BEFORE.duckdb] --dagster-home DAGSTER_HOME \\
        --source-root ROOT --corpus NAME [--out FILE.json]

`--before` is a copy of the store taken just before the run (absent: a fresh store); the corpus
folder is synced into a scratch copy of it (as the run's corpus_documents step does) and
`extraction_assets.forecast.forecast_corpus` forecasts it at the recipe the run used (read from
the run's materialisation). The actual figures are the run's, from its biography_extractions
materialisation in DAGSTER_HOME (run/calls, run/prompt_tokens, run/completion_tokens,
run/elapsed_s: the engine's summary, retries included). LLM_* as for a run (the forecast counts tokens with the server's tokenizer;
it makes no extraction call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from extraction_assets.corpora.sources import read_corpus
from extraction_assets.forecast import forecast_corpus
from extraction_assets.settings import Settings
from extraction_assets.tasks import get_task
from resources.llm import LLMResource
from resources.store import DuckDBStore


def actual(dagster_home: Path, corpus: str) -> dict[str, Any]:
    """The run's figures as its materialisation recorded them (run/*: the engine's summary)."""
    import os

    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("biography_extractions"), asset_partitions=[corpus]
            ),
            limit=1,
        ).records
    if not records:
        raise SystemExit(f"no biography_extractions materialisation of {corpus!r}")
    meta = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    return {
        "run_id": records[0].run_id,
        "items_per_call": meta["items_per_call"],
        "pending_before_run": meta["pending_before_run"],
        "calls": meta["run/calls"],
        "retried_calls": meta["run/retried_calls"],
        "input_tokens": meta["run/prompt_tokens"],
        "output_tokens": meta["run/completion_tokens"],
        "minutes": round(float(meta["run/elapsed_s"]) / 60, 2),  # type: ignore[arg-type]
        "items_per_min": meta["run/items_per_min"],
    }


async def forecast(before: Path | None, root: Path, corpus: str, n: int) -> dict[str, Any]:
    settings = Settings.from_env()
    llm = LLMResource.from_env(settings.llm)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.duckdb"
        if before is not None:
            shutil.copyfile(before, path)
        store = DuckDBStore(path=str(path))
        store.sync_documents(corpus, read_corpus(root, corpus, settings.max_file_bytes), "plan")
        client = llm.get_client()
        try:
            f = await forecast_corpus(
                store,
                client,
                get_task("biography"),
                corpus,
                items_per_call=n,
                max_model_len=llm.max_model_len,
            )
        finally:
            await client.aclose()
    return {k: v for k, v in vars(f).items()}


def error_pct(predicted: float | None, real: float) -> float | None:
    return None if predicted is None or not real else round(100 * (predicted - real) / real, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path)
    parser.add_argument("--dagster-home", type=Path, required=True)
    parser.add_argument("--source-root", type=Path, required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    real = actual(args.dagster_home, args.corpus)
    f = asyncio.run(
        forecast(args.before, args.source_root, args.corpus, int(real["items_per_call"] or 1))
    )
    minutes = real["minutes"]
    result = {
        "corpus": args.corpus,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "forecast": f,
        "actual": real,
        "error_pct": {
            "calls": error_pct(f["calls"], real["calls"]),
            "input_tokens": error_pct(f["input_tokens"], real["input_tokens"]),
            "output_tokens": error_pct(f["output_tokens"], real["output_tokens"]),
            "minutes": error_pct(f["minutes"], minutes),
        },
    }
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
