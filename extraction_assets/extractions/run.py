"""One corpus's extraction step as a plain function: pending documents -> engine -> store.

No Dagster here: the `{task}_extractions` asset calls :func:`extract_corpus` and maps the
:class:`CorpusRun` it returns to metadata and check results. Tests call it directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from extraction_assets.engine import EngineSettings, RunSummary, extract
from extraction_assets.engine.audit import DEFAULT_SHARE, AuditReport, PackedAnswers, shadow_audit
from extraction_assets.engine.autotune import resolve_recipe
from extraction_assets.forecast import Forecast, forecast_corpus
from extraction_assets.tasks import ExtractionTask
from extraction_assets.types import CallOutcome

if TYPE_CHECKING:
    from resources.backends.base import LLMClient
    from resources.store import DuckDBStore

Knob = int | Literal["auto"]


@dataclass(frozen=True)
class Recipe:
    """How a run extracts: pack size and requests in flight (a number or "auto", the default:
    engine/autotune.py chooses by backend, one item per call with many in flight on vLLM), the
    retry limit of failed documents, progress logging, the re-run alone of suspicious items
    (engine/contamination.py)."""

    items_per_call: Knob = "auto"
    max_concurrency: Knob = "auto"
    retry_limit: int = 3  # failed runs before a document is given up (see ExtractionConfig)
    progress_interval_s: float = 5.0
    isolate_suspicious: bool = True
    # The shadow audit (engine/audit.py): this share of the run's packed items, at least one when
    # any was packed (0 disables), is extracted again alone and compared with the pack answers.
    pack_audit_share: float = DEFAULT_SHARE


@dataclass(frozen=True)
class CorpusRun:
    """What one extraction step did to one corpus: the numbers the asset reports."""

    corpus: str
    task: str
    task_version: str
    backend: str
    model: str
    pending_before_run: int
    items_per_call: int
    max_concurrency: int
    summary: RunSummary
    stats: dict[str, int | float]  # store.table_stats after the run
    changes: list[dict[str, Any]]  # store.change_report of this run and corpus
    engine_settings: EngineSettings
    recovered_calls: int = 0  # calls merged from an interrupted run's journal
    journal_appends: int = 0
    merges: int = 0
    audit: AuditReport = field(default_factory=AuditReport)
    forecast: Forecast | None = None  # made before extracting (extraction_assets/forecast.py)
    field_changes: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_changes", [c for c in self.changes if c.get("field")])

    @property
    def document_changes(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if not c.get("field")]


async def extract_corpus(
    store: DuckDBStore,
    client: LLMClient,
    task: ExtractionTask,
    corpus: str,
    recipe: Recipe,
    *,
    run_id: str,
    max_model_len: int,
    log: logging.Logger | Any,
    on_forecast: Callable[[Forecast], None] | None = None,
    prices: dict[str, tuple[float, float]] | None = None,
    alongside: Callable[[EngineSettings], Coroutine[Any, Any, object]] | None = None,
    server_share: int = 1,
) -> CorpusRun:
    """Extract what is pending in `corpus` for `task` and store it; the caller owns `client`.

    One run per corpus and task at a time, whatever launched it (a second one waits, then finds
    nothing pending). Before extracting, the run's forecast (extraction_assets/forecast.py, at
    the recipe chosen; `prices` for the OpenAI cost) is logged and handed to `on_forecast`.
    `alongside` (e.g. the gold sample's extraction) runs beside the corpus's calls with the
    recipe chosen: a continuous-batching server decodes more in all with more sequences, so
    work that would follow the run goes faster within it. Its errors are logged, not raised.
    `server_share`: how many runs may use the server at once (its pool's limit,
    extractions/capacity.py); an auto in-flight count is that share of one run's.
    Raises the engine's `ServerUnavailableError` when the server stays away: finished calls are
    stored, unfinished documents stay pending.
    """
    with store.extraction_lock(corpus, task.name, on_wait=log.warning):
        version = task.version(client.model, client.generation_params())
        # Calls a killed run had journaled but not merged count as done, not as pending.
        recovered = await asyncio.to_thread(store.recover_journals)
        if recovered:
            log.info(f"merged {recovered} calls left in the journal of an interrupted run")
        pending = await asyncio.to_thread(
            store.pending_documents, corpus, task.name, version, recipe.retry_limit, max_model_len
        )
        log.info(
            f"corpus {corpus!r}, task {task.name} (version {version}, "
            f"{client.backend}:{client.model}): {len(pending)} documents pending"
        )
        engine_settings = EngineSettings(
            max_model_len=max_model_len,
            progress_interval_s=recipe.progress_interval_s,
            isolate_suspicious=recipe.isolate_suspicious,
        )
        items_per_call, max_concurrency = await resolve_recipe(
            recipe.items_per_call,
            recipe.max_concurrency,
            task,
            pending,
            client,
            engine_settings,
            log,
            share=server_share,
        )
        engine_settings = replace(
            engine_settings, items_per_call=items_per_call, max_concurrency=max_concurrency
        )
        forecast: Forecast | None = None
        try:
            forecast = await forecast_corpus(
                store,
                client,
                task,
                corpus,
                items_per_call=items_per_call,
                max_model_len=max_model_len,
                retry_limit=recipe.retry_limit,
                prices=prices,
            )
        except Exception as exc:  # a forecast is advice: the run goes on without it
            log.warning(f"no forecast for corpus {corpus!r}: {type(exc).__name__}: {exc}")
        if forecast is not None:
            log.info(forecast.summary())
            if on_forecast is not None:
                on_forecast(forecast)
        side: asyncio.Task[object] | None = (
            asyncio.create_task(alongside(engine_settings)) if alongside else None
        )
        try:
            # Each call is acknowledged once it is in this run's journal (calls finishing together
            # share one append); the journal is merged into the store every few seconds and at the
            # end of the block, so the store is not opened once per call.
            async with store.outcome_writer(
                run_id=run_id,
                corpus=corpus,
                task=task.name,
                task_version=version,
                backend=client.backend,
                model=client.model,
            ) as writer:
                packed = PackedAnswers()

                async def on_outcome(outcome: CallOutcome) -> None:
                    packed.observe(outcome)
                    await writer.write(outcome)

                summary = await extract(task, pending, client, engine_settings, on_outcome, log=log)
            # The lone answers are a measurement, not extractions: nothing of the audit is stored.
            audit = await shadow_audit(
                task,
                pending,
                packed.answers,
                client,
                engine_settings,
                share=recipe.pack_audit_share,
                seed=run_id,
                log=log,
            )
        except BaseException:
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
            raise
        if side is not None:
            try:
                await side
            except Exception as exc:  # the side work reports its own outcome elsewhere
                log.warning(f"work beside corpus {corpus!r} failed: {type(exc).__name__}: {exc}")
        stats = await asyncio.to_thread(
            store.table_stats, corpus, task.name, version, recipe.retry_limit, max_model_len
        )
        changes = await asyncio.to_thread(store.change_report, run_id, corpus)
    return CorpusRun(
        corpus=corpus,
        task=task.name,
        task_version=version,
        backend=client.backend,
        model=client.model,
        pending_before_run=len(pending),
        items_per_call=items_per_call,
        max_concurrency=max_concurrency,
        summary=summary,
        stats=stats,
        changes=changes,
        engine_settings=engine_settings,
        recovered_calls=recovered,
        journal_appends=writer.transactions,
        merges=writer.merges,
        audit=audit,
        forecast=forecast,
    )
