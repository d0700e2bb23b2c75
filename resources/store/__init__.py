"""The DuckDB store: documents, current and historical extractions, calls, per-run changes.

One public class, :class:`DuckDBStore` (a Dagster resource); the SQL lives in private modules:
``_connection`` (opening the file, lock retry, transactions), ``_documents`` (corpus sync, the
pending set), ``_outcomes`` (calls and item results, through ``_journal`` and ``_writer``),
``_reports`` (statistics, change reports, coverage), ``_views`` (typed task views, exports).
"""

from resources.store._documents import DocumentSync
from resources.store._outcomes import CallContext
from resources.store._reports import MeasuredRuns
from resources.store._store import DuckDBStore
from resources.store._writer import GroupCommitWriter

__all__ = [
    "CallContext",
    "DocumentSync",
    "DuckDBStore",
    "GroupCommitWriter",
    "MeasuredRuns",
]
