"""The domain types that flow through the data path.

source files (CorpusScan) -> Document -> packs -> calls (CallRecord) -> validated items (ItemResult) -> store
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


def content_hash(text: str) -> str:
    """Hash of a document's text, the unit of change detection.

    NFC-normalised so that an editor re-saving the same letters in another Unicode form
    (common with Arabic diacritics) is not a "correction".
    """
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Document:
    corpus: str
    doc_id: str
    text: str
    content_hash: str
    source: str = ""  # where it came from, e.g. "documents.jsonl:12"

    @classmethod
    def make(cls, corpus: str, doc_id: str, text: str, source: str = "") -> Document:
        return cls(corpus, doc_id, text, content_hash(text), source)


ItemStatus = Literal["ok", "failed"]


@dataclass(slots=True)
class ItemResult:
    """The final outcome for one document in one run: validated fields, or a failure reason."""

    doc_id: str
    content_hash: str
    status: ItemStatus
    fields: dict[str, Any] | None = None
    error: str | None = None
    raw_answer: str | None = None
    attempts: int = 1  # calls this document was in during the run
    # The item's share of the call that produced its final answer.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    # Failed as too long for a context of this many tokens: final until the context grows.
    context_limit: int | None = None


@dataclass(slots=True)
class CallRecord:
    """Accounting for one request to the LLM server."""

    call_id: str
    base_url: str
    pack_size: int
    attempt: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str | None
    ok_items: int
    failed_items: int  # items of this call that were not answered validly (retried or failed)
    error: str | None
    started_at: float  # unix time


@dataclass(slots=True)
class CallOutcome:
    """What the engine hands to the store after each completed call."""

    call: CallRecord
    results: list[ItemResult] = field(default_factory=list)  # final results only


@dataclass(frozen=True)
class CorpusFile:
    """One file of a scanned corpus folder: its line count and whether DuckDB can read it."""

    path: Path
    lines: int
    plain: bool


# Corpora whose names start with this hold a gold set's documents (the gold_sample check), not a
# user's source folder; brackets are not allowed in folder names, so they never collide.
GOLD_CORPUS_PREFIX = "[gold]"


@dataclass(frozen=True)
class CorpusScan:
    """A corpus folder checked and fingerprinted in one pass over its bytes, before reading it.

    Made by ``corpora.sources.scan_corpus``; ``fingerprint`` equals ``corpus_fingerprint``; ``lines`` and ``plain`` let the store
    read plain NDJSON files with DuckDB's own reader and still record ``file:line`` provenance
    (record number == line number only when a file has no blank lines, which the store checks).
    """

    corpus: str
    files: tuple[CorpusFile, ...]
    fingerprint: str

    @property
    def plain(self) -> bool:
        return all(f.plain for f in self.files)
