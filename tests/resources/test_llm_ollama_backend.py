"""Why: the Ollama backend speaks Ollama's native /api/chat through the official client; it must
send the schema as `format`, deterministic options with num_ctx from max_model_len and
num_predict from the call budget, and map done_reason/eval counts into a Completion. Tested
against a protocol-level fake of Ollama's documented API (no Ollama on this machine)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fakes.fake_ollama_server import FakeOllamaServer, chat_body

from extraction_assets.engine import EngineSettings, extract, pack_schema, parse_answer
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.llm import ContextLengthError, LLMResource, TransportError

BIO = get_task("biography")


def resource(host: str, **kw) -> LLMResource:
    return LLMResource(backend="ollama", base_url=host, model="smollm2:135m",
                       max_model_len=4096, **kw)


def test_request_carries_schema_and_options_and_answer_is_parsed() -> None:
    with FakeOllamaServer() as server:
        client = resource(server.host + "/v1").get_client()  # an OpenAI-style URL is accepted
        schema = pack_schema(BIO, ["a", "b"])

        async def go():
            try:
                return await client.complete([{"role": "user", "content": "hi"}], schema,
                                             "biography_pack", 321)
            finally:
                await client.aclose()

        completion = asyncio.run(go())
    sent = server.requests[0]
    assert sent["format"] == schema and sent["stream"] is False
    assert sent["model"] == "smollm2:135m"
    assert sent["options"]["temperature"] == 0
    assert sent["options"]["num_ctx"] == 4096 and sent["options"]["num_predict"] == 321
    assert sent["options"]["seed"] == 0
    assert completion.prompt_tokens == 120 and completion.completion_tokens == 30
    assert completion.finish_reason == "stop" and completion.base_url.startswith(server.host)
    parsed = parse_answer(completion.text, ["a", "b"], BIO.item_model)
    assert parsed.ok["b"]["name"] == "name-of-b"


def test_length_done_reason_and_fenced_answer() -> None:
    fenced = "```json\n" + json.dumps({"a": {"source_language": "x", "translation_en": "y"}}) + \
        "\n```"
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
