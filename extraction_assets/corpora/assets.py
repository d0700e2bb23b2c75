"""The corpus documents asset: a corpus folder on disk, synced into the store's documents table."""

import time
from collections.abc import Sequence

import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import iter_corpus, scan_corpus
from extraction_assets.errors import CorpusError
from extraction_assets.settings import Settings
from resources.store import DuckDBStore

OWNERS = ["team:data-extraction"]


def build_corpus_documents(
    settings: Settings | None = None,
    *,
    partitions_def: dg.DynamicPartitionsDefinition = corpus_partitions,
    key_prefix: Sequence[str] = (),
    store_key: str = "store",
    settings_key: str = "settings",
) -> dg.AssetsDefinition:
    """The corpus documents asset over ``partitions_def``; ``settings`` None takes them from the
    ``settings_key`` resource at run time. A component's extraction passes its own settings,
    partitions, key prefix and store resource key, so several extractions live in one code
    location."""
    resource_keys = {store_key} if settings is not None else {store_key, settings_key}

    @dg.asset(
        key=[*key_prefix, "corpus_documents"],
        partitions_def=partitions_def,
        group_name=key_prefix[0] if key_prefix else "corpora",
        kinds={"duckdb"},
        owners=OWNERS,
        pool="duckdb_document_sync",
        required_resource_keys=resource_keys,
        description=(
            "The documents of one corpus (one partition per corpus folder under the source root), "
            "upserted into the store by id and content hash. Documents gone from the source are "
            "tombstoned, never erased."
        ),
    )
    def corpus_documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store: DuckDBStore = getattr(context.resources, store_key)
        given = settings if settings is not None else getattr(context.resources, settings_key)
        return sync_corpus_partition(context, store, given)

    return corpus_documents


def sync_corpus_partition(
    context: dg.AssetExecutionContext, store: DuckDBStore, settings: Settings
) -> dg.MaterializeResult:
    corpus = context.partition_key
    limit = settings.max_file_bytes
    started = time.perf_counter()
    try:
        # Fingerprint first: a folder unchanged since the last sync is not read again. The sync
        # reads and validates the whole corpus before writing: a bad file leaves the store as it was.
        scan = scan_corpus(settings.source_root, corpus, limit)
        sync = store.sync_corpus(
            scan, context.run.run_id, lambda: iter_corpus(settings.source_root, corpus, limit)
        )
    except CorpusError as exc:
        raise dg.Failure(
            description=f"{exc} (nothing was written for corpus {corpus!r})",
            metadata={"corpus": corpus, "source_root": str(settings.source_root)},
        ) from exc
    seconds = time.perf_counter() - started
    context.log.info(
        f"corpus {corpus!r}: {sync.total_current} current documents ({sync.reader}, {seconds:.1f} s); "
        f"new={sync.new} changed={sync.changed} deleted={sync.deleted} restored={sync.restored} "
        f"unchanged={sync.unchanged}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/partition_row_count": sync.total_current,
            "new": sync.new,
            "changed": sync.changed,
            "deleted": sync.deleted,
            "restored": sync.restored,
            "unchanged": sync.unchanged,
            "reader": sync.reader,
            "sync_seconds": round(seconds, 3),
            "source_fingerprint": scan.fingerprint,
            "source_root": dg.MetadataValue.path(str(settings.source_root / corpus)),
            "store": dg.MetadataValue.path(store.path),
        }
    )


corpus_documents = build_corpus_documents()
