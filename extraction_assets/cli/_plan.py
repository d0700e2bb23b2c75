"""`extraction plan [CORPUS ...]`: the forecast of a run (forecast.py), no LLM call made."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def cmd_plan(args: argparse.Namespace) -> int:
    from extraction_assets.corpora.sources import read_corpus
    from extraction_assets.forecast import forecast_corpus, format_forecasts, price_table
    from extraction_assets.settings import Settings
    from extraction_assets.tasks import load_tasks
    from resources.llm import LLMResource
    from resources.store import DuckDBStore

    settings = Settings.from_env()
    if not settings.lake_catalog and not settings.store_path.exists():
        print(
            f"error: no store at {settings.store_path} (EXTRACTION_DB): sync or run first",
            file=sys.stderr,
        )
        return 2
    corpora = args.corpus or sorted(
        p.name for p in settings.source_root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    llm = LLMResource.from_env(settings.llm)
    store = DuckDBStore.from_settings(settings)
    prices = price_table(settings.prices or "")
    items: int | str = args.items_per_call

    async def go() -> list[Any]:
        client = llm.get_client()
        try:
            return [
                await forecast_corpus(
                    store,
                    client,
                    task,
                    corpus,
                    items_per_call=items,
                    max_model_len=llm.max_model_len,
                    prices=prices,
                    source=read_corpus(settings.source_root, corpus, settings.max_file_bytes),
                )
                for task in load_tasks(settings.tasks)
                for corpus in corpora
            ]
        finally:
            await client.aclose()

    print(format_forecasts(asyncio.run(go())))
    print("(documents as in the source folders now; output tokens: the answer budget per call)")
    if llm.backend == "openai":
        from extraction_assets.forecast import PRICES_AS_OF

        print(
            f"(cost: built-in OpenAI list prices of {PRICES_AS_OF}, to be checked against "
            "https://openai.com/api/pricing; EXTRACTION_PRICES overrides them)"
        )
    return 0


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="forecast a run: documents pending, tokens, calls, minutes, "
        "cost (OpenAI); makes no LLM call",
    )
    p.add_argument("corpus", nargs="*", help="corpora (default: every folder of the source root)")
    p.add_argument(
        "--items-per-call",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help='"auto" or a number',
    )
    p.set_defaults(func=cmd_plan)
