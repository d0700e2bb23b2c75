"""Asset checks evaluated with every extraction of a corpus partition.

They run inside the extraction step (as check results of the materialisation) because a standalone check
cannot see which corpus partition it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from extraction_assets.corpora.sources import corpus_fingerprint, read_corpus
from extraction_assets.errors import CorpusError
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask
from resources.store import DuckDBStore

CHECK_NAMES = {
    "coverage": "Every current document has an ok extraction at the current task version.",
    "validity": "The share of failed documents stays below the configured threshold.",
    "source_freshness": "The store holds the source's current text of every document (no change left unprocessed).",
}


@dataclass(frozen=True)
class ChecksConfig:
    max_failed_share: float = 0.2
    sample: int = 10


def evaluate_checks(
    store: DuckDBStore,
    settings: Settings,
    corpus: str,
    task: ExtractionTask,
    task_version: str,
    config: ChecksConfig,
) -> list[dg.AssetCheckResult]:
    stats = store.table_stats(corpus, task.name, task_version)
    missing, sample = store.coverage(corpus, task.name, task_version, sample=config.sample)
    current = int(stats["current_documents"])
    failed = int(stats["failed"])
    failed_share = failed / current if current else 0.0
    return [
        dg.AssetCheckResult(
            check_name="coverage",
            passed=missing == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "missing": missing,
                "current_documents": current,
                "sample_missing_ids": ", ".join(sample),
            },
        ),
        dg.AssetCheckResult(
            check_name="validity",
            passed=failed_share <= config.max_failed_share,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed": failed,
                "failed_share": round(failed_share, 4),
                "threshold": config.max_failed_share,
            },
        ),
        _source_freshness(store, settings, corpus),
    ]


def _source_freshness(store: DuckDBStore, settings: Settings, corpus: str) -> dg.AssetCheckResult:
    try:
        # The folder's bytes are those last synced: fresh without parsing a single document.
        if corpus_fingerprint(settings.source_root, corpus) == store.synced_fingerprint(corpus):
            return dg.AssetCheckResult(
                check_name="source_freshness",
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"stale_documents": 0, "compared": "source fingerprint"},
            )
        source = {d.doc_id: d.content_hash for d in read_corpus(settings.source_root, corpus)}
    except CorpusError as exc:
        return dg.AssetCheckResult(
            check_name="source_freshness", passed=False, metadata={"error": str(exc)}
        )
    stored = store.document_hashes(corpus)
    stale = sorted(k for k in source.keys() | stored.keys() if source.get(k) != stored.get(k))
    return dg.AssetCheckResult(
        check_name="source_freshness",
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"stale_documents": len(stale), "sample_stale_ids": ", ".join(stale[:10])},
    )
