"""The extraction run: a bounded pool of workers feeding packs to the LLM, isolating failures.

Packs go into one queue; `max_concurrency` workers pull from it continuously, so a new request
starts as soon as one finishes. From each answer the valid items are kept and only the bad
ones are retried, in halves, down to a single item; a single item that fails again is failed
for good with its reason and raw answer. After every call the call's accounting and the items
it settled are handed to `on_outcome` (the store writes them at once: a killed run keeps them).
An answer of a pack that borrows content from a pack-mate, or whose document looks like a prompt
injection (engine/contamination.py), is not kept: that document is re-run alone and its lone
answer is the one handed on (`isolate_suspicious`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from extraction_assets.engine.contamination import schema_words, suspicious_items
from extraction_assets.engine.packing import Pack, PackPlanner, counted_planner, halves
from extraction_assets.engine.parsing import parse_answer
from extraction_assets.engine.progress import Progress, report_periodically
from extraction_assets.engine.prompts import build_messages, system_message
from extraction_assets.engine.schema import pack_schema, schema_name
from extraction_assets.errors import ContextLengthError, ServerUnavailableError, TransportError
from extraction_assets.settings import DEFAULT_MAX_MODEL_LEN
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.backends.base import Completion, LLMClient

if TYPE_CHECKING:
    from extraction_assets.tasks.base import ExtractionTask

TOO_LONG = "too long for the context"
# A document is failed for good once it has failed alone after this many calls.
MAX_ATTEMPTS_ALONE = 2

OnOutcome = Callable[[CallOutcome], Awaitable[None]]


@dataclass
class EngineSettings:
    items_per_call: int = 20
    max_concurrency: int = 10
    max_model_len: int = DEFAULT_MAX_MODEL_LEN
    progress_interval_s: float = 5.0
    # Conservative (utf-8 bytes per token) estimate for backends without a tokenizer endpoint.
    chars_per_token: float = 2.0
    server_tokenizer: bool = True  # count tokens with the backend's tokenizer when it has one
    # Re-run alone the items of a pack whose answer borrows from a pack-mate or whose text looks
    # like an injection (one extra call each); off only to measure what it prevents.
    isolate_suspicious: bool = True


@dataclass
class RunSummary:
    items_total: int
    items_ok: int
    items_failed: int
    calls: int
    retried_calls: int
    prompt_tokens: int
    completion_tokens: int
    elapsed_s: float
    items_per_min: float
    output_tokens_per_s: float
    rerun_alone: int = 0  # items whose pack answer was suspicious and re-run alone

    def as_metadata(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _share(total: int, n: int, index: int) -> int:
    base, extra = divmod(total, n)
    return base + (1 if index < extra else 0)


class _Run:
    def __init__(
        self,
        task: ExtractionTask,
        client: LLMClient,
        settings: EngineSettings,
        on_outcome: OnOutcome,
        log: logging.Logger,
        total: int,
        planner: PackPlanner | None = None,
    ) -> None:
        self.task = task
        self.client = client
        self.settings = settings
        self.on_outcome = on_outcome
        self.log = log
        self.planner = planner or PackPlanner(task, settings)
        self.progress = Progress(total=total)
        self.queue: asyncio.Queue[Pack] = asyncio.Queue()
        self.attempts: dict[str, int] = {}
        # Calls with the document alone: only these count towards failing it for good (a pack's
        # failures, or a re-run alone after a suspicious pack answer, must not use them up).
        self.alone_calls: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.fatal: BaseException | None = None
        self.handing: set[asyncio.Future[None]] = set()
        self.rerun_alone = 0
        # Words that are never evidence of borrowing: the prompt's static part, the enum values.
        self.static_words = " ".join([system_message(task), *schema_words(task.item_schema())])

    # -- handing results to the caller -------------------------------------------------------
    async def hand(self, record: CallRecord, results: list[ItemResult]) -> None:
        for r in results:
            if r.status == "ok":
                self.progress.ok += 1
            else:
                self.progress.failed += 1
        future = asyncio.ensure_future(self.on_outcome(CallOutcome(call=record, results=results)))
        self.handing.add(future)
        future.add_done_callback(self.handing.discard)
        # Shielded: stopping the run never interrupts a store write half-way.
        await asyncio.shield(future)

    async def fail_without_call(self, docs: list[Document], reason: str) -> None:
        """Fail documents too long for the context, recorded under a call that was never made;
        they carry the context size they were judged against (final until it grows)."""
        record = CallRecord(
            call_id=f"nocall-{uuid.uuid4().hex[:12]}",
            base_url="",
            pack_size=len(docs),
            attempt=0,
            prompt_tokens=0,
            completion_tokens=0,
            latency_s=0.0,
            finish_reason=None,
            ok_items=0,
            failed_items=len(docs),
            error=reason,
            started_at=time.time(),
        )
        results = [
            ItemResult(
                d.doc_id,
                d.content_hash,
                "failed",
                error=reason,
                attempts=0,
                context_limit=self.settings.max_model_len,
            )
            for d in docs
        ]
        await self.hand(record, results)

    # -- one call ----------------------------------------------------------------------------
    async def run_pack(self, pack: Pack) -> None:
        docs, ids = pack.docs, pack.ids
        for doc_id in ids:
            self.attempts[doc_id] = self.attempts.get(doc_id, 0) + 1
        if len(ids) == 1:
            self.alone_calls[ids[0]] = self.alone_calls.get(ids[0], 0) + 1
        started_at, t0 = time.time(), time.monotonic()
        self.progress.in_flight += 1
        try:
            completion = await self.client.complete(
                build_messages(self.task, docs),
                pack_schema(self.task, ids),
                schema_name(self.task),
                self.planner.max_tokens(docs, pack.budget_scale),
            )
        except ContextLengthError as exc:
            await self.context_exceeded(pack, exc, started_at, time.monotonic() - t0)
            return
        finally:
            self.progress.in_flight -= 1
        await self.settle(pack, completion, started_at)

    def record(
        self,
        pack: Pack,
        started_at: float,
        completion: Completion | None,
        *,
        ok: int,
        error: str | None,
        latency_s: float = 0.0,
    ) -> CallRecord:
        self.progress.calls += 1
        if pack.attempt > 1:
            self.progress.retried_calls += 1
        if completion is not None:
            self.progress.prompt_tokens += completion.prompt_tokens
            self.progress.completion_tokens += completion.completion_tokens
        return CallRecord(
            call_id=uuid.uuid4().hex[:16],
            base_url=completion.base_url if completion else "",
            pack_size=len(pack),
            attempt=pack.attempt,
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            latency_s=completion.latency_s if completion else latency_s,
            finish_reason=completion.finish_reason if completion else None,
            ok_items=ok,
            failed_items=len(pack) - ok,
            error=error,
            started_at=started_at,
        )

    async def context_exceeded(
        self, pack: Pack, exc: ContextLengthError, started_at: float, latency_s: float
    ) -> None:
        record = self.record(
            pack, started_at, None, ok=0, error="context length exceeded", latency_s=latency_s
        )
        record.base_url = exc.base_url
        if len(pack) == 1:
            doc = pack.docs[0]
            await self.hand(
                record,
                [
                    ItemResult(
                        doc.doc_id,
                        doc.content_hash,
                        "failed",
                        error=TOO_LONG,
                        attempts=self.attempts[doc.doc_id],
                        context_limit=self.settings.max_model_len,
                    )
                ],
            )
            return
        self.log.info("pack of %d exceeds the server's context; splitting in halves", len(pack))
        for part in halves(pack.docs):
            self.queue.put_nowait(Pack(part, pack.attempt + 1, pack.budget_scale))
        await self.hand(record, [])

    async def settle(self, pack: Pack, completion: Completion, started_at: float) -> None:
        n = len(pack)
        parsed = parse_answer(completion.text, pack.ids, self.task.item_model)
        truncated = completion.finish_reason == "length"
        results: list[ItemResult] = []
        retry: list[Document] = []
        for index, doc in enumerate(pack.docs):
            share: dict[str, Any] = {
                "prompt_tokens": _share(completion.prompt_tokens, n, index),
                "completion_tokens": _share(completion.completion_tokens, n, index),
                "latency_s": completion.latency_s / n,
                "attempts": self.attempts[doc.doc_id],
            }
            fields = parsed.ok.get(doc.doc_id)
            if fields is not None:
                results.append(
                    ItemResult(doc.doc_id, doc.content_hash, "ok", fields=fields, **share)
                )
            elif n > 1 or self.alone_calls[doc.doc_id] < MAX_ATTEMPTS_ALONE:
                retry.append(doc)
            else:
                reason = parsed.errors.get(doc.doc_id, "no answer")
                if truncated:
                    reason = f"answer truncated at the output budget; {reason}"
                results.append(
                    ItemResult(
                        doc.doc_id,
                        doc.content_hash,
                        "failed",
                        error=reason,
                        raw_answer=completion.text,
                        **share,
                    )
                )
        if n > 1 and self.settings.isolate_suspicious:
            results = self.isolate(pack, results)
        problem = parsed.problem
        if truncated:
            problem = f"truncated (finish_reason=length); {problem or 'answer cut short'}"
        ok = sum(1 for r in results if r.status == "ok")
        record = self.record(pack, started_at, completion, ok=ok, error=problem)
        if retry:
            # Truncation means the budget was too small for these items: give them more room.
            scale = pack.budget_scale * 2 if truncated else pack.budget_scale
            parts = halves(retry)
            self.log.info(
                "call %s: %d/%d items answered; retrying %d as %s (e.g. %s)",
                record.call_id,
                ok,
                n,
                len(retry),
                "+".join(str(len(p)) for p in parts),
                parsed.errors.get(retry[0].doc_id, problem),
            )
            for part in parts:
                self.queue.put_nowait(Pack(part, pack.attempt + 1, scale))
        await self.hand(record, results)

    def isolate(self, pack: Pack, results: list[ItemResult]) -> list[ItemResult]:
        """Drop the pack's suspicious ok answers and queue their documents alone."""
        answers = {r.doc_id: r.fields for r in results if r.status == "ok" and r.fields}
        flagged = suspicious_items(
            {d.doc_id: d.text for d in pack.docs}, answers, self.static_words
        )
        if not flagged:
            return results
        for doc in pack.docs:
            if doc.doc_id in flagged:
                self.log.info("item %s re-run alone: %s", doc.doc_id, flagged[doc.doc_id])
                self.queue.put_nowait(Pack((doc,), pack.attempt + 1, pack.budget_scale))
        self.rerun_alone += len(flagged)
        return [r for r in results if r.doc_id not in flagged]

    # -- the pool ----------------------------------------------------------------------------
    async def worker(self) -> None:
        while not self.stop.is_set():
            pack = await self.queue.get()
            try:
                await self.run_pack(pack)
            except TransportError as exc:
                self.fatal = ServerUnavailableError(
                    f"LLM server {exc.base_url} unavailable: {exc.message}; "
                    f"{self.progress.done}/{self.progress.total} documents finished, "
                    "the others stay pending"
                )
                self.fatal.__cause__ = exc
                self.stop.set()
            except Exception as exc:
                self.fatal = exc
                self.stop.set()
            finally:
                self.queue.task_done()

    async def run(self, packs: list[Pack]) -> None:
        for pack in packs:
            self.queue.put_nowait(pack)
        n_workers = max(1, min(self.settings.max_concurrency, len(packs) or 1))
        workers = [asyncio.create_task(self.worker()) for _ in range(n_workers)]
        reporter = asyncio.create_task(
            report_periodically(self.progress, self.log, self.settings.progress_interval_s)
        )
        joined = asyncio.create_task(self.queue.join())
        stopped = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({joined, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Idle workers wait on the queue; busy ones (only when stopping) are mid-call:
            # cancelling abandons those calls, their documents get no result.
            for task in [*workers, reporter, joined, stopped]:
                task.cancel()
            await asyncio.gather(*workers, reporter, joined, stopped, return_exceptions=True)
            if self.handing:  # let store writes already under way finish
                await asyncio.gather(*self.handing, return_exceptions=True)
        if self.fatal is not None:
            raise self.fatal


async def extract(
    task: ExtractionTask,
    documents: Sequence[Document],
    client: LLMClient,
    settings: EngineSettings,
    on_outcome: OnOutcome,
    log: logging.Logger | None = None,
) -> RunSummary:
    """Extract `task` from every document; results reach `on_outcome` call by call."""
    log = log or logging.getLogger(__name__)
    dups = sorted(i for i, n in Counter(d.doc_id for d in documents).items() if n > 1)
    if dups:
        raise ValueError(f"document ids must be unique within a run; repeated: {dups[:5]}")

    planner = await counted_planner(task, settings, client, documents)
    run = _Run(task, client, settings, on_outcome, log, total=len(documents), planner=planner)
    packs, too_long = run.planner.plan(documents)
    log.info(
        "extraction %s: %d documents in %d packs (items_per_call=%d, max_concurrency=%d), "
        "%d too long for the context",
        task.name,
        len(documents),
        len(packs),
        settings.items_per_call,
        settings.max_concurrency,
        len(too_long),
    )
    try:
        if too_long:
            for doc in too_long:
                run.attempts[doc.doc_id] = 0
            await run.fail_without_call(too_long, TOO_LONG)
        await run.run(packs)
    finally:
        log.info(run.progress.line())
        if run.rerun_alone:
            log.info(
                "%d items re-run alone (their pack answer borrowed from a pack-mate or "
                "their text looks like an injection)",
                run.rerun_alone,
            )
    p = run.progress
    return RunSummary(
        items_total=p.total,
        items_ok=p.ok,
        items_failed=p.failed,
        calls=p.calls,
        retried_calls=p.retried_calls,
        prompt_tokens=p.prompt_tokens,
        completion_tokens=p.completion_tokens,
        elapsed_s=p.elapsed_s,
        items_per_min=p.items_per_min,
        output_tokens_per_s=p.output_tokens_per_s,
        rerun_alone=run.rerun_alone,
    )
