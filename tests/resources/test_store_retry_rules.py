"""What a run over an unchanged corpus costs: nothing, once every document is ok or given up.

Runs here are the product's loop (sync, pending set, engine, outcome writer) on a real DuckDB
file. The LLM is the FAULT-INJECTING fake server (tests/fakes): it answers every document
validly except one id it always answers with an invalid item, which no real server does on
demand. A document too long for the context never reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from extraction_assets.engine import EngineSettings, extract
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.backends.openai_backend import OpenAIProtocolClient
from resources.store import CallContext, DuckDBStore
from tests.fakes.fault_injecting_openai_server import (
    ChatRequest,
    FaultInjectingOpenAIServer,
    answer,
)

BIO = get_task("biography")
CORPUS = "c"
VERSION = "v1"
BAD = "d03"  # always answered with an invalid item
COUNTED = ("calls", "extractions", "extraction_history", "changes")


def _docs(n: int, oversized: bool = False) -> list[Document]:
    docs = [Document.make(CORPUS, f"d{i:02d}", f"ترجمة رقم {i}") for i in range(n)]
    if oversized:  # ~60k bytes: far over an 8192-token context at any estimate
        docs.append(Document.make(CORPUS, "huge", "ترجمة طويلة جدا " * 2000))
    return docs


def _bad_item(req: ChatRequest) -> Any:
    answers = req.good_answer()
    if BAD in answers:
        answers[BAD] = {"unexpected": True}
    return answers


def _counts(store: DuckDBStore) -> dict[str, int]:
    with store.connect(read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}


def _run(
    store: DuckDBStore,
    server: FaultInjectingOpenAIServer,
    docs: list[Document],
    run_id: str,
    *,
    per_call: int = 20,
    retry_limit: int = 3,
    version: str = VERSION,
    max_model_len: int = 8192,
) -> int:
    """One run as the asset does it; returns how many requests reached the server."""
    before = len(server.requests)
    store.recover_journals()
    store.sync_documents(CORPUS, docs, run_id)
    pending = store.pending_documents(CORPUS, BIO.name, version, retry_limit, max_model_len)
    settings = EngineSettings(
        items_per_call=per_call, max_concurrency=4, max_model_len=max_model_len,
        progress_interval_s=60,
    )  # fmt: skip

    async def go() -> None:
        client = OpenAIProtocolClient(
            "vllm", [server.url], "fake", api_key=None, timeout_s=5.0, max_retries=1,
            temperature=0.0, seed=0, backoff_base_s=0.01, backoff_max_s=0.05,
        )  # fmt: skip
        context = CallContext(run_id, CORPUS, BIO.name, version, "vllm", "fake")
        try:
            async with store.outcome_writer(context) as writer:
                await extract(BIO, pending, client, settings, writer.write,
                              logging.getLogger("test.retry"))  # fmt: skip
        finally:
            await client.aclose()

    asyncio.run(go())
    return len(server.requests) - before


@pytest.fixture
def store(any_store: DuckDBStore) -> DuckDBStore:
    """A DuckDB file, and a DuckLake catalog: the rules hold on both."""
    return any_store


def test_an_oversized_document_is_not_re_extracted_by_every_run(store: DuckDBStore) -> None:
    docs = _docs(3, oversized=True)
    with FaultInjectingOpenAIServer() as server:
        _run(store, server, docs, "r1")
        row = store.extraction_rows(CORPUS, BIO.name)["huge"]
        assert (row["status"], row["error"]) == ("failed", "too long for the context")
        first = _counts(store)
        assert _run(store, server, docs, "r2") == 0
        assert _counts(store) == first  # no nocall row, no history row, no change row
        assert store.count_pending(CORPUS, BIO.name, VERSION) == 0
    assert all("huge" not in r.ids for r in server.requests)


def test_a_longer_context_or_a_new_task_version_makes_it_pending_again(
    store: DuckDBStore,
) -> None:
    docs = _docs(1, oversized=True)
    with FaultInjectingOpenAIServer() as server:
        _run(store, server, docs, "r1", max_model_len=8192)
        pending = {
            n: [d.doc_id for d in store.pending_documents(CORPUS, BIO.name, VERSION,
                                                          max_model_len=n)]
            for n in (4096, 8192, 65536)
        }  # fmt: skip
        assert pending == {4096: [], 8192: [], 65536: ["huge"]}
        assert [d.doc_id for d in store.pending_documents(CORPUS, BIO.name, "v2")] == [
            "d00", "huge",
        ]  # fmt: skip
        # Judged again against the longer context (still too long for the fake's 8192 budget
        # in the engine): a failure that says the same thing adds no history or change rows.
        before = _counts(store)
        _run(store, server, docs, "r2", max_model_len=16384)
        after = _counts(store)
        assert after["extraction_history"] == before["extraction_history"]
        assert after["changes"] == before["changes"]
        assert store.pending_documents(CORPUS, BIO.name, VERSION, max_model_len=16384) == []


@pytest.mark.parametrize("per_call", [1, 20])
def test_retry_limit_counts_runs_whatever_the_pack_size(store: DuckDBStore, per_call: int) -> None:
    docs = _docs(8, oversized=True)
    with FaultInjectingOpenAIServer(rule=lambda req: answer(_bad_item)) as server:
        runs_with_calls = 0
        for i in range(6):
            if _run(store, server, docs, f"r{i}", per_call=per_call, retry_limit=3):
                runs_with_calls += 1
            if BAD not in {d.doc_id for d in store.pending_documents(CORPUS, BIO.name, VERSION, 3)}:
                break
        assert (runs_with_calls, i + 1) == (3, 3)  # given up after exactly retry_limit runs
        rows = store.extraction_rows(CORPUS, BIO.name)
        assert rows[BAD]["status"] == "failed"
        assert all(rows[d.doc_id]["status"] == "ok" for d in docs if d.doc_id not in (BAD, "huge"))
        # ok or given up: an unchanged corpus costs nothing any more
        before = _counts(store)
        assert _run(store, server, docs, "r-last", per_call=per_call) == 0
        assert _counts(store) == before
        assert store.table_stats(CORPUS, BIO.name, VERSION, 3)["failed_exhausted"] == 2
