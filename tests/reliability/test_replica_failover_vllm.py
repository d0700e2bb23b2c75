"""Why: with two real vLLM replicas in LLM_BASE_URL, SIGKILLing one mid-run must cost nothing for
good: its calls in flight are retried on the other, it leaves the rotation and is probed. The
shared server is the surviving replica; the killed one is started here (own port and state dir,
1 GiB KV cache). Being probed back in is tested with the fake (tests/engine/test_engine_replicas.py):
a second start of a CPU server would double this test's cost."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from extraction_assets import serve
from extraction_assets.engine import EngineSettings, extract
from extraction_assets.tasks import get_task
from extraction_assets.types import CallOutcome, Document, ItemResult
from resources.llm import LLMResource
from tests.reliability.harness import short_docs


@pytest.mark.vllm
@pytest.mark.slow
def test_a_vllm_replica_killed_mid_run(tmp_path, vllm_url, vllm_model):
    config = serve.ServerConfig(
        port=serve.free_port(),
        state_dir=tmp_path / "replica",
        gpu=False,
        kv_cache_gib=1,
        ready_timeout=900,
    )
    try:
        mine = serve.start_server(config)
    except serve.ServerError as exc:
        pytest.fail(f"could not start the second replica: {exc}", pytrace=False)
    docs = [Document.make("replicas", d["id"], d["text"]) for d in short_docs(12)]
    results: dict[str, ItemResult] = {}

    async def collect(outcome: CallOutcome) -> None:
        for r in outcome.results:
            results[r.doc_id] = r

    client = LLMResource(
        base_url=f"{vllm_url},{mine.url}", model=vllm_model, timeout_s=600
    ).get_client()
    client.probe_base_s, client.probe_max_s = 1.0, 5.0  # type: ignore[attr-defined]

    async def kill_when_busy() -> None:
        # Killed with calls in flight on it: those must be retried on the shared server.
        while client.in_flight[mine.url] < 2:
            await asyncio.sleep(0.05)
        os.killpg(mine.pid, signal.SIGKILL)

    async def go() -> tuple[list[str], bool]:
        try:
            killer = asyncio.ensure_future(kill_when_busy())
            await extract(
                get_task("biography"),
                docs,
                client,
                EngineSettings(items_per_call=1, max_concurrency=8, progress_interval_s=60),
                collect,
            )
            assert killer.done(), "the replica was never busy enough to be killed mid-run"
            await asyncio.sleep(2)  # a probe or two find it still dead
            probe = client.replicas[mine.url].probe  # type: ignore[attr-defined]
            return client.in_rotation(), probe is not None and not probe.done()
        finally:
            await client.aclose()

    try:
        after_run, probing = asyncio.run(go())
    finally:
        serve.stop_server(config.state_dir)
    assert len(results) == 12 and all(r.status == "ok" for r in results.values()), {
        d: r.error for d, r in results.items() if r.status != "ok"
    }
    assert after_run == [vllm_url.rstrip("/")], "the killed replica left the rotation"
    events = [(url, what) for _, url, what in client.rotation_events]  # type: ignore[attr-defined]
    assert events == [(mine.url, "out")], events
    assert probing, "the dead replica is being probed"
