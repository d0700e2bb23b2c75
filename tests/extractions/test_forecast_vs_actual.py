"""The forecast in the extraction step (issue 15 item 6): made before the first call with the
run's recipe, handed to the caller (the asset shows it on the partition), and compared with what
the run did (error in %); the items/min it uses is derived from the store's calls (a real DuckDB
file; hand-made call rows where the arithmetic is checked)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from extraction_assets.engine import RunSummary
from extraction_assets.extractions.run import Recipe, extract_corpus
from extraction_assets.forecast import DEFAULT_PRICES, Forecast, compare, price_for
from extraction_assets.tasks import get_task
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import CallContext, DuckDBStore
from tests.extractions.test_extract_corpus import StubClient

BIO = get_task("biography")
LOG = logging.getLogger("test.forecast_vs_actual")
T0 = 1_800_000_000.0


def _docs(n: int, start: int = 0) -> list[Document]:
    return [
        Document.make("c", f"d{i:02d}", f"Person {i} was born in {1900 + i}.")
        for i in range(start, start + n)
    ]


def _forecast(**changes: object) -> Forecast:
    fields: dict[str, object] = dict(
        corpus="c",
        task="biography",
        backend="vllm",
        model="m",
        items_per_call=1,
        pending=10,
        too_long=0,
        calls=10,
        input_tokens=5000,
        output_tokens=3000,
        items_per_min=20.0,
        rate_runs=2,
        minutes=0.5,
        cost_usd=None,
    )
    fields.update(changes)
    return Forecast(**fields)  # type: ignore[arg-type]


def _summary(calls: int, prompt: int, completion: int, elapsed_s: float) -> RunSummary:
    return RunSummary(
        items_total=10,
        items_ok=10,
        items_failed=0,
        calls=calls,
        retried_calls=0,
        prompt_tokens=prompt,
        completion_tokens=completion,
        elapsed_s=elapsed_s,
        items_per_min=0.0,
        output_tokens_per_s=0.0,
    )


def test_compare_gives_the_error_in_percent_of_the_actual() -> None:
    vs = compare(_forecast(), _summary(calls=12, prompt=4000, completion=1000, elapsed_s=60))
    assert vs["forecast_vs_actual/calls_forecast"] == 10
    assert vs["forecast_vs_actual/calls_actual"] == 12
    assert vs["forecast_vs_actual/calls_error_pct"] == pytest.approx(-16.7)
    assert vs["forecast_vs_actual/input_tokens_error_pct"] == 25.0
    assert vs["forecast_vs_actual/output_tokens_error_pct"] == 200.0  # the budget: an upper bound
    assert vs["forecast_vs_actual/minutes_actual"] == 1.0
    assert vs["forecast_vs_actual/minutes_error_pct"] == -50.0

    no_rate = compare(
        _forecast(items_per_min=None, rate_runs=0, minutes=None),
        _summary(calls=0, prompt=0, completion=0, elapsed_s=0),
    )
    assert no_rate["forecast_vs_actual/minutes_forecast"] is None
    assert no_rate["forecast_vs_actual/minutes_error_pct"] is None
    assert no_rate["forecast_vs_actual/calls_error_pct"] is None  # nothing was called


def test_metadata_says_when_no_rate_was_measured() -> None:
    meta = _forecast(items_per_min=None, rate_runs=0, minutes=None).as_metadata()
    assert meta["forecast/rate"].startswith("no measured rate yet")
    assert "forecast/minutes" not in meta
    assert "20.0 items/min over the last 2 run(s)" in _forecast().as_metadata()["forecast/rate"]
    assert "~0.5 min at 20.0 items/min" in _forecast().summary()
    line = _forecast(items_per_min=None, rate_runs=0, minutes=None).summary()
    assert line.count("no measured rate yet") == 1


def _record(
    store: DuckDBStore,
    run_id: str,
    docs: list[Document],
    *,
    pack: int,
    every_s: float,
    latency_s: float,
    t0: float,
    model: str = "m",
) -> None:
    """One call per pack of `docs`, the k-th starting at t0 + k * every_s."""
    for k in range(0, len(docs), pack):
        chunk = docs[k : k + pack]
        call = CallRecord(
            f"{run_id}-{k}",
            "http://u/v1",
            len(chunk),
            1,
            300,
            40,
            latency_s,
            "stop",
            len(chunk),
            0,
            None,
            t0 + (k // pack) * every_s,
        )
        store.record_outcome(
            outcome=CallOutcome(
                call=call,
                results=[ItemResult(d.doc_id, d.content_hash, "ok", {"name": "x"}) for d in chunk],
            ),
            context=CallContext(run_id, "c", "biography", "v1", "vllm", model),
        )


def _rate(store: DuckDBStore, task: str, items_per_call: int) -> tuple[float, int] | None:
    """(documents per minute, runs measured) of the vllm/m runs stored."""
    measured = store.measured_runs("vllm", "m", task, items_per_call)
    return None if measured is None else (measured.items_per_min, measured.runs)


def test_rate_from_hand_made_calls(tmp_path: Path) -> None:
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    docs = _docs(30)
    store.sync_documents("c", docs, "sync")
    # 10 one-item calls 6 s apart, 6 s each: 60 s of wall time for 10 items.
    _record(store, "r1", docs[:10], pack=1, every_s=6, latency_s=6, t0=T0)
    # Newer: 10 one-item calls 2 s apart, 2 s each: 20 s.
    _record(store, "r2", docs[10:20], pack=1, every_s=2, latency_s=2, t0=T0 + 100)
    # Packs of 5 and another model: other rates, not mixed in.
    _record(store, "r3", docs[20:], pack=5, every_s=1, latency_s=9, t0=T0 + 200)
    _record(store, "r4", docs[:10], pack=1, every_s=1, latency_s=1, t0=T0 + 300, model="x")

    per_min, runs = _rate(store, "biography", 1) or (0.0, 0)
    assert runs == 2 and per_min == pytest.approx(20 / (80 / 60))
    assert _rate(store, "biography", 5) == pytest.approx((10 / (10 / 60), 1))
    assert _rate(store, "biography", 3) is None
    assert _rate(store, "other-task", 1) is None


def test_the_run_forecasts_before_its_first_call_and_keeps_it(tmp_path: Path) -> None:
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    store.sync_documents("c", _docs(5), "s1")
    client = StubClient()
    seen: list[tuple[Forecast, int]] = []

    def on_forecast(forecast: Forecast) -> None:
        seen.append((forecast, client.calls))

    recipe = Recipe(items_per_call=2, max_concurrency=2, pack_audit_share=0.0)
    run = asyncio.run(
        extract_corpus(
            store,
            client,
            BIO,
            "c",
            recipe,
            run_id="r1",
            max_model_len=8192,
            log=LOG,
            on_forecast=on_forecast,
        )
    )
    assert len(seen) == 1 and seen[0][1] == 0, "the forecast comes before the first call"
    first = seen[0][0]
    assert run.forecast == first
    assert (first.pending, first.items_per_call, first.calls) == (5, 2, 3)
    assert first.minutes is None  # nothing measured yet on a fresh store
    assert compare(first, run.summary)["forecast_vs_actual/calls_error_pct"] == 0.0

    store.sync_documents("c", _docs(9), "s2")  # 4 new documents
    second = asyncio.run(
        extract_corpus(store, client, BIO, "c", recipe, run_id="r2", max_model_len=8192, log=LOG)
    ).forecast
    assert second is not None and (second.pending, second.calls) == (4, 2)
    assert second.rate_runs == 1 and second.items_per_min and second.minutes is not None
    assert second.minutes == pytest.approx(4 / second.items_per_min)


def test_a_dated_model_snapshot_costs_what_its_model_costs() -> None:
    assert price_for("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o-2024-08-06", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o"]
    assert price_for("gpt-4.1-mini", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4.1-mini"]
    assert price_for("llama-3", DEFAULT_PRICES) is None


def test_rate_counts_each_corpus_of_a_run_apart(tmp_path: Path) -> None:
    """A run's gold_sample check extracts its gold pseudo-corpus after the corpus (same run id):
    the wait between the two is not extraction time."""
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    docs, gold = _docs(10), [Document.make("[gold]sample", "g1", "Gold person.")]
    store.sync_documents("c", docs, "sync")
    store.sync_documents("[gold]sample", gold, "sync")
    _record(store, "r1", docs, pack=1, every_s=1, latency_s=1, t0=T0)  # 10 items in 10 s
    call = CallRecord("r1-gold", "http://u/v1", 1, 1, 300, 40, 1.0, "stop", 1, 0, None, T0 + 600)
    store.record_outcome(
        outcome=CallOutcome(call=call, results=[ItemResult("g1", gold[0].content_hash, "ok", {})]),
        context=CallContext("r1", "[gold]sample", "biography", "v1", "vllm", "m"),
    )
    per_min, _ = _rate(store, "biography", 1) or (0.0, 0)
    assert per_min == pytest.approx(11 / (11 / 60))  # not 11 items in 601 s


class EveryThirdAnswerCut(StubClient):
    """Cuts every third answer short (finish_reason "length"): the engine asks again, alone."""

    async def complete(self, messages, schema, schema_name, max_tokens):  # type: ignore[no-untyped-def]
        done = await super().complete(messages, schema, schema_name, max_tokens)
        if self.calls % 3 == 0:
            return dataclasses.replace(
                done, text=done.text[: len(done.text) // 2], finish_reason="length"
            )
        return done


def test_the_forecast_foresees_the_retries_earlier_runs_needed(tmp_path: Path) -> None:
    """Calls and input tokens scale by what retries added in earlier runs of the same backend,
    model, task and pack size; output tokens are what those runs generated per document."""
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    client = EveryThirdAnswerCut()
    recipe = Recipe(items_per_call=1, max_concurrency=1, pack_audit_share=0.0)

    def run(run_id: str):  # type: ignore[no-untyped-def]
        return asyncio.run(
            extract_corpus(
                store, client, BIO, "c", recipe, run_id=run_id, max_model_len=8192, log=LOG
            )
        )

    store.sync_documents("c", _docs(12), "s1")
    first = run("r1")
    assert first.forecast is not None and first.forecast.retry_factor is None
    assert first.summary.calls > first.forecast.calls == 12, "retries came on top"

    store.sync_documents("c", _docs(24), "s2")  # 12 new documents, the same kind
    second = run("r2")
    forecast = second.forecast
    assert forecast is not None and forecast.first_pass_calls == forecast.pending >= 12
    assert forecast.retry_factor == pytest.approx(first.summary.calls / 12, abs=1e-3)
    assert abs(forecast.calls - second.summary.calls) <= 1
    assert forecast.output_tokens == pytest.approx(second.summary.completion_tokens, rel=0.1)
