"""A protocol-level FAKE of Ollama's documented native API: POST /api/chat (stream=false) and
GET /api/tags. No Ollama is installed here; this lets the Ollama backend be tested through
the official `ollama.AsyncClient`. It records each request body and answers from the request's
`format` schema (values carry the document id), or with a scripted reply.

It models Ollama's silent truncation of a prompt longer than `options.num_ctx` (a 200 answer,
made without what was dropped): the older messages, the system message included, are dropped
while the last message alone fits (Ollama's chatPrompt), and a prompt still too long keeps its
last num_ctx tokens (the runner). `prompt_eval_count` reports what was kept. Tokens here are a
stand-in count: 4 template tokens per message plus one per 4 UTF-8 bytes of its content.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .schema_answers import answer_for

Reply = tuple[int, dict[str, Any]]  # (HTTP status, JSON body)

TEMPLATE_TOKENS = 4  # per message: role markers of the chat template
DEFAULT_NUM_CTX = 2048  # Ollama's default when a request sets no num_ctx


def message_tokens(message: dict[str, Any]) -> int:
    return TEMPLATE_TOKENS + math.ceil(len(str(message.get("content", "")).encode("utf-8")) / 4)


def evaluated_prompt(messages: list[dict[str, Any]], num_ctx: int) -> int:
    """The prompt tokens Ollama evaluates (keeps) in a context of num_ctx."""
    kept = list(messages)
    # The last message is always kept; older ones (the system message too) go while it does not fit.
    while len(kept) > 1 and sum(message_tokens(m) for m in kept) > num_ctx:
        kept.pop(0)
    return min(num_ctx, sum(message_tokens(m) for m in kept))


def chat_body(
    content: str,
    done_reason: str = "stop",
    prompt_eval_count: int = 120,
    eval_count: int = 30,
    model: str = "smollm2:135m",
) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 1,
        "load_duration": 1,
        "prompt_eval_count": prompt_eval_count,
        "prompt_eval_duration": 1,
        "eval_count": eval_count,
        "eval_duration": 1,
    }


@dataclass
class FakeOllamaServer:
    script: list[Callable[[dict[str, Any]], Reply] | None] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)  # per request: did the fake truncate its prompt
    host: str = ""  # e.g. http://127.0.0.1:PORT (no /v1: Ollama's native API)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        index = len(self.requests)
        self.requests.append(body)
        messages = body.get("messages") or []
        num_ctx = int((body.get("options") or {}).get("num_ctx") or DEFAULT_NUM_CTX)
        prompt_tokens = evaluated_prompt(messages, num_ctx)
        self.cut.append(prompt_tokens < sum(message_tokens(m) for m in messages))
        scripted = self.script[index] if index < len(self.script) else None
        if scripted is not None:
            status, payload = scripted(body)
            return web.json_response(payload, status=status)
        # A cut prompt still gets a fluent, schema-valid answer: nothing in it shows the loss.
        content = (
            json.dumps(answer_for(body["format"]))
            if isinstance(body.get("format"), dict)
            else "hello"
        )
        return web.json_response(
            chat_body(content, model=body.get("model", ""), prompt_eval_count=prompt_tokens)
        )

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "models": [
                    {"name": "smollm2:135m", "model": "smollm2:135m", "size": 1, "digest": "0"}
                ]
            }
        )

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/api/chat", self._chat)
        app.router.add_get("/api/tags", self._tags)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.host = f"http://127.0.0.1:{port}"
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> FakeOllamaServer:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Ollama server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
