"""A protocol-level FAKE of Ollama's documented native API: POST /api/chat (stream=false) and
GET /api/tags. No Ollama is installed here; this lets the Ollama backend be tested through
the official `ollama.AsyncClient`. It records each request body and answers from the request's
`format` schema (values carry the document id), or with a scripted reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .schema_answers import answer_for

Reply = tuple[int, dict[str, Any]]  # (HTTP status, JSON body)


def chat_body(content: str, done_reason: str = "stop", prompt_eval_count: int = 120,
              eval_count: int = 30, model: str = "smollm2:135m") -> dict[str, Any]:
    return {
        "model": model, "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True, "done_reason": done_reason,
        "total_duration": 1, "load_duration": 1, "prompt_eval_count": prompt_eval_count,
        "prompt_eval_duration": 1, "eval_count": eval_count, "eval_duration": 1,
    }


@dataclass
class FakeOllamaServer:
    script: list[Callable[[dict[str, Any]], Reply] | None] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    host: str = ""  # e.g. http://127.0.0.1:PORT (no /v1: Ollama's native API)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        index = len(self.requests)
        self.requests.append(body)
        scripted = self.script[index] if index < len(self.script) else None
        if scripted is not None:
            status, payload = scripted(body)
            return web.json_response(payload, status=status)
        content = json.dumps(answer_for(body["format"])) if isinstance(body.get("format"), dict) \
            else "hello"
        return web.json_response(chat_body(content, model=body.get("model", "")))

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"models": [{"name": "smollm2:135m", "model": "smollm2:135m",
                                              "size": 1, "digest": "0"}]})

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
