"""The server's ceiling and the pipeline's measurement for one configuration.

`ceiling` is a minimal load generator: the same packs, prompts, schemas and max_tokens the
engine would send (built with the engine's own PackPlanner and prompt/schema builders), sent
by a bare asyncio + openai loop with `c` requests in flight, no parsing, no retries, no store.
`pipeline` runs the real `extract()` on the same kind of documents.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import openai

from extraction_assets.engine import EngineSettings, PackPlanner, build_messages, extract
from extraction_assets.engine.schema import pack_schema
from extraction_assets.tasks.base import ExtractionTask
from extraction_assets.types import CallOutcome, Document
from resources.llm import LLMResource


@dataclass
class Measurement:
    runner: str  # "ceiling" | "engine" | "dagster"
    items_per_call: int
    in_flight: int
    items: int
    ok_items: int
    failed_items: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list, repr=False)
    errors: int = 0

    @property
    def items_per_min(self) -> float:
        return 60 * self.items / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def ok_per_min(self) -> float:
        return 60 * self.ok_items / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_s:
            return 0.0
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]

    def row(self) -> dict:
        d = asdict(self)
        d.pop("latencies_s")
        d.update(
            items_per_min=round(self.items_per_min, 2),
            ok_per_min=round(self.ok_per_min, 2),
            in_tok_s=round(self.prompt_tokens / self.elapsed_s, 1) if self.elapsed_s else 0,
            out_tok_s=round(self.completion_tokens / self.elapsed_s, 1) if self.elapsed_s else 0,
            p50_s=round(self.pct(50), 2),
            p90_s=round(self.pct(90), 2),
            p99_s=round(self.pct(99), 2),
        )
        return d


async def ceiling(
    url: str,
    model: str,
    task: ExtractionTask,
    docs: Sequence[Document],
    n: int,
    c: int,
    max_model_len: int = 8192,
) -> Measurement:
    planner = PackPlanner(task, EngineSettings(items_per_call=n, max_model_len=max_model_len))
    packs, _ = planner.plan(docs)
    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=3600)
    queue: asyncio.Queue = asyncio.Queue()
    for p in packs:
        queue.put_nowait(p)
    m = Measurement("ceiling", n, c, 0, 0, 0, 0, 0, 0, 0.0)

    async def worker() -> None:
        while not queue.empty():
            pack = queue.get_nowait()
            t0 = time.monotonic()
            try:
                r = await client.chat.completions.create(
                    model=model,
                    messages=build_messages(task, pack.docs),  # type: ignore[arg-type]
                    max_tokens=planner.max_tokens(pack.docs),
                    temperature=0.0,
                    seed=0,
                    extra_body={
                        "structured_outputs": {
                            "json": pack_schema(task, pack.ids),
                            "disable_any_whitespace": True,
                        }
                    },
                )
            except openai.OpenAIError:
                m.errors += 1
                continue
            m.latencies_s.append(time.monotonic() - t0)
            m.calls += 1
            m.items += len(pack)
            if r.usage:
                m.prompt_tokens += r.usage.prompt_tokens
                m.completion_tokens += r.usage.completion_tokens

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(c, len(packs)))))
    m.elapsed_s = time.monotonic() - started
    await client.close()
    return m


async def engine(
    url: str,
    model: str,
    task: ExtractionTask,
    docs: Sequence[Document],
    n: int,
    c: int,
    max_model_len: int = 8192,
) -> Measurement:
    client = LLMResource(
        base_url=url, model=model, timeout_s=3600, max_retries=1, max_model_len=max_model_len
    ).get_client()
    m = Measurement("engine", n, c, 0, 0, 0, 0, 0, 0, 0.0)

    async def on_outcome(outcome: CallOutcome) -> None:
        m.latencies_s.append(outcome.call.latency_s)

    settings = EngineSettings(
        items_per_call=n, max_concurrency=c, max_model_len=max_model_len, progress_interval_s=3600
    )
    try:
        s = await extract(
            task, docs, client, settings, on_outcome, logging.getLogger("bench.engine")
        )
    finally:
        await client.aclose()
    m.items, m.ok_items, m.failed_items = s.items_ok + s.items_failed, s.items_ok, s.items_failed
    m.calls, m.prompt_tokens, m.completion_tokens = s.calls, s.prompt_tokens, s.completion_tokens
    m.elapsed_s = s.elapsed_s
    return m
