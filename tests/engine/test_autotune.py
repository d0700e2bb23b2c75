"""Why: `items_per_call: auto` must pick the fastest recipe the server offers, not a rule of
thumb. The search logic is checked against fake timing functions that model the two kinds of
server (continuous batching: more requests in flight help until the batch is full; one slot:
only packing helps), including that it gets within 90% of the best grid point, respects the
context and memory limits and the sample size. One tiny test runs the real probe against the
real vLLM server."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from extraction_assets.engine import EngineSettings
from extraction_assets.engine.autotune import (
    CONCURRENCIES,
    PACK_SIZES,
    ProbePoint,
    _kv_cache_tokens,
    choose_recipe,
    max_pack_by_context,
    search,
)
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.llm import LLMResource

log = logging.getLogger("test.autotune")


def batching_server(
    n: int,
    c: int,
    *,
    batch: int = 32,
    step_s: float = 0.02,
    out_tokens: int = 300,
    request_overhead_s: float = 0.5,
) -> float:
    """Seconds for one wave of c requests of n items on a continuous-batching server: up to
    `batch` sequences decode together; a pack's answers are decoded one after the other."""
    waves = -(-c // batch)
    return waves * (request_overhead_s + n * out_tokens * step_s)


def one_slot_server(
    n: int, c: int, *, step_s: float = 0.02, out_tokens: int = 300, request_overhead_s: float = 3.0
) -> float:
    """A server running one request at a time: in flight requests just queue."""
    return c * (request_overhead_s + n * out_tokens * step_s)


def fake_measure(seconds_for_wave, calls: list[tuple[int, int]], ok_share=lambda n: 1.0):
    async def measure(n: int, c: int) -> ProbePoint:
        calls.append((n, c))
        items = n * c
        return ProbePoint(n, c, items, round(items * ok_share(n)), seconds_for_wave(n, c))

    return measure


def grid_best(seconds_for_wave, limit: int, ok_share=lambda n: 1.0) -> float:
    return max(
        60 * n * c * ok_share(n) / seconds_for_wave(n, c)
        for n, c in itertools.product(PACK_SIZES, CONCURRENCIES)
        if n * c <= limit
    )


def run_search(seconds_for_wave, sample_size: int = 2000, **kw):
    calls: list[tuple[int, int]] = []
    best, probes, why = asyncio.run(
        search(
            fake_measure(seconds_for_wave, calls, kw.pop("ok_share", lambda n: 1.0)),
            sample_size=sample_size,
            log=log,
            **kw,
        )
    )
    return best, probes, why, calls


def test_continuous_batching_prefers_many_requests_in_flight() -> None:
    best, _probes, why, calls = run_search(batching_server)
    assert best.max_concurrency >= 32, why
    assert best.ok_items_per_min >= 0.9 * grid_best(batching_server, 2000)
    assert len(calls) < len(PACK_SIZES) * len(CONCURRENCIES)  # a probe, not the whole grid


def test_one_noisy_probe_does_not_end_the_climb() -> None:
    """A busy machine measured 1 x 16 at 189 items/min between 1 x 8 at 306 and 1 x 64 at 505."""

    def noisy(n: int, c: int) -> float:
        return batching_server(n, c) * (3.0 if (n, c) == (1, 16) else 1.0)

    best, _probes, why, calls = run_search(noisy)
    assert (1, 32) in calls  # the climb went on past the slow probe
    assert best.ok_items_per_min >= 0.9 * grid_best(batching_server, 2000), why


def test_one_slot_server_prefers_packing() -> None:
    best, _probes, why, _calls = run_search(one_slot_server)
    assert best.items_per_call == max(PACK_SIZES), why
    assert best.ok_items_per_min >= 0.9 * grid_best(one_slot_server, 2000)


def test_invalid_answers_are_not_throughput() -> None:
    # Big packs are fastest in raw items but half their answers fail validation.
    def ok_share(n: int) -> float:
        return 1.0 if n <= 5 else 0.3

    best, *_ = run_search(one_slot_server, ok_share=ok_share)
    assert best.items_per_call == 5
    assert best.ok_items_per_min >= 0.9 * grid_best(one_slot_server, 2000, ok_share)


def test_points_stay_within_sample_and_memory() -> None:
    _, _, _, calls = run_search(batching_server, sample_size=100, max_items_in_flight=40)
    assert calls and all(n * c <= 40 for n, c in calls)
    _, _, _, calls = run_search(batching_server, sample_size=30)
    assert all(n * c <= 30 for n, c in calls)


def test_tiny_sample_still_answers() -> None:
    best, _probes, _why, _ = run_search(batching_server, sample_size=1)
    assert (best.items_per_call, best.max_concurrency) == (1, 1)


def test_pack_size_is_capped_by_the_context() -> None:
    task = get_task("biography")
    docs = [Document.make("c", f"d{i}", "x" * 2000) for i in range(5)]
    # 8192 tokens hold a few 1000-token documents with their 600-token answers, not 20.
    n = max_pack_by_context(task, docs, EngineSettings(max_model_len=8192), 20)
    assert 1 <= n < 20
    assert max_pack_by_context(task, docs, EngineSettings(max_model_len=100_000), 20) == 20


def test_kv_cache_size_from_vllm_metrics() -> None:
    text = (
        '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="128",'
        'cache_dtype="auto",num_gpu_blocks="728",prefix_caching="True"} 1.0\n'
    )
    assert _kv_cache_tokens(text) == 728 * 128
    assert _kv_cache_tokens("vllm:other 1.0") is None


@pytest.mark.vllm
def test_probe_against_the_real_server(vllm_url: str, vllm_model: str) -> None:
    task = get_task("translation")
    docs = [
        Document.make("c", f"s{i}", t)
        for i, t in enumerate(["Good morning.", "Thank you.", "The door is open.", "It rains."])
    ]
    client = LLMResource(
        base_url=vllm_url, model=vllm_model, timeout_s=300, max_retries=1
    ).get_client()

    async def go():
        try:
            return await choose_recipe(
                task, docs, client, EngineSettings(), log, pack_sizes=(1, 2), concurrencies=(1, 2)
            )
        finally:
            await client.aclose()

    n, c, report = asyncio.run(go())
    assert (n, c) in {(p.items_per_call, p.max_concurrency) for p in report.probes}
    assert all(p.items_per_call * p.max_concurrency <= len(docs) for p in report.probes)
    assert report.max_in_flight_by_memory and report.max_in_flight_by_memory > 4
    assert any(p.ok_items > 0 for p in report.probes), report.lines()
