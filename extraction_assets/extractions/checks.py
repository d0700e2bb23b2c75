"""The extraction asset's checks, as standalone partitioned asset checks (one evaluation per corpus).

They run after the extraction step in the same run (and on their own from the UI), and read what the
step did from its latest materialisation of the partition (task version, recipe, items ok/failed):

- ``validity`` is **blocking**: a partition where nothing valid was extracted fails it with severity
  ERROR, and the typed table and its Parquet export are not refreshed; a failed share above
  ``max_failed_share`` only warns.
- ``coverage``, ``source_freshness`` and ``gold_sample`` warn.
"""

import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import corpus_fingerprint, read_corpus
from extraction_assets.engine import EngineSettings
from extraction_assets.errors import CorpusError
from extraction_assets.extractions.freshness import DEFAULT_MAX_LAG, evaluate_freshness
from extraction_assets.extractions.gold_check import (
    GOLD_CHECK,
    GOLD_CHECK_DESCRIPTION,
    GoldRun,
    evaluate_gold_sample,
    gold_sets_for,
)
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask
from resources.llm import LLMResource
from resources.store import DuckDBStore

CHECK_NAMES = {
    "coverage": "Every current document has an ok extraction at the current task version.",
    "validity": (
        "Blocking: something valid was extracted (ERROR otherwise: the typed table is not refreshed); "
        "the share of failed documents stays below max_failed_share (WARN)."
    ),
    "source_freshness": (
        "The store holds the source's current text of every document, or the source's last change "
        "is younger than the allowed lag."
    ),
}
SAMPLE_IDS = 10


class ValidityConfig(dg.Config):
    max_failed_share: float = 0.2  # above this share of failed documents the check warns


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> dg.EventLogRecord | None:
    """The newest materialisation record of one partition of an asset."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    assert materialization is not None
    return {k: v.value for k, v in materialization.metadata.items()}


def build_task_checks(
    task: ExtractionTask,
    settings: Settings,
    extractions_key: dg.AssetKey,
    max_lag: timedelta = DEFAULT_MAX_LAG,
    *,
    partitions_def: dg.DynamicPartitionsDefinition = corpus_partitions,
    llm_key: str = "llm",
    store_key: str = "store",
    pool: str | None = None,
) -> list[dg.AssetChecksDefinition]:
    """coverage, validity (blocking), source_freshness and, when a gold set is configured for the
    task, gold_sample: checks of `extractions_key`, one evaluation per corpus partition.
    gold_sample calls the LLM: it takes a slot of the endpoint's `pool` like the extraction."""

    def check(name: str, **kwargs: Any) -> Callable[..., dg.AssetChecksDefinition]:
        # Partitioned checks are a preview feature of Dagster 1.13, chosen knowingly: without them a
        # check cannot see its corpus. The warning would otherwise repeat at every code load.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            decorator = dg.asset_check(
                asset=extractions_key,
                name=name,
                partitions_def=partitions_def,
                required_resource_keys=kwargs.pop("required_resource_keys", {store_key}),
                description=kwargs.pop("description", CHECK_NAMES.get(name)),
                **kwargs,
            )

        def build(fn: Callable[..., Any]) -> dg.AssetChecksDefinition:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.PreviewWarning)
                return decorator(fn)

        return build

    def extraction(context: dg.AssetCheckExecutionContext) -> dict[str, Any] | None:
        record = latest_materialization(context.instance, extractions_key, context.partition_key)
        return None if record is None else _metadata(record)

    def not_extracted(name: str, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name,
            passed=False,
            severity=severity,
            description=f"no materialisation of {extractions_key.to_user_string()} for this corpus",
        )

    @check("coverage")
    def coverage(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        store: DuckDBStore = getattr(context.resources, store_key)
        run = extraction(context)
        if run is None:
            return not_extracted("coverage", dg.AssetCheckSeverity.WARN)
        corpus, version = context.partition_key, str(run["task_version"])
        missing, sample = store.coverage(corpus, task.name, version, sample=SAMPLE_IDS)
        current = store.table_stats(corpus, task.name, version)["current_documents"]
        return dg.AssetCheckResult(
            passed=missing == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "missing": missing,
                "current_documents": current,
                "sample_missing_ids": ", ".join(sample),
                "task_version": version,
            },
        )

    @check("validity", blocking=True)
    def validity(
        context: dg.AssetCheckExecutionContext, config: ValidityConfig
    ) -> dg.AssetCheckResult:
        store: DuckDBStore = getattr(context.resources, store_key)
        run = extraction(context)
        if run is None:
            return not_extracted("validity", dg.AssetCheckSeverity.ERROR)
        corpus, version = context.partition_key, str(run["task_version"])
        stats = store.table_stats(corpus, task.name, version)
        current, ok, failed = (int(stats[k]) for k in ("current_documents", "ok", "failed"))
        attempted, valid = int(run.get("run/items_total", 0)), int(run.get("run/items_ok", 0))
        failed_share = failed / current if current else 0.0
        metadata = {
            "ok": ok,
            "failed": failed,
            "failed_share": round(failed_share, 4),
            "threshold": config.max_failed_share,
            "extracted_this_run": attempted,
            "valid_this_run": valid,
        }
        nothing_valid = current > 0 and (ok == 0 or (attempted > 0 and valid == 0))
        if nothing_valid:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=metadata,
                description=(
                    f"corpus {corpus!r}: nothing valid was extracted ({valid} of {attempted} this run, "
                    f"{ok} of {current} documents ok); the typed table is not refreshed"
                ),
            )
        return dg.AssetCheckResult(
            passed=failed_share <= config.max_failed_share,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
        )

    @check("source_freshness")
    def source_freshness(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        store: DuckDBStore = getattr(context.resources, store_key)
        corpus = context.partition_key
        record = latest_materialization(context.instance, extractions_key, corpus)
        fresh = evaluate_freshness(
            settings.source_root, corpus, record.timestamp if record else None, max_lag
        )
        try:
            stale = _stale_documents(store, settings, corpus)
        except CorpusError as exc:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"error": str(exc)}
            )
        return dg.AssetCheckResult(
            passed=not stale or fresh.fresh,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                **fresh.metadata(),
                "stale_documents": len(stale),
                "sample_stale_ids": ", ".join(stale[:SAMPLE_IDS]),
            },
        )

    checks = [coverage, validity, source_freshness]
    if gold_sets_for(task, settings):

        @check(
            GOLD_CHECK,
            description=GOLD_CHECK_DESCRIPTION,
            required_resource_keys={llm_key, store_key},
            pool=pool,
        )
        async def gold_sample(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            """Scored with the recipe the extraction used; an error in it warns."""
            llm: LLMResource = getattr(context.resources, llm_key)
            store: DuckDBStore = getattr(context.resources, store_key)
            run = extraction(context)
            if run is None:
                return not_extracted(GOLD_CHECK, dg.AssetCheckSeverity.WARN)
            engine_settings = EngineSettings(
                items_per_call=int(run["items_per_call"]),
                max_concurrency=int(run["max_concurrency"]),
                max_model_len=llm.max_model_len,
                isolate_suspicious=bool(run.get("isolate_suspicious", True)),
            )
            client = llm.get_client()
            gold_run = GoldRun(
                store, client, client.backend, llm.model, str(run["task_version"]),
                context.run.run_id, engine_settings, int(run.get("retry_limit", 3)), context.log,
                corpus=context.partition_key,
            )  # fmt: skip
            try:
                return await evaluate_gold_sample(task, settings, gold_run)
            except Exception as exc:  # any error becomes the check result
                context.log.exception("gold_sample check failed")
                return dg.AssetCheckResult(
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"error": f"{type(exc).__name__}: {exc}"},
                )
            finally:
                await client.aclose()

        checks.append(gold_sample)
    return checks


def _stale_documents(store: DuckDBStore, settings: Settings, corpus: str) -> list[str]:
    """Ids whose text in the store is not the source's (either side missing counts)."""
    # The folder's bytes are those last synced: fresh without parsing a single document.
    if corpus_fingerprint(settings.source_root, corpus) == store.synced_fingerprint(corpus):
        return []
    source = {
        d.doc_id: d.content_hash
        for d in read_corpus(settings.source_root, corpus, settings.max_file_bytes)
    }
    stored = store.document_hashes(corpus)
    return sorted(k for k in source.keys() | stored.keys() if source.get(k) != stored.get(k))
