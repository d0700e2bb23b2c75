"""Dagster code location: corpora of documents -> validated LLM extractions -> typed DuckDB tables.

Kept import-light on purpose: the Dagster definitions live in `extraction_assets.project` (built
from settings) and `extraction_assets.definitions` (the code location), so `resources` can import
the domain types from here without a cycle.
"""

from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult, content_hash

__all__ = ["CallOutcome", "CallRecord", "Document", "ItemResult", "content_hash"]
