"""The shadow audit: what packing costs on this corpus, measured in every run.

A seeded sample of the run's packed items (answers settled by a call of more than one item) is
extracted again alone, and each lone answer is compared field by field with the pack answer the
run stored. The headline is the share of audited items whose answers disagree in any field,
with its 95% Wilson interval (items, not fields: the fields of one answer are not independent
trials). The lone answers are a measurement, not extractions: they are not stored, so the
stored table holds the answers of one recipe whatever the sample drew (the disagreements shown
in the metadata name the document, field and both values).
"""

from __future__ import annotations

import json
import logging
import math
import random
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from extraction_assets.engine.runner import EngineSettings, extract
from extraction_assets.types import CallOutcome, Document

if TYPE_CHECKING:
    from extraction_assets.tasks.base import ExtractionTask
    from resources.backends.base import LLMClient

DEFAULT_SHARE = 0.02
DEFAULT_MAX_DISAGREEMENT = 0.1
MAX_EXAMPLES = 20


class PackedAnswers:
    """Collects, call by call, the ok answers a run settled in a call of several items."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any]] = {}

    def observe(self, outcome: CallOutcome) -> None:
        for r in outcome.results:
            if r.status == "ok" and r.fields is not None and outcome.call.pack_size > 1:
                self.answers[r.doc_id] = r.fields
            else:
                self.answers.pop(r.doc_id, None)


def audit_size(packed: int, share: float) -> int:
    """How many packed items to re-extract: `share` of them, at least one when any was packed;
    none when share is 0."""
    if packed == 0 or share <= 0:
        return 0
    return min(packed, max(1, round(share * packed)))


def audit_sample(doc_ids: Sequence[str], share: float, seed: str) -> list[str]:
    """A seeded sample (same seed and ids, same sample), in id order."""
    ordered = sorted(doc_ids)
    k = audit_size(len(ordered), share)
    return sorted(random.Random(seed).sample(ordered, k))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% at z=1.96); (0, 1) when n=0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _canonical(value: Any) -> Any:
    """A value as compared: strings NFC, case-folded, whitespace collapsed; lists as sorted sets;
    empty strings and lists as None."""
    if isinstance(value, str):
        text = " ".join(unicodedata.normalize("NFC", value).casefold().split())
        return text or None
    if isinstance(value, list):
        items = sorted(
            {json.dumps(_canonical(v), sort_keys=True, ensure_ascii=False) for v in value}
            - {"null"}
        )
        return items or None
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    return value


def differing_fields(pack: Mapping[str, Any], lone: Mapping[str, Any]) -> list[str]:
    return sorted(
        k for k in pack.keys() | lone.keys() if _canonical(pack.get(k)) != _canonical(lone.get(k))
    )


@dataclass
class AuditReport:
    packed_items: int = 0
    sampled: list[str] = field(default_factory=list)
    compared: int = 0  # sampled items whose lone answer was valid
    disagreeing: int = 0  # of those, items differing in at least one field
    fields_compared: int = 0
    field_disagreements: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    lone_failed: int = 0
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.disagreeing / self.compared if self.compared else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.disagreeing, self.compared)

    def passed(self, max_disagreement: float) -> bool:
        return self.error is None and self.rate <= max_disagreement

    def as_metadata(self) -> dict[str, Any]:
        low, high = self.interval
        out: dict[str, Any] = {
            "packed_items": self.packed_items,
            "sampled": len(self.sampled),
            "compared": self.compared,
            "disagreeing_items": self.disagreeing,
            "disagreement_rate": round(self.rate, 4),
            "ci95_low": round(low, 4),
            "ci95_high": round(high, 4),
            "fields_compared": self.fields_compared,
            "fields_disagreeing": sum(self.field_disagreements.values()),
            "lone_failed": self.lone_failed,
        }
        if self.error:
            out["error"] = self.error
        return out


async def shadow_audit(
    task: ExtractionTask,
    documents: Sequence[Document],
    packed: Mapping[str, dict[str, Any]],
    client: LLMClient,
    settings: EngineSettings,
    *,
    share: float = DEFAULT_SHARE,
    seed: str = "0",
    log: logging.Logger | Any = None,
) -> AuditReport:
    """Re-extract a seeded sample of the packed items alone and compare with their pack answers.
    Nothing is stored; a server error ends the audit with `error` set, never raises."""
    log = log or logging.getLogger(__name__)
    report = AuditReport(packed_items=len(packed))
    report.sampled = audit_sample(list(packed), share, seed)
    if not report.sampled:
        return report
    by_id = {d.doc_id: d for d in documents}
    docs = [by_id[i] for i in report.sampled]
    lone: dict[str, dict[str, Any] | None] = {}

    async def collect(outcome: CallOutcome) -> None:
        for r in outcome.results:
            lone[r.doc_id] = r.fields if r.status == "ok" else None

    alone = replace(
        settings,
        items_per_call=1,
        isolate_suspicious=False,
        max_concurrency=max(1, min(settings.max_concurrency, len(docs))),
        progress_interval_s=max(settings.progress_interval_s, 3600),
    )
    try:
        await extract(task, docs, client, alone, collect, logging.getLogger(f"{__name__}.lone"))
    except Exception as exc:  # the audit measures; it never fails the run that it measures
        report.error = f"{type(exc).__name__}: {exc}"
        log.warning(f"pack audit stopped: {report.error}")
    for doc_id in report.sampled:
        answer = lone.get(doc_id)
        if answer is None:
            if doc_id in lone:
                report.lone_failed += 1
            continue
        report.compared += 1
        pack_answer = packed[doc_id]
        report.fields_compared += len(pack_answer.keys() | answer.keys())
        differing = differing_fields(pack_answer, answer)
        if differing:
            report.disagreeing += 1
            report.field_disagreements.update(differing)
            for name in differing:
                if len(report.examples) < MAX_EXAMPLES:
                    report.examples.append(
                        {
                            "doc_id": doc_id,
                            "field": name,
                            "pack": pack_answer.get(name),
                            "alone": answer.get(name),
                        }
                    )
    low, high = report.interval
    log.info(
        f"pack audit: {report.disagreeing} of {report.compared} packed items answered "
        f"differently alone ({report.rate:.0%}, 95% CI {low:.0%}-{high:.0%}); "
        f"{len(report.sampled)} sampled of {report.packed_items} packed"
    )
    return report
