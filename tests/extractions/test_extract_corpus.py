"""`extract_corpus` without Dagster: a real DuckDB store and a stub client that answers every pack
with a schema-valid answer (a stub, not a fake server: it produces no faults, only answers)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from extraction_assets.extractions.run import CorpusRun, Recipe, extract_corpus
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.backends.base import Completion
from resources.store import DuckDBStore
from tests.fakes.schema_answers import answer_for

LOG = logging.getLogger("test.extract_corpus")
BIO = get_task("biography")


class StubClient:
    """Answers each request with a valid item per id of the pack schema; counts the calls."""

    backend = "vllm"
    model = "stub-model"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(
        self, messages: list[dict[str, str]], schema: dict, schema_name: str, max_tokens: int
    ) -> Completion:
        self.calls += 1
        started = time.perf_counter()
        text = json.dumps(answer_for(schema))
        return Completion(text, "stop", 100, 20, time.perf_counter() - started, "stub://")

    def generation_params(self) -> dict[str, Any]:
        return {"temperature": 0.0}

    async def aclose(self) -> None:
        pass


def _run(store: DuckDBStore, client: StubClient, run_id: str, recipe: Recipe) -> CorpusRun:
    return asyncio.run(
        extract_corpus(store, client, BIO, "c", recipe, run_id=run_id, max_model_len=8192, log=LOG)
    )


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    docs = [Document.make("c", f"d{i}", f"Person {i} was born in {1900 + i}.") for i in range(5)]
    store.sync_documents("c", docs, run_id="run-1")
    return store


def test_extracts_pending_then_nothing(store: DuckDBStore) -> None:
    client = StubClient()
    first = _run(store, client, "run-1", Recipe(items_per_call=2, max_concurrency=2))
    assert first.pending_before_run == 5
    assert (first.items_per_call, first.max_concurrency) == (2, 2)
    assert first.summary.items_ok == 5 and first.summary.calls == 3
    # The shadow audit re-extracted one packed item alone (2%, at least 1); nothing of it stored.
    assert len(first.audit.sampled) == first.audit.compared == 1 and client.calls == 4
    assert first.stats["ok"] == 5 and first.stats["pending"] == 0
    assert first.task_version == BIO.version("stub-model", {"temperature": 0.0})
    assert (first.backend, first.model) == ("vllm", "stub-model")
    assert sorted(c["doc_id"] for c in first.document_changes if c["change"] == "new") == [
        f"d{i}" for i in range(5)
    ]
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT count(*) FROM extractions WHERE corpus = 'c' AND status = 'ok' AND run_id = ?",
            ["run-1"],
        ).fetchone()
    assert rows == (5,)

    # Unchanged corpus: nothing pending, no call, nothing changed by this run.
    second = _run(store, client, "run-2", Recipe())
    assert second.pending_before_run == 0
    assert second.summary.calls == 0 and client.calls == 4
    assert second.audit.sampled == []
    assert second.changes == [] and second.stats["ok"] == 5


def test_auto_recipe_on_vllm_is_one_item_per_call(store: DuckDBStore) -> None:
    run = _run(store, StubClient(), "run-1", Recipe(items_per_call="auto", max_concurrency=3))
    assert Recipe().items_per_call == "auto"
    assert (run.items_per_call, run.max_concurrency) == (1, 3)
    assert run.engine_settings.items_per_call == run.items_per_call


def test_the_run_module_imports_no_dagster() -> None:
    code = "import sys, extraction_assets.extractions.run; assert 'dagster' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


class SlowStub(StubClient):
    """Answers after `delay_s`; remembers when each call started and ended."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.spans: list[tuple[float, float]] = []

    async def complete(
        self, messages: list[dict[str, str]], schema: dict, schema_name: str, max_tokens: int
    ) -> Completion:
        start = time.perf_counter()
        await asyncio.sleep(self.delay_s)
        done = await super().complete(messages, schema, schema_name, max_tokens)
        self.spans.append((start, time.perf_counter()))
        return done


def test_work_alongside_runs_during_the_corpus_calls_with_the_chosen_recipe(
    store: DuckDBStore,
) -> None:
    """The gold sample is extracted beside the corpus (one batch on the server): the side work
    gets the resolved recipe and starts before the corpus's last call ends."""
    client = SlowStub(delay_s=0.2)
    seen: dict[str, Any] = {}

    async def side(engine_settings: Any) -> None:
        seen["settings"] = engine_settings
        seen["started"] = time.perf_counter()
        await asyncio.sleep(0.05)

    recipe = Recipe(items_per_call=1, max_concurrency=1, pack_audit_share=0.0)
    run = asyncio.run(
        extract_corpus(
            store, client, BIO, "c", recipe, run_id="r", max_model_len=8192, log=LOG, alongside=side
        )
    )
    assert run.summary.items_ok == 5
    assert (seen["settings"].items_per_call, seen["settings"].max_concurrency) == (1, 1)
    assert seen["started"] < max(end for _, end in client.spans)


def test_work_alongside_that_fails_is_logged_not_raised(
    store: DuckDBStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def side(engine_settings: Any) -> None:
        raise RuntimeError("gold file unreadable")

    recipe = Recipe(items_per_call=1, max_concurrency=2, pack_audit_share=0.0)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        run = asyncio.run(
            extract_corpus(
                store, StubClient(), BIO, "c", recipe, run_id="r", max_model_len=8192, log=LOG,
                alongside=side,
            )
        )  # fmt: skip
    assert run.summary.items_ok == 5
    assert "gold file unreadable" in caplog.text


def test_work_alongside_is_cancelled_when_the_corpus_run_fails(store: DuckDBStore) -> None:
    class Broken(StubClient):
        async def complete(self, *args: Any, **kwargs: Any) -> Completion:
            raise RuntimeError("server exploded")

    state = {"cancelled": False}

    async def side(engine_settings: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    recipe = Recipe(items_per_call=1, max_concurrency=1, pack_audit_share=0.0)
    with pytest.raises(RuntimeError, match="server exploded"):
        asyncio.run(
            extract_corpus(
                store, Broken(), BIO, "c", recipe, run_id="r", max_model_len=8192, log=LOG,
                alongside=side,
            )
        )  # fmt: skip
    assert state["cancelled"]
