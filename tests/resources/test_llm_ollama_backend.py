"""Why: the Ollama backend speaks Ollama's native /api/chat through the official client; it must
send the schema as `format`, deterministic options with num_ctx from max_model_len and
num_predict from the call budget, and map done_reason/eval counts into a Completion. Tested
against a protocol-level fake of Ollama's documented API (no Ollama on this machine)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from fakes.fake_ollama_server import FakeOllamaServer, chat_body, message_tokens

from extraction_assets.engine import EngineSettings, extract, pack_schema, parse_answer
from extraction_assets.engine.runner import TOO_LONG
from extraction_assets.errors import ContextLengthError, TransportError
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.llm import LLMResource

# The packing arithmetic of these tests (how many documents fit a context, so which prompts
# Ollama cuts) is written for a 600-token answer budget, whatever the built-in task's tuning.
BIO = dataclasses.replace(get_task("biography"), output_tokens_per_item=600)


def resource(host: str, **kw) -> LLMResource:
    return LLMResource(
        backend="ollama", base_url=host, model="smollm2:135m", max_model_len=4096, **kw
    )


def test_request_carries_schema_and_options_and_answer_is_parsed() -> None:
    with FakeOllamaServer() as server:
        client = resource(server.host + "/v1").get_client()  # an OpenAI-style URL is accepted
        schema = pack_schema(BIO, ["a", "b"])

        async def go():
            try:
                return await client.complete(
                    [{"role": "user", "content": "hi"}], schema, "biography_pack", 321
                )
            finally:
                await client.aclose()

        completion = asyncio.run(go())
    sent = server.requests[0]
    assert sent["format"] == schema and sent["stream"] is False
    assert sent["model"] == "smollm2:135m"
    assert sent["options"]["temperature"] == 0
    assert sent["options"]["num_ctx"] == 4096 and sent["options"]["num_predict"] == 321
    assert sent["options"]["seed"] == 0
    assert completion.prompt_tokens == 5 and completion.completion_tokens == 30  # 4 + 'hi'
    assert completion.finish_reason == "stop" and completion.base_url.startswith(server.host)
    parsed = parse_answer(completion.text, ["a", "b"], BIO.item_model)
    assert parsed.ok["b"]["name"] == "name-of-b"


def test_length_done_reason_and_fenced_answer() -> None:
    fenced = (
        "```json\n" + json.dumps({"a": {"source_language": "x", "translation_en": "y"}}) + "\n```"
    )
    with FakeOllamaServer(script=[lambda b: (200, chat_body(fenced, done_reason="length"))]) as s:
        client = resource(s.host).get_client()

        async def go():
            try:
                return await client.complete([{"role": "user", "content": "x"}], {}, "t", 5)
            finally:
                await client.aclose()

        completion = asyncio.run(go())
    assert completion.finish_reason == "length"
    task = get_task("translation")
    assert parse_answer(completion.text, ["a"], task.item_model).ok["a"]["translation_en"] == "y"


def test_errors_are_classified() -> None:
    overflow = (400, {"error": "input length exceeds the context length"})
    busy = (503, {"error": "server busy"})
    with FakeOllamaServer(script=[lambda b: overflow, lambda b: busy, lambda b: busy]) as s:
        client = resource(s.host, max_retries=1).get_client()
        client.backoff_base_s = 0.01  # type: ignore[attr-defined]

        async def call():
            return await client.complete([{"role": "user", "content": "x"}], {}, "t", 5)

        async def go():
            try:
                with pytest.raises(ContextLengthError):
                    await call()
                with pytest.raises(TransportError):
                    await call()
            finally:
                await client.aclose()

        asyncio.run(go())
    assert len(s.requests) == 3


def test_engine_runs_on_ollama() -> None:
    docs = [Document.make("c", f"d{i}", f"text {i}") for i in range(5)]
    results = []

    async def collect(outcome):
        results.extend(outcome.results)

    with FakeOllamaServer() as server:
        client = resource(server.host).get_client()

        async def go():
            try:
                return await extract(BIO, docs, client, EngineSettings(items_per_call=3), collect)
            finally:
                await client.aclose()

        summary = asyncio.run(go())
    assert summary.items_ok == 5 and len(server.requests) == 2
    assert all(r.fields["name"] == f"name-of-{r.doc_id}" for r in results)


# -- a prompt Ollama cut (issue 12 defect 4) ---------------------------------------------------
# The engine plans for 8192 tokens while the server holds fewer (Ollama lowers num_ctx to a
# model's trained context without a word; an estimate can be wrong), so it sends prompts the
# served context cannot hold.
def run_engine(docs: list[Document], num_ctx: int, items_per_call: int):
    results = []

    async def collect(outcome):
        results.extend(outcome.results)

    settings = EngineSettings(items_per_call=items_per_call, max_concurrency=2, max_model_len=8192)
    with FakeOllamaServer() as server:
        client = LLMResource(
            backend="ollama", base_url=server.host, model="smollm2:135m", max_model_len=num_ctx
        ).get_client()

        async def go():
            try:
                return await extract(BIO, docs, client, settings, collect)
            finally:
                await client.aclose()

        summary = asyncio.run(go())
    return summary, {r.doc_id: r for r in results}, server


def ids_of(request: dict) -> list[str]:
    return list(request["format"]["properties"])


def test_a_pack_ollama_cut_is_split_and_no_answer_comes_from_a_cut_prompt() -> None:
    docs = [
        Document.make("c", f"d{i}", f"Ahmad ibn Omar number {i} died. " * 50) for i in range(8)
    ]  # ~1.6 kB each: two fit 2048 tokens with the system message, four do not
    summary, results, server = run_engine(docs, num_ctx=2048, items_per_call=4)
    assert any(server.cut), "control: the fake did cut a prompt"
    intact = {
        i
        for req, cut in zip(server.requests, server.cut, strict=True)
        if not cut
        for i in ids_of(req)
    }
    assert summary.items_ok == 8, {d: r.error for d, r in results.items()}
    assert {d for d, r in results.items() if r.status == "ok"} <= intact
    assert all(r.fields["name"] == f"name-of-{d}" for d, r in results.items())


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("Layla bint Yusuf was a scholar. " * 75, "the system message dropped, the document kept"),
        ("Layla bint Yusuf was a scholar. " * 250, "the front of the document cut too"),
    ],
)
def test_a_document_ollama_cut_alone_fails_as_too_long(text: str, what: str) -> None:
    summary, results, server = run_engine(
        [Document.make("c", "long", text)], num_ctx=1200, items_per_call=1
    )
    assert server.cut == [True] * len(server.requests) and server.requests, what
    assert summary.items_ok == 0
    assert results["long"].status == "failed" and results["long"].error == TOO_LONG, what


def test_an_intact_prompt_near_the_context_is_kept() -> None:
    """No false alarm: a prompt that fits is kept even when it fills most of the context."""
    doc = Document.make("c", "fits", "Yusuf ibn Khalid taught in Basra. " * 30)
    with FakeOllamaServer() as server:
        client = resource(server.host).get_client()
        messages = [
            {"role": "system", "content": "x" * 3400},
            {"role": "user", "content": doc.text},
        ]
        need = sum(message_tokens(m) for m in messages)
        client.max_model_len = need + 40  # type: ignore[attr-defined]

        async def go():
            try:
                return await client.complete(messages, pack_schema(BIO, ["fits"]), "b", 30)
            finally:
                await client.aclose()

        completion = asyncio.run(go())
    assert server.cut == [False] and completion.prompt_tokens == need
