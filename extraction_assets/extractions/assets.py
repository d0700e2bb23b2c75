"""Per-task assets: a corpus's extractions (async, packed LLM calls) and its typed table.

corpus_documents -> {task}_extractions -> {task}_table (+ Parquet export)
"""

import asyncio
from dataclasses import replace
from typing import Any

import dagster as dg
from pydantic import field_validator

from extraction_assets.corpora.assets import OWNERS, corpus_documents
from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.engine import EngineSettings, ServerUnavailableError, extract
from extraction_assets.extractions.checks import CHECK_NAMES, ChecksConfig, evaluate_checks
from extraction_assets.extractions.gold_check import (
    GOLD_CHECK,
    GoldRun,
    evaluate_gold_sample,
    gold_check_specs,
)
from extraction_assets.extractions.metadata import markdown_table, table_schema
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask
from resources.llm import LLMResource
from resources.store import CallContext, DuckDBStore


class ExtractionConfig(dg.Config):
    """Run-time knobs of the extraction step (editable in the launchpad).

    ``retry_limit``: how many runs may end a document failed for its current text and task
    version before later runs leave it alone. A run counts once whatever the pack size (within
    a run the engine retries a failing document in halves down to alone). A document too long
    for the context is given up until the served context grows, whatever ``retry_limit``.
    """

    # A positive integer, or "auto": a short probe at the start of the run measures which pack
    # size and requests in flight give the most valid items/min on this server for this task.
    items_per_call: Any = 20
    max_concurrency: Any = 10
    retry_limit: int = 3  # failed runs before a document is given up (see the docstring)
    progress_interval_s: float = 5.0
    max_failed_share: float = 0.2  # the validity check warns above this share of failed documents
    # Re-run alone an item whose pack answer borrows from a pack-mate or whose text looks like a
    # prompt injection (engine/contamination.py); the lone answer is stored.
    isolate_suspicious: bool = True

    @field_validator("items_per_call", "max_concurrency")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> int | str:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value > 0
        ):
            return value
        raise ValueError(f'must be a positive integer or "auto", got {value!r}')


# Fewer pending documents than this: no probe (it would cost more than it saves).
AUTO_MIN_DOCUMENTS = 40
AUTO_PROBE_SAMPLE = 400


async def resolve_recipe(
    config: ExtractionConfig,
    task: ExtractionTask,
    pending: list,
    client: Any,
    settings: EngineSettings,
    log: Any,
) -> tuple[int, int]:
    """The (items_per_call, max_concurrency) of this run: as configured, or probed for "auto"."""
    defaults = ExtractionConfig()
    fixed_n = config.items_per_call if config.items_per_call != "auto" else None
    fixed_c = config.max_concurrency if config.max_concurrency != "auto" else None
    if fixed_n is not None and fixed_c is not None:
        return fixed_n, fixed_c
    if len(pending) < AUTO_MIN_DOCUMENTS:
        n, c = fixed_n or defaults.items_per_call, fixed_c or defaults.max_concurrency
        log.info(
            f"auto recipe: only {len(pending)} documents pending (< {AUTO_MIN_DOCUMENTS}); "
            f"no probe, using items_per_call={n}, max_concurrency={c}"
        )
        return n, c
    from extraction_assets.engine.autotune import CONCURRENCIES, PACK_SIZES, choose_recipe

    n, c, _ = await choose_recipe(
        task,
        pending[:AUTO_PROBE_SAMPLE],
        client,
        settings,
        log,
        pack_sizes=(fixed_n,) if fixed_n else PACK_SIZES,
        concurrencies=(fixed_c,) if fixed_c else CONCURRENCIES,
    )
    log.info(f"auto recipe: items_per_call={n}, max_concurrency={c}")
    return n, c


def build_task_assets(
    task: ExtractionTask, llm: LLMResource, settings: Settings | None = None
) -> list[Any]:
    """The extractions and typed-table assets of one task.

    `code_version` is the task version for the configured model, so a changed prompt, schema or model
    shows up in the UI as a code version change (and the store re-extracts on its own).
    """
    settings = settings or Settings.from_env()
    code_version = task.version(llm.model, llm.get_client().generation_params())
    extractions_key = dg.AssetKey(f"{task.name}_extractions")
    gold_specs = gold_check_specs(task, settings, extractions_key)

    @dg.asset(
        key=extractions_key,
        partitions_def=corpus_partitions,
        deps=[corpus_documents],
        group_name="extractions",
        kinds={"duckdb", "python"},
        owners=OWNERS,
        code_version=code_version,
        check_specs=[
            dg.AssetCheckSpec(name, asset=extractions_key, description=desc)
            for name, desc in CHECK_NAMES.items()
        ]
        + gold_specs,
        description=(
            f"{task.description} Extracts only pending documents (new or changed text, a new task "
            "version, or earlier failures under the retry limit), packed several per call, with several "
            "calls in flight; each call's results are journaled as soon as it completes and merged into "
            "the store every few seconds (a killed run's journal is merged by the next run)."
        ),
    )
    async def extractions(
        context: dg.AssetExecutionContext,
        config: ExtractionConfig,
        llm: LLMResource,
        store: DuckDBStore,
    ) -> dg.MaterializeResult:
        corpus = context.partition_key
        # One run per corpus and task at a time, whatever launched it (the run queue only orders
        # runs it launches): a second run waits, then finds nothing pending.
        with store.extraction_lock(corpus, task.name, on_wait=context.log.warning):
            return await _extract_corpus(context, config, llm, store, corpus)

    async def _extract_corpus(
        context: dg.AssetExecutionContext,
        config: ExtractionConfig,
        llm: LLMResource,
        store: DuckDBStore,
        corpus: str,
    ) -> dg.MaterializeResult:
        run_id = context.run.run_id
        client = llm.get_client()
        version = task.version(llm.model, client.generation_params())
        # Calls a killed run had journaled but not merged count as done, not as pending.
        recovered = await asyncio.to_thread(store.recover_journals)
        if recovered:
            context.log.info(f"merged {recovered} calls left in the journal of an interrupted run")
        pending = await asyncio.to_thread(
            store.pending_documents, corpus, task.name, version, config.retry_limit,
            llm.max_model_len,
        )
        context.log.info(
            f"corpus {corpus!r}, task {task.name} (version {version}, {client.backend}:{llm.model}): "
            f"{len(pending)} documents pending"
        )

        engine_settings = EngineSettings(
            max_model_len=llm.max_model_len,
            progress_interval_s=config.progress_interval_s,
            isolate_suspicious=config.isolate_suspicious,
        )
        items_per_call, max_concurrency = await resolve_recipe(
            config, task, pending, client, engine_settings, context.log
        )
        engine_settings = replace(
            engine_settings, items_per_call=items_per_call, max_concurrency=max_concurrency
        )
        # Each call is acknowledged once it is in this run's journal (calls finishing together
        # share one append); the journal is merged into the store every few seconds and at the
        # end of the block, so the store is not opened once per call.
        try:
            async with store.outcome_writer(
                CallContext(run_id, corpus, task.name, version, client.backend, llm.model)
            ) as writer:
                summary = await extract(
                    task, pending, client, engine_settings, writer.write, log=context.log
                )
        except ServerUnavailableError as exc:
            raise dg.Failure(
                description=(
                    f"corpus {corpus!r}, task {task.name}: the LLM server stayed unavailable ({exc}). "
                    "Finished calls are stored; unfinished documents stay pending for the next run."
                )
            ) from exc
        finally:
            await client.aclose()

        stats = await asyncio.to_thread(
            store.table_stats, corpus, task.name, version, config.retry_limit, llm.max_model_len
        )
        changes = await asyncio.to_thread(store.change_report, run_id, corpus)
        check_results = await asyncio.to_thread(
            evaluate_checks,
            store,
            Settings.from_env(),
            corpus,
            task,
            version,
            ChecksConfig(max_failed_share=config.max_failed_share),
        )
        if gold_specs:
            check_results.append(
                await _gold_check(context, llm, store, version, engine_settings, config.retry_limit)
            )
        field_changes = [c for c in changes if c.get("field")]
        return dg.MaterializeResult(
            metadata={
                "task_version": version,
                "backend": client.backend,
                "model": llm.model,
                "dagster/partition_row_count": stats["ok"],
                "pending_before_run": len(pending),
                "items_per_call": items_per_call,
                "max_concurrency": max_concurrency,
                **{f"run/{k}": v for k, v in summary.as_metadata().items()},
                **{f"store/{k}": v for k, v in stats.items()},
                "store/journal_appends": writer.transactions,
                "store/merges": writer.merges,
                "changes": dg.MetadataValue.md(
                    markdown_table(
                        [c for c in changes if not c.get("field")][:20],
                        ["doc_id", "change", "task"],
                    )
                ),
                "field_changes": dg.MetadataValue.md(
                    markdown_table(
                        field_changes[:20], ["doc_id", "field", "old_value", "new_value"]
                    )
                ),
            },
            check_results=check_results,
        )

    async def _gold_check(
        context: dg.AssetExecutionContext,
        llm: LLMResource,
        store: DuckDBStore,
        version: str,
        engine_settings: EngineSettings,
        retry_limit: int,
    ) -> dg.AssetCheckResult:
        """The gold_sample check with the run's recipe; an error in it warns, it never fails the
        step (the corpus's extractions are stored whatever the check finds)."""
        client = llm.get_client()
        run = GoldRun(store, client, client.backend, llm.model, version, context.run.run_id,
                      engine_settings, retry_limit, context.log, corpus=context.partition_key)
        try:
            return await evaluate_gold_sample(task, Settings.from_env(), run)
        except Exception as exc:  # any error becomes the check result
            context.log.exception("gold_sample check failed")
            return dg.AssetCheckResult(
                check_name=GOLD_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"error": f"{type(exc).__name__}: {exc}"},
            )
        finally:
            await client.aclose()

    @dg.asset(
        name=f"{task.name}_table",
        partitions_def=corpus_partitions,
        deps=[extractions],
        group_name="tables",
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        code_version=code_version,
        description=(
            f"Typed table of the {task.name} task (DuckDB view `{task.name}_extractions`: one column per "
            "field, current texts only), exported per corpus to Parquet."
        ),
    )
    def table(context: dg.AssetExecutionContext, store: DuckDBStore) -> dg.MaterializeResult:
        corpus = context.partition_key
        view = store.ensure_task_view(task.name, task.item_model)
        export = Settings.from_env().export_dir / task.name / f"{corpus}.parquet"
        export.parent.mkdir(parents=True, exist_ok=True)
        rows = store.export_parquet(task.name, str(export), corpus=corpus)
        described = store.view_columns(task.name)
        total_rows = store.view_rows(task.name)
        preview = store.preview(task.name, corpus, limit=5)
        return dg.MaterializeResult(
            metadata={
                "dagster/partition_row_count": rows,
                "dagster/row_count": total_rows,
                "dagster/column_schema": table_schema(described),
                "view": view,
                "parquet": dg.MetadataValue.path(str(export)),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            }
        )

    return [extractions, table]
