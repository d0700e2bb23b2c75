"""Why: LLM_BASE_URL may list replicas of one model. One replica dying mid-run must cost nothing
for good: its calls go to another (without using up retries), it is taken out of rotation and
probed back in when it answers again; only all replicas down stops the run. A 429's Retry-After
is honoured (capped), and while one replica rests the others take the calls. The fake injects
the faults (a killed replica, 429 answers)."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from engine_harness import BIO, Collector, assert_attribution, make_client, make_docs, run
from fakes.fault_injecting_openai_server import (
    FaultInjectingOpenAIServer,
    delayed,
    good,
    hang,
    too_many,
)

from extraction_assets.engine import EngineSettings, extract
from extraction_assets.engine.packing import PackPlanner
from extraction_assets.engine.prompts import build_messages
from extraction_assets.engine.schema import pack_schema, schema_name
from extraction_assets.errors import ServerUnavailableError

ONE_BY_ONE = EngineSettings(items_per_call=1, max_concurrency=4, progress_interval_s=60)


def test_a_killed_replica_is_taken_out_its_calls_retried_elsewhere_and_probed_back() -> None:
    docs = make_docs(12)
    a = FaultInjectingOpenAIServer()
    a.rule = lambda req: (a.kill(), hang(30))[1] if req.index == 2 else delayed(0.2)
    b = FaultInjectingOpenAIServer(default=delayed(0.05))
    a.start()
    b.start()
    # No retries at all: a replica's death must not use any up.
    client = make_client([a.url, b.url], max_retries=0, probe_base_s=0.05, probe_max_s=0.2)
    collector = Collector()

    async def go() -> tuple[int, list[str], list[str]]:
        try:
            summary = await extract(BIO, docs, client, ONE_BY_ONE, collector)
            in_rotation_after_run = client.in_rotation()
            await asyncio.to_thread(a.start)  # the replica comes back on its port
            deadline = time.monotonic() + 20
            while a.url not in client.in_rotation() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return summary.items_ok, in_rotation_after_run, client.in_rotation()
        finally:
            await client.aclose()

    try:
        ok, after_run, after_restart = asyncio.run(go())
    finally:
        a.stop()
        b.stop()
    assert ok == 12 and all(r.status == "ok" for r in collector.results.values())
    assert_attribution(collector)
    out_at = next(t for t, url, what in client.rotation_events if what == "out")
    assert all(t < out_at for t in a.arrivals), "the dead replica got no call while it was out"
    # The call in flight when it died (others sent meanwhile may still have been answered).
    killed_id = a.requests[2].ids[0]
    assert any(r.ids == [killed_id] for r in b.requests), "its call was retried on the other"
    assert after_run == [b.url], "the dead replica was out of rotation"
    assert after_restart == [a.url, b.url] and a.model_requests >= 1, "probed back in"
    assert [(url, what) for _, url, what in client.rotation_events] == [
        (a.url, "out"),
        (a.url, "back"),
    ]


def test_all_replicas_down_stops_the_run() -> None:
    a, b = FaultInjectingOpenAIServer().start(), FaultInjectingOpenAIServer().start()
    urls = [a.url, b.url]
    a.stop()
    b.stop()
    with pytest.raises(ServerUnavailableError, match="connection"):
        run(make_docs(3), make_client(urls, max_retries=1, probe_base_s=0.05), ONE_BY_ONE)


def one_call(client) -> None:
    docs = make_docs(1)

    async def go() -> None:
        try:
            await client.complete(
                build_messages(BIO, docs),
                pack_schema(BIO, ["d0"]),
                schema_name(BIO),
                PackPlanner(BIO, ONE_BY_ONE).max_tokens(docs),
            )
        finally:
            await client.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("retry_after", "at_least"),
    [("1", 0.9), (email.utils.formatdate(time.time() + 2.5, usegmt=True), 1.0)],
    ids=["seconds", "http-date"],
)
def test_429_waits_for_retry_after(retry_after: str, at_least: float) -> None:
    if "GMT" in retry_after:  # built at collection time: rebuild it now
        retry_after = email.utils.formatdate(time.time() + 2.5, usegmt=True)
    with FaultInjectingOpenAIServer(script=[too_many(retry_after), good()]) as server:
        one_call(make_client(server.url))  # backoff alone would wait ~10 ms
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= at_least


def test_429_retry_after_is_capped() -> None:
    with FaultInjectingOpenAIServer(script=[too_many("3600"), good()]) as server:
        one_call(make_client(server.url, retry_after_max_s=0.3))
    gap = server.arrivals[1] - server.arrivals[0]
    assert 0.25 <= gap < 60, gap


def test_a_resting_replica_leaves_its_calls_to_the_other() -> None:
    settings = EngineSettings(items_per_call=1, max_concurrency=1, progress_interval_s=60)
    with (
        FaultInjectingOpenAIServer(rule=lambda r: too_many("30")) as a,
        FaultInjectingOpenAIServer() as b,
    ):
        summary, got = run(make_docs(6), make_client([a.url, b.url], max_retries=2), settings)
    assert summary.items_ok == 6
    assert len(a.requests) == 1 and len(b.requests) == 6
    assert_attribution(got)


def test_retry_after_header_forms() -> None:
    from resources.backends.base import retry_after_seconds

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    future = email.utils.formatdate(time.time() + 100, usegmt=True)
    assert 98 <= (retry_after_seconds(future) or 0) <= 100
    assert retry_after_seconds(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0.0
