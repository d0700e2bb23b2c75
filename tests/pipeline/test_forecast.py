"""Why: an operator plans a backfill from the forecast (issue 15 item 6), so it must count what
the next run will really do: the documents it extracts, the calls it makes, minutes from the
rate stored by earlier runs of the same backend, model, task and pack size, and the OpenAI cost
from the price table. Checked against a run that follows it (the fake stands in for OpenAI; the
store is a real DuckDB file)."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest
from fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer

from extraction_assets.extractions.run import Recipe, extract_corpus
from extraction_assets.forecast import forecast_corpus, format_forecasts, price_table
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.backends.openai_backend import OpenAIProtocolClient
from resources.store import DuckDBStore

BIO = get_task("biography")
PRICES = {"gpt-4o-mini": (0.15, 0.60)}


def docs(ids: range) -> list[Document]:
    return [
        Document.make("c", f"d{i:02d}", f"Ahmad ibn Omar number {i} died in {900 + i}.")
        for i in ids
    ]


def test_forecast_matches_the_run_that_follows(tmp_path) -> None:
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    store.ensure_schema()
    store.sync_documents("c", [*docs(range(6)), Document.make("c", "huge", "x" * 60_000)], "s1")

    async def go(url: str):
        client = OpenAIProtocolClient(
            "openai",
            [url],
            "gpt-4o-mini",
            api_key="k",
            timeout_s=5,
            max_retries=1,
            temperature=0.0,
            seed=0,
        )
        try:
            before = await forecast_corpus(
                store, client, BIO, "c", items_per_call=3, max_model_len=8192, prices=PRICES
            )
            run = await extract_corpus(
                store,
                client,
                BIO,
                "c",
                Recipe(items_per_call=3, max_concurrency=2, pack_audit_share=0.0),
                run_id="r1",
                max_model_len=8192,
                log=logging.getLogger("test.forecast"),
            )
            store.sync_documents(
                "c", [*docs(range(15)), Document.make("c", "huge", "x" * 60_000)], "s2"
            )
            after = await forecast_corpus(
                store, client, BIO, "c", items_per_call=3, max_model_len=8192, prices=PRICES
            )
            return before, run, after
        finally:
            await client.aclose()

    with FaultInjectingOpenAIServer() as server:
        before, run, after = asyncio.run(go(server.url))
        calls_made = len(server.requests)
    assert (before.pending, before.too_long) == (7, 1) and before.pending == run.pending_before_run
    assert before.calls == 2 == calls_made  # the huge document gets no call
    assert before.items_per_min is None and before.minutes is None  # nothing measured yet
    assert before.input_tokens > 0 and before.output_tokens > 0
    assert before.cost_usd == pytest.approx(
        (before.input_tokens * 0.15 + before.output_tokens * 0.60) / 1e6
    )
    # The huge document failed as too long (not pending again); 9 new ones are.
    assert (after.pending, after.calls) == (9, math.ceil(9 / 3))
    assert after.rate_runs == 1 and after.items_per_min and after.items_per_min > 0
    assert after.minutes == pytest.approx(9 / after.items_per_min)
    table = format_forecasts([before, after])
    assert "no stored rate" in table and "too long" in table
    assert "forecast/minutes" in after.as_metadata()


def test_price_table_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXTRACTION_PRICES", '{"my-model": [1, 2]}')
    assert price_table()["my-model"] == (1.0, 2.0) and "gpt-4o-mini" in price_table()
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-4o-mini": [9, 9]}')
    assert price_table(str(path))["gpt-4o-mini"] == (9.0, 9.0)
    with pytest.raises(ValueError, match="EXTRACTION_PRICES"):
        price_table('{"m": 3}')


def test_plan_command_prints_the_forecast(tmp_path, monkeypatch, capsys) -> None:
    from extraction_assets.cli import main

    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    store.ensure_schema()
    store.sync_documents("c", docs(range(4)), "s1")
    # The folder now holds two documents more than the store synced: the plan counts them.
    (tmp_path / "src" / "c").mkdir(parents=True)
    (tmp_path / "src" / "c" / "documents.jsonl").write_text(
        "".join(json.dumps({"id": d.doc_id, "text": d.text}) + "\n" for d in docs(range(6)))
    )
    for name, value in {
        "EXTRACTION_DB": str(tmp_path / "store.duckdb"),
        "EXTRACTION_HOME": str(tmp_path),
        "EXTRACTION_TASKS": "biography",
        "EXTRACTION_SOURCE_ROOT": str(tmp_path / "src"),
        "LLM_BACKEND": "openai",
        "LLM_MODEL": "gpt-4o-mini",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "EXTRACTION_PRICES": "",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["plan", "--items-per-call", "2"]) == 0  # no server: the plan makes no call
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["corpus", "task", "pending", "calls"]
    assert out[1].split()[:5] == ["c", "biography", "6", "3", "2"]
    assert "built-in OpenAI list prices of 20" in out[-1]
