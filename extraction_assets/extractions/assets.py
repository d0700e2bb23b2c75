"""Per-task assets: a corpus's extractions (async, packed LLM calls) and its typed table.

corpus_documents -> {task}_extractions -> {task}_table (+ Parquet export)

The extraction's data version is a digest of the rows the typed table shows for the corpus, so a run
that changed nothing (an unchanged corpus) keeps it, and the table step then observes instead of
materialising: the UI and automation see that nothing changed.
"""

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg
from pydantic import ValidationError, field_validator

from extraction_assets.corpora.assets import OWNERS, corpus_documents
from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.engine import EngineSettings
from extraction_assets.engine.audit import DEFAULT_MAX_DISAGREEMENT, AuditReport
from extraction_assets.errors import (
    CorpusError,
    RequestRejectedError,
    ServerUnavailableError,
    StoreLockedError,
    TaskSpecError,
)
from extraction_assets.extractions.capacity import endpoint_pool, pool_limit
from extraction_assets.extractions.checks import build_task_checks, latest_materialization
from extraction_assets.extractions.freshness import DEFAULT_MAX_LAG
from extraction_assets.extractions.gold_check import GoldRun, gold_sets_for, prefetch_gold_sample
from extraction_assets.extractions.metadata import markdown_table, table_schema
from extraction_assets.extractions.run import CorpusRun, Recipe, extract_corpus
from extraction_assets.forecast import Forecast, compare, price_table
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask
from resources.llm import LLMResource
from resources.store import DuckDBStore


# Transient server loss: retried by Dagster with exponential backoff (30 s, 60 s, 120 s, +-jitter);
# the LLM client already retried each request before giving up.
def extraction_retry_policy(max_retries: int = 3) -> dg.RetryPolicy:
    """Retries of an extraction step that lost its server (EXTRACTION_SERVER_RETRIES)."""
    return dg.RetryPolicy(
        max_retries=max_retries,
        delay=30,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


EXTRACTION_RETRY_POLICY = extraction_retry_policy()
# What a retry can fix: the server coming back, another run releasing the store.
_TRANSIENT = (ServerUnavailableError, StoreLockedError)
# What it cannot: the server refusing the request (wrong model, key), a bad task or corpus.
_PERMANENT = (
    RequestRejectedError,
    TaskSpecError,
    CorpusError,
    ValidationError,
    ValueError,
    TypeError,
)


class ExtractionConfig(dg.Config):
    """Run-time knobs of the extraction step (editable in the launchpad); see `Recipe`.

    ``retry_limit``: how many runs may end a document failed for its current text and task
    version before later runs leave it alone. A run counts once whatever the pack size (within
    a run the engine retries a failing document in halves down to alone). A document too long
    for the context is given up until the served context grows, whatever ``retry_limit``.
    """

    # A positive integer, or "auto" (engine/autotune.py): on vLLM one item per call with many in
    # flight (the fastest and most accurate recipe measured); packs where requests cost (Ollama,
    # OpenAI); a probe of the server when many documents are pending.
    items_per_call: Any = Recipe.items_per_call
    max_concurrency: Any = Recipe.max_concurrency
    retry_limit: int = Recipe.retry_limit
    progress_interval_s: float = Recipe.progress_interval_s
    # Re-run alone an item whose pack answer borrows from a pack-mate or whose text looks like a
    # prompt injection (engine/contamination.py); the lone answer is stored.
    isolate_suspicious: bool = Recipe.isolate_suspicious
    # The shadow audit (engine/audit.py): this share of the run's packed items (at least one when
    # any was packed; 0 disables) is extracted again alone and compared field by field; the
    # pack_audit check warns when more than pack_audit_max_disagreement of them disagree.
    pack_audit_share: float = Recipe.pack_audit_share
    pack_audit_max_disagreement: float = DEFAULT_MAX_DISAGREEMENT

    @field_validator("items_per_call", "max_concurrency")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> int | str:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value > 0
        ):
            return value
        raise ValueError(f'must be a positive integer or "auto", got {value!r}')

    @field_validator("pack_audit_share", "pack_audit_max_disagreement")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"must be a share between 0 and 1, got {value!r}")
        return value

    def recipe(self) -> Recipe:
        return Recipe(
            items_per_call=self.items_per_call,
            max_concurrency=self.max_concurrency,
            retry_limit=self.retry_limit,
            progress_interval_s=self.progress_interval_s,
            isolate_suspicious=self.isolate_suspicious,
            pack_audit_share=self.pack_audit_share,
        )


PACK_AUDIT = "pack_audit"
PACK_AUDIT_DESCRIPTION = (
    "A seeded sample of the run's packed items, extracted again alone: the share whose answers "
    "differ field by field from the stored pack answers stays below the configured threshold."
)


def build_task_assets(
    task: ExtractionTask,
    llm: LLMResource,
    settings: Settings,
    *,
    key_prefix: Sequence[str] = (),
    retry_policy: dg.RetryPolicy = EXTRACTION_RETRY_POLICY,
    max_lag: timedelta = DEFAULT_MAX_LAG,
    partitions_def: dg.DynamicPartitionsDefinition = corpus_partitions,
    documents: dg.AssetsDefinition = corpus_documents,
    group_name: str | None = None,
    llm_key: str = "llm",
    store_key: str = "store",
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The extractions and typed-table assets of one task over the corpora of `settings.source_root`,
    and the extraction's checks (extractions/checks.py).

    `code_version` is the task version for the configured model, so a changed prompt, schema or model
    shows up in the UI as a code version change (and the store re-extracts on its own). A component's
    extraction passes its own partitions, documents asset, group and resource keys.

    The steps that call the LLM declare the pool of its endpoint (extractions/capacity.py), so
    concurrent runs share one server's capacity instead of each sending a run's worth.
    """
    prefix = list(key_prefix)
    code_version = task.version(llm.model, llm.get_client().generation_params())
    extractions_key = dg.AssetKey([*prefix, f"{task.name}_extractions"])
    table_key = dg.AssetKey([*prefix, f"{task.name}_table"])
    pool = endpoint_pool(llm.base_url, settings.llm_pool)

    @dg.asset(
        key=extractions_key,
        partitions_def=partitions_def,
        deps=[documents],
        group_name=group_name or "extractions",
        required_resource_keys={llm_key, store_key},
        kinds={"duckdb", "python"},
        owners=OWNERS,
        code_version=code_version,
        retry_policy=retry_policy,
        pool=pool,
        # The shadow audit's lone answers are a measurement of this run, never stored: its check
        # can only be evaluated inside the step.
        check_specs=[
            dg.AssetCheckSpec(PACK_AUDIT, asset=extractions_key, description=PACK_AUDIT_DESCRIPTION)
        ],
        description=(
            f"{task.description} Extracts only pending documents (new or changed text, a new task "
            "version, or earlier failures under the retry limit), packed several per call, with several "
            "calls in flight; each call's results are journaled as soon as it completes and merged into "
            "the store every few seconds (a killed run's journal is merged by the next run). "
            "A lost server is retried with backoff; a refused request or bad input is not."
        ),
    )
    async def extractions(
        context: dg.AssetExecutionContext, config: ExtractionConfig
    ) -> dg.MaterializeResult:
        llm: LLMResource = getattr(context.resources, llm_key)
        store: DuckDBStore = getattr(context.resources, store_key)
        corpus = context.partition_key

        def show_forecast(forecast: Forecast) -> None:
            # On the corpus's partition in the UI while the extraction runs (an observation).
            context.log_event(
                dg.AssetObservation(
                    asset_key=extractions_key, partition=corpus, metadata=forecast.as_metadata()
                )
            )

        # The step holds one of the pool's slots: the server's requests in flight are shared
        # by as many steps as the pool's limit lets run.
        limit = pool_limit(context.instance, pool)
        share = max(1, limit) if limit else 1
        if pool is not None:
            context.log.info(
                f"pool {pool}: limit {limit if limit is not None else 'none'} "
                f"(runs extracting from this server at once); this run takes 1/{share} of "
                "its requests in flight"
            )
        client = llm.get_client()
        where = f"corpus {corpus!r}, task {task.name}"

        async def gold_alongside(engine_settings: EngineSettings) -> int:
            gold_run = GoldRun(
                store, client, client.backend, client.model,
                task.version(client.model, client.generation_params()), context.run.run_id,
                engine_settings, config.recipe().retry_limit, context.log, corpus=corpus,
            )  # fmt: skip
            return await prefetch_gold_sample(task, settings, gold_run)

        try:
            run = await extract_corpus(
                store,
                client,
                task,
                corpus,
                config.recipe(),
                run_id=context.run.run_id,
                max_model_len=llm.max_model_len,
                log=context.log,
                on_forecast=show_forecast,
                prices=price_table(settings.prices or ""),
                alongside=gold_alongside if gold_sets_for(task, settings) else None,
                server_share=share,
            )
        except _TRANSIENT as exc:
            raise dg.Failure(
                description=(
                    f"{where}: {exc}. Finished calls are stored; unfinished documents stay pending "
                    "(retried with backoff, then by the next run)."
                ),
                allow_retries=True,
            ) from exc
        except _PERMANENT as exc:
            raise dg.Failure(
                description=f"{where}: {type(exc).__name__}: {exc} (a retry cannot fix this)",
                allow_retries=False,
            ) from exc
        finally:
            await client.aclose()
        version = store.table_version(corpus, task.name)
        return dg.MaterializeResult(
            metadata={
                **run_metadata(run, config.recipe()),
                "llm_pool": pool or "none",
                "llm_pool_limit": limit if limit is not None else "none",
            },
            data_version=dg.DataVersion(version),
            check_results=[pack_audit_result(run.audit, config.pack_audit_max_disagreement)],
        )

    @dg.asset(
        key=table_key,
        partitions_def=partitions_def,
        deps=[extractions],
        group_name=group_name or "tables",
        required_resource_keys={store_key},
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        code_version=code_version,
        output_required=False,
        description=(
            f"Typed table of the {task.name} task (DuckDB view `{task.name}_extractions`: one column per "
            "field, current texts only), exported per corpus to Parquet. Refreshed only when the "
            "extraction's data version changed (else observed), and never after a failed validity check."
        ),
    )
    def table(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        store: DuckDBStore = getattr(context.resources, store_key)
        corpus = context.partition_key
        export = settings.export_dir / task.name / f"{corpus}.parquet"
        upstream = _data_version(context.instance, extractions_key, corpus)
        current = _data_version(context.instance, table_key, corpus)
        if upstream is not None and upstream == current and export.exists():
            context.log.info(
                f"corpus {corpus!r}: extraction unchanged (data version {upstream}); "
                "typed table and Parquet export not refreshed"
            )
            yield dg.AssetObservation(
                asset_key=table_key,
                partition=corpus,
                metadata={"unchanged": True, "data_version": upstream},
            )
            return
        view = store.ensure_task_view(task.name, task.item_model)
        export.parent.mkdir(parents=True, exist_ok=True)
        rows = store.export_parquet(task.name, str(export), corpus=corpus)
        described = store.view_columns(task.name)
        total_rows = store.view_rows(task.name)
        preview = store.preview(task.name, corpus, limit=5)
        yield dg.MaterializeResult(
            metadata={
                "dagster/partition_row_count": rows,
                "dagster/row_count": total_rows,
                "dagster/column_schema": table_schema(described),
                "view": view,
                "parquet": dg.MetadataValue.path(str(export)),
                "preview": dg.MetadataValue.md(markdown_table(preview)),
            },
            data_version=dg.DataVersion(upstream) if upstream else None,
        )

    checks = build_task_checks(
        task,
        settings,
        extractions_key,
        max_lag,
        partitions_def=partitions_def,
        llm_key=llm_key,
        store_key=store_key,
        pool=pool,
    )
    return [extractions, table, *checks]


def _data_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    record = latest_materialization(instance, key, partition)
    if record is None or record.asset_materialization is None:
        return None
    return (record.asset_materialization.tags or {}).get("dagster/data_version")


def run_metadata(run: CorpusRun, recipe: Recipe) -> dict[str, Any]:
    """A corpus run as the extraction materialisation's metadata (the checks read it back)."""
    return {
        "task_version": run.task_version,
        "backend": run.backend,
        "model": run.model,
        "dagster/partition_row_count": run.stats["ok"],
        "pending_before_run": run.pending_before_run,
        "items_per_call": run.items_per_call,
        "max_concurrency": run.max_concurrency,
        "retry_limit": recipe.retry_limit,
        "isolate_suspicious": recipe.isolate_suspicious,
        **{f"run/{k}": v for k, v in run.summary.as_metadata().items()},
        **{f"store/{k}": v for k, v in run.stats.items()},
        **{f"pack_audit/{k}": v for k, v in run.audit.as_metadata().items()},
        **forecast_metadata(run),
        "store/journal_appends": run.journal_appends,
        "store/merges": run.merges,
        "changes": dg.MetadataValue.md(
            markdown_table(run.document_changes[:20], ["doc_id", "change", "task"])
        ),
        "field_changes": dg.MetadataValue.md(
            markdown_table(run.field_changes[:20], ["doc_id", "field", "old_value", "new_value"])
        ),
    }


def forecast_metadata(run: CorpusRun) -> dict[str, Any]:
    """The run's forecast and how far it was from what happened (error in %)."""
    if run.forecast is None:
        return {}
    return {**run.forecast.as_metadata(), **compare(run.forecast, run.summary)}


def pack_audit_result(audit: AuditReport, max_disagreement: float) -> dg.AssetCheckResult:
    """The pack_audit check: warns when the audited packed items disagree too often alone."""
    return dg.AssetCheckResult(
        check_name=PACK_AUDIT,
        passed=audit.passed(max_disagreement),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **audit.as_metadata(),
            "threshold": max_disagreement,
            "disagreements": dg.MetadataValue.md(
                markdown_table(audit.examples, ["doc_id", "field", "pack", "alone"])
            ),
        },
    )
