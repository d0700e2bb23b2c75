"""A FAULT-INJECTING fake of the OpenAI chat-completions protocol, for engine tests.

It exists only to produce what a healthy vLLM server will not: 429s (with Retry-After), 500s,
hangs, dropped connections (`kill()`, then `start()` again on the same port), empty bodies,
invalid or truncated JSON, wrong/duplicated ids, items failing validation, an answer borrowing
from a pack-mate on demand. A real aiohttp HTTP
server on a free loopback port, run in its own thread. By default it answers every request
with a valid answer built from the request's schema (field values carry the document id,
e.g. name="name-of-d3"); a script can replace the answer of any request.

Usage:
    with FaultInjectingOpenAIServer(script=[status(500), None, truncated()]) as server:
        client = OpenAIProtocolClient("vllm", [server.url], ...)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .schema_answers import answer_for


@dataclass
class ChatRequest:
    index: int
    body: dict[str, Any]

    @property
    def schema(self) -> dict[str, Any]:
        if "structured_outputs" in self.body:
            return self.body["structured_outputs"]["json"]
        return self.body["response_format"]["json_schema"]["schema"]

    @property
    def ids(self) -> list[str]:
        return list(self.schema["properties"])

    def good_answer(self) -> dict[str, Any]:
        return answer_for(self.schema)


Action = Callable[[ChatRequest], Awaitable[web.StreamResponse]]


def completion_json(
    content: str, finish_reason: str = "stop", completion_tokens: int = 10, prompt_tokens: int = 100
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def reply(content: str, finish_reason: str = "stop") -> web.Response:
    return web.json_response(
        completion_json(content, finish_reason, 10 * max(1, len(content) // 40))
    )


# -- scripted actions ----------------------------------------------------------------------------
def answer(make: Callable[[ChatRequest], Any], finish_reason: str = "stop") -> Action:
    """Answer with make(request) (JSON-encoded unless it is already a string)."""

    async def act(req: ChatRequest) -> web.StreamResponse:
        content = make(req)
        return reply(content if isinstance(content, str) else json.dumps(content), finish_reason)

    return act


def good() -> Action:
    return answer(lambda r: r.good_answer())


def status(code: int, message: str = "injected failure") -> Action:
    async def act(req: ChatRequest) -> web.StreamResponse:
        body = {"object": "error", "message": message, "type": "BadRequestError", "code": code}
        return web.json_response(body, status=code)

    return act


def too_many(retry_after: str | None) -> Action:
    """A 429 with this Retry-After header (delta-seconds or an HTTP date; None: no header)."""

    async def act(req: ChatRequest) -> web.StreamResponse:
        body = {"object": "error", "message": "rate limited", "type": "RateLimitError", "code": 429}
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return web.json_response(body, status=429, headers=headers)

    return act


def hang(seconds: float) -> Action:
    """Sleep past the client's timeout, then answer validly."""

    async def act(req: ChatRequest) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return reply(json.dumps(req.good_answer()))

    return act


def delayed(seconds: float) -> Action:
    return hang(seconds)


def empty_body() -> Action:
    async def act(req: ChatRequest) -> web.StreamResponse:
        return web.Response(status=200, body=b"", content_type="application/json")

    return act


def invalid_json() -> Action:
    return answer(lambda r: '{"' + r.ids[0] + '": {"name": "oops", ]]] not json')


def truncated(keep_items: int = 1) -> Action:
    """The first keep_items answers complete, then the text stops mid-item (finish 'length')."""

    def make(req: ChatRequest) -> str:
        items = list(req.good_answer().items())
        head = json.dumps(dict(items[:keep_items]))[:-1]
        if keep_items < len(items):
            doc_id, item = items[keep_items]
            partial = json.dumps({doc_id: item})[1:]
            head += ("," if keep_items else "") + partial[: len(partial) // 2]
        return head

    return answer(make, finish_reason="length")


def wrong_ids() -> Action:
    """Valid items, but keyed under ids the pack does not have."""
    return answer(lambda r: {f"{i}-x": v for i, v in r.good_answer().items()})


def duplicated_id() -> Action:
    """The first id answered twice, with two different items; the other ids normal."""

    def make(req: ChatRequest) -> str:
        answers = req.good_answer()
        first = req.ids[0]
        other = dict(answers[first], name="IMPOSTOR")
        members = [
            json.dumps(first) + ":" + json.dumps(answers[first]),
            json.dumps(first) + ":" + json.dumps(other),
        ]
        members += [json.dumps(k) + ":" + json.dumps(v) for k, v in answers.items() if k != first]
        return "{" + ",".join(members) + "}"

    return answer(make)


def reversed_order() -> Action:
    return answer(lambda r: dict(reversed(list(r.good_answer().items()))))


def invalid_item(position: int = 0) -> Action:
    """One item fails validation (a required field missing)."""

    def make(req: ChatRequest) -> dict[str, Any]:
        answers = req.good_answer()
        doc_id = req.ids[min(position, len(req.ids) - 1)]
        answers[doc_id] = {"unexpected": True}
        return answers

    return answer(make)


def borrowing(doc_id: str, field: str, value: str) -> Action:
    """Packs of more than one item: `doc_id`'s `field` is `value` (taken from a pack-mate's text,
    as a model mixing items does); a pack of one is answered correctly."""

    def make(req: ChatRequest) -> dict[str, Any]:
        answers = req.good_answer()
        if len(req.ids) > 1 and doc_id in answers:
            answers[doc_id][field] = value
        return answers

    return answer(make)


# -- the server ----------------------------------------------------------------------------------
@dataclass
class FaultInjectingOpenAIServer:
    script: list[Action | None] = field(default_factory=list)  # per request, in arrival order
    rule: Callable[[ChatRequest], Action | None] | None = None  # consulted when script is spent
    default: Action = field(default_factory=good)
    requests: list[ChatRequest] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # (start, end) per request
    max_active: int = 0
    active: int = 0
    model_requests: int = 0  # GET /v1/models (what probes ask)
    arrivals: list[float] = field(default_factory=list)  # monotonic time per chat request
    port: int = 0  # 0: a free port, kept across kill() and start()
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        started = time.monotonic()
        with self._lock:
            req = ChatRequest(len(self.requests), body)
            self.requests.append(req)
            self.arrivals.append(started)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            action = self.script[req.index] if req.index < len(self.script) else None
            if action is None and self.rule is not None and req.index >= len(self.script):
                action = self.rule(req)
        try:
            return await (action or self.default)(req)
        finally:
            with self._lock:
                self.active -= 1
                self.intervals.append((started, time.monotonic()))

    async def _models(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.model_requests += 1
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> FaultInjectingOpenAIServer:
        self._ready.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def kill(self) -> None:
        """The replica dies: connections in flight are dropped, new ones refused, until start().
        Safe to call from an action (it runs in another thread)."""
        if threading.current_thread() is self._thread:
            threading.Thread(target=self.stop, daemon=True).start()
        else:
            self.stop()

    def __enter__(self) -> FaultInjectingOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
