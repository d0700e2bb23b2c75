"""The corpus documents asset: a corpus folder on disk, synced into the store's documents table."""


import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import CorpusError, corpus_fingerprint, read_corpus
from extraction_assets.settings import Settings
from resources.store import DuckDBStore

OWNERS = ["team:data-extraction"]


@dg.asset(
    partitions_def=corpus_partitions,
    group_name="corpora",
    kinds={"duckdb", "json"},
    owners=OWNERS,
    pool="duckdb_document_sync",
    description=(
        "The documents of one corpus (one partition per corpus folder under the source root), upserted "
        "into the store by id and content hash. Documents gone from the source are tombstoned, never erased."
    ),
)
def corpus_documents(context: dg.AssetExecutionContext, store: DuckDBStore) -> dg.MaterializeResult:
    corpus = context.partition_key
    settings = Settings.from_env()
    try:
        # Read and validate the whole corpus before writing anything: a bad file leaves the store as it was.
        documents = read_corpus(settings.source_root, corpus)
    except CorpusError as exc:
        raise dg.Failure(
            description=f"{exc} (nothing was written for corpus {corpus!r})",
            metadata={"corpus": corpus, "source_root": str(settings.source_root)},
        ) from exc
    sync = store.sync_documents(corpus, documents, run_id=context.run.run_id)
    context.log.info(
        f"corpus {corpus!r}: {len(documents)} documents read; new={sync.new} changed={sync.changed} "
        f"deleted={sync.deleted} restored={sync.restored} unchanged={sync.unchanged}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/partition_row_count": sync.total_current,
            "new": sync.new,
            "changed": sync.changed,
            "deleted": sync.deleted,
            "restored": sync.restored,
            "unchanged": sync.unchanged,
            "source_fingerprint": corpus_fingerprint(settings.source_root, corpus),
            "source_root": dg.MetadataValue.path(str(settings.source_root / corpus)),
            "store": dg.MetadataValue.path(store.path),
        }
    )
