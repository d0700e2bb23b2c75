"""Why: the engine must survive whatever a server or a tiny model sends back. Against a real HTTP
server that injects faults (429/500/timeouts/empty bodies/bad or truncated JSON/wrong or
duplicated ids/invalid items) every document ends ok or failed-with-reason, no answer lands on
the wrong document, good items are kept, only bad items are retried (in halves), and a dead
server stops the run without inventing results."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from engine_harness import BIO, assert_attribution, make_client, make_docs, run
from fakes.fault_injecting_openai_server import (
    FaultInjectingOpenAIServer,
    answer,
    duplicated_id,
    empty_body,
    hang,
    invalid_item,
    invalid_json,
    reversed_order,
    status,
    truncated,
    wrong_ids,
)

from extraction_assets.engine import EngineSettings, extract
from extraction_assets.errors import ServerUnavailableError

FOUR = EngineSettings(items_per_call=4, max_concurrency=1, progress_interval_s=60)
ONE_AT_A_TIME = EngineSettings(items_per_call=1, max_concurrency=1, progress_interval_s=60)


def pack_sizes(server: FaultInjectingOpenAIServer) -> list[int]:
    return [len(r.ids) for r in server.requests]


def test_healthy_server_all_ok_in_packs() -> None:
    with FaultInjectingOpenAIServer() as server:
        summary, got = run(make_docs(10), make_client(server.url), FOUR)
    assert pack_sizes(server) == [4, 4, 2]
    assert summary.items_ok == 10 and summary.items_failed == 0 and summary.calls == 3
    assert summary.prompt_tokens == 300 and summary.retried_calls == 0
    assert_attribution(got)
    # an item's tokens are its share of the call
    r = got.results["d0"]
    assert r.prompt_tokens == 25 and r.attempts == 1


@pytest.mark.parametrize("fault", [status(429), status(500), status(503), empty_body()])
def test_transport_faults_are_retried_by_the_backend(fault) -> None:
    with FaultInjectingOpenAIServer(script=[fault, fault]) as server:
        summary, got = run(make_docs(4), make_client(server.url), FOUR)
    assert pack_sizes(server) == [4, 4, 4]  # same pack re-sent, not split
    assert summary.items_ok == 4 and summary.calls == 1
    assert_attribution(got)


def test_timeout_is_retried() -> None:
    with FaultInjectingOpenAIServer(script=[hang(3.0)]) as server:
        summary, got = run(make_docs(2), make_client(server.url, timeout_s=0.5), FOUR)
    assert summary.items_ok == 2 and len(server.requests) == 2
    assert_attribution(got)


def test_invalid_json_splits_the_pack_in_halves() -> None:
    with FaultInjectingOpenAIServer(script=[invalid_json()]) as server:
        summary, got = run(make_docs(4), make_client(server.url), FOUR)
    assert pack_sizes(server) == [4, 2, 2]
    assert summary.items_ok == 4 and summary.retried_calls == 2
    assert_attribution(got)
    assert got.results["d3"].attempts == 2


def test_truncated_answer_keeps_complete_items_and_retries_the_rest() -> None:
    with FaultInjectingOpenAIServer(script=[truncated(keep_items=1)]) as server:
        summary, got = run(make_docs(4), make_client(server.url), FOUR)
    assert pack_sizes(server) == [4, 2, 1]
    assert server.requests[1].ids == ["d1", "d2"]
    assert got.results["d0"].attempts == 1  # kept from the truncated answer
    assert summary.items_ok == 4
    assert got.outcomes[0].call.finish_reason == "length"
    # the retried items got a larger output budget
    assert server.requests[1].body["max_tokens"] > server.requests[0].body["max_tokens"] / 2
    assert_attribution(got)


@pytest.mark.parametrize(
    ("fault", "expected_sizes"),
    [
        (wrong_ids(), [4, 2, 2]),  # nothing attributable: all retried
        (duplicated_id(), [4, 1]),  # only the duplicated id is distrusted
        (reversed_order(), [4]),  # key order does not matter
        (invalid_item(2), [4, 1]),  # only the invalid item is retried
    ],
)
def test_id_and_item_faults(fault, expected_sizes) -> None:
    with FaultInjectingOpenAIServer(script=[fault]) as server:
        summary, got = run(make_docs(4), make_client(server.url), FOUR)
    assert pack_sizes(server) == expected_sizes
    assert summary.items_ok == 4
    assert_attribution(got)
    assert all("IMPOSTOR" not in str(r.fields) for r in got.results.values())


def test_three_bad_items_of_twenty_retry_as_two_and_one_then_fail() -> None:
    bad = {"d3", "d9", "d17"}

    def always_bad(req):
        """Every answer that covers a bad document answers it invalidly."""
        if not bad & set(req.ids):
            return None

        def make(r):
            a = r.good_answer()
            for i in bad & set(r.ids):
                a[i] = {"unexpected": True}
            return a

        return answer(make)

    settings = EngineSettings(
        items_per_call=20, max_concurrency=1, max_model_len=32768, progress_interval_s=60
    )
    with FaultInjectingOpenAIServer(rule=always_bad) as server:
        summary, got = run(make_docs(20), make_client(server.url), settings)
    sizes = pack_sizes(server)
    assert sizes[:3] == [20, 2, 1]  # 3 bad -> halves 2 + 1
    assert summary.items_ok == 17 and summary.items_failed == 3
    for doc_id in bad:
        r = got.results[doc_id]
        assert r.status == "failed" and "validation failed" in r.error and r.raw_answer
        assert r.attempts >= 2
    assert_attribution(got)


def test_context_length_error_splits_then_fails_single_item() -> None:
    msg = (
        "This model's maximum context length is 8192 tokens. However, your prompt contains "
        "9000 input tokens. Please reduce the length of the input prompt."
    )

    def rule(req):
        return status(400, msg) if "d1" in req.ids else None

    with FaultInjectingOpenAIServer(rule=rule) as server:
        summary, got = run(make_docs(4), make_client(server.url), FOUR)
    assert pack_sizes(server)[:3] == [4, 2, 2]
    assert got.results["d1"].status == "failed"
    assert got.results["d1"].error == "too long for the context"
    assert summary.items_ok == 3 and summary.items_failed == 1
    assert_attribution(got)


def test_document_too_long_for_the_context_fails_without_a_call() -> None:
    docs = make_docs(2)
    from extraction_assets.types import Document

    docs.append(Document.make("c", "huge", "x" * 50_000))
    settings = EngineSettings(items_per_call=4, max_model_len=4096, progress_interval_s=60)
    with FaultInjectingOpenAIServer() as server:
        summary, got = run(docs, make_client(server.url), settings)
    assert all("huge" not in r.ids for r in server.requests)
    assert got.results["huge"].error == "too long for the context"
    assert summary.items_ok == 2 and summary.items_failed == 1


def test_server_down_raises_and_unfinished_items_get_no_result() -> None:
    # the first pack is answered, then the server fails for good
    with FaultInjectingOpenAIServer(rule=lambda r: status(500, "engine dead")) as server:
        server.script = [None]
        with pytest.raises(ServerUnavailableError) as info:
            run(make_docs(12), make_client(server.url, max_retries=2), FOUR)
        got_requests = len(server.requests)
    assert server.url.split("/v1")[0] in str(info.value) and "500" in str(info.value)
    assert got_requests == 1 + 3  # the good call, then one pack tried 3 times


def test_server_down_keeps_results_already_handed() -> None:
    from engine_harness import Collector

    collector = Collector()

    async def go():
        from extraction_assets.engine import extract
        from extraction_assets.tasks import get_task

        with FaultInjectingOpenAIServer(rule=lambda r: status(502)) as server:
            server.script = [None]
            client = make_client(server.url, max_retries=1)
            try:
                await extract(get_task("biography"), make_docs(12), client, FOUR, collector)
            finally:
                await client.aclose()

    import asyncio

    with pytest.raises(ServerUnavailableError):
        asyncio.run(go())
    assert set(collector.results) == {"d0", "d1", "d2", "d3"}
    assert all(r.status == "ok" for r in collector.results.values())


def test_connection_refused_names_the_url() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ServerUnavailableError, match=re.escape(url)) as info:
        run(make_docs(3), make_client(url, max_retries=1), FOUR)
    assert "connection" in str(info.value).lower()


def test_api_key_never_in_errors() -> None:
    secret = "sk-test-SECRET-123"
    with FaultInjectingOpenAIServer(rule=lambda r: status(401, "bad key")) as server:
        client = make_client(server.url)
        client._sdk = {
            server.url: type(client._sdk[server.url])(
                base_url=server.url, api_key=secret, max_retries=0
            )
        }
        with pytest.raises(Exception) as info:
            run(make_docs(1), client, FOUR)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in repr(client)


def test_failed_store_write_stops_the_run_with_its_error() -> None:
    """A store write that fails stops the run and reaches the caller; what was written stays."""
    written: list[str] = []

    class BrokenStore(Exception):
        pass

    async def on_outcome(outcome) -> None:
        if any(r.doc_id == "d2" for r in outcome.results):
            raise BrokenStore("disk full while storing d2")
        written.extend(r.doc_id for r in outcome.results)

    async def go() -> None:
        client = make_client(server.url)
        try:
            await extract(
                BIO,
                make_docs(12),
                client,
                ONE_AT_A_TIME,
                on_outcome,
                logging.getLogger("test.engine"),
            )
        finally:
            await client.aclose()

    with FaultInjectingOpenAIServer() as server, pytest.raises(BrokenStore, match="d2"):
        asyncio.run(go())
    assert "d0" in written and "d1" in written and "d2" not in written
    assert len(server.requests) < 12, "the run went on after the store failed"
