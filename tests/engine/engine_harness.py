"""Shared helpers for engine tests against the fault-injecting fake server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from extraction_assets.engine import EngineSettings, RunSummary, extract
from extraction_assets.tasks import get_task
from extraction_assets.types import CallOutcome, Document, ItemResult
from resources.backends.openai_backend import OpenAIProtocolClient

BIO = get_task("biography")


def make_docs(n: int, prefix: str = "d") -> list[Document]:
    return [Document.make("c", f"{prefix}{i}", f"ترجمة رقم {i}") for i in range(n)]


def make_client(url: str | list[str], **kw: Any) -> OpenAIProtocolClient:
    args: dict[str, Any] = {
        "timeout_s": 5.0,
        "max_retries": 3,
        "temperature": 0.0,
        "seed": 0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    args.update(kw)
    urls = url if isinstance(url, list) else [url]
    return OpenAIProtocolClient("vllm", urls, "fake", api_key=None, **args)


class Collector:
    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []

    async def __call__(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)

    @property
    def results(self) -> dict[str, ItemResult]:
        out: dict[str, ItemResult] = {}
        for o in self.outcomes:
            for r in o.results:
                assert r.doc_id not in out, f"{r.doc_id} got two final results"
                out[r.doc_id] = r
        return out


def run(
    docs: list[Document],
    client: OpenAIProtocolClient,
    settings: EngineSettings | None = None,
    task=BIO,
) -> tuple[RunSummary, Collector]:
    collector = Collector()

    async def go() -> RunSummary:
        try:
            return await extract(
                task,
                docs,
                client,
                settings or EngineSettings(),
                collector,
                logging.getLogger("test.engine"),
            )
        finally:
            await client.aclose()

    return asyncio.run(go()), collector


def assert_attribution(collector: Collector) -> None:
    """No answer is ever attributed to the wrong document."""
    for doc_id, r in collector.results.items():
        if r.status == "ok":
            assert r.fields is not None and r.fields["name"] == f"name-of-{doc_id}"
        else:
            assert r.error
