"""Why: the shadow audit is how a user learns what packing costs on their data, so it must be
able to come out non-zero: a (stub) server whose pack answers differ from its lone answers gives
a non-zero disagreement rate, one that answers the same gives zero; only packed items are
sampled, at least one when any was packed, none when the share is 0."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fakes.schema_answers import answer_for

from extraction_assets.engine import EngineSettings, extract
from extraction_assets.engine.audit import (
    AuditReport,
    PackedAnswers,
    audit_sample,
    audit_size,
    shadow_audit,
    wilson_interval,
)
from extraction_assets.tasks import get_task
from extraction_assets.types import CallOutcome, Document
from resources.backends.base import Completion

BIO = get_task("biography")
LOG = logging.getLogger("test.audit")


class StubClient:
    """A stub LLM (no server): valid answers from the schema; with `packs_differ`, an item
    answered in a pack of several gets another name than when answered alone."""

    backend, model = "stub", "stub"

    def __init__(self, packs_differ: bool) -> None:
        self.packs_differ = packs_differ
        self.calls: list[list[str]] = []

    async def complete(self, messages, schema, schema_name, max_tokens) -> Completion:
        answer = answer_for(schema)
        self.calls.append(list(answer))
        if self.packs_differ and len(answer) > 1:
            for doc_id, item in answer.items():
                item["name"] = f"packed-{doc_id}"
        return Completion(json.dumps(answer), "stop", 10, 10, 0.01, "stub")

    def generation_params(self):
        return {}

    async def count_tokens(self, texts):
        return None

    async def aclose(self) -> None:
        return None


def docs(n: int) -> list[Document]:
    return [
        Document.make("c", f"d{i:02d}", f"Someone number {i} lived in a town.") for i in range(n)
    ]


def run_and_audit(client: StubClient, n: int, per_call: int, share: float) -> AuditReport:
    documents = docs(n)
    packed = PackedAnswers()
    stored: list[CallOutcome] = []

    async def on_outcome(outcome: CallOutcome) -> None:
        packed.observe(outcome)
        stored.append(outcome)

    settings = EngineSettings(items_per_call=per_call, max_concurrency=2, progress_interval_s=60)

    async def go() -> AuditReport:
        await extract(BIO, documents, client, settings, on_outcome, LOG)
        calls_before = len(client.calls)
        report = await shadow_audit(
            BIO, documents, packed.answers, client, settings, share=share, seed="run-1", log=LOG
        )
        # The audit's calls are alone, and none of its answers reach the run's outcomes.
        assert all(len(c) == 1 for c in client.calls[calls_before:])
        assert len(client.calls) - calls_before == len(report.sampled)
        return report

    report = asyncio.run(go())
    assert sum(len(o.results) for o in stored) == n
    return report


def test_packed_answers_that_differ_alone_give_a_nonzero_rate() -> None:
    report = run_and_audit(StubClient(packs_differ=True), n=40, per_call=5, share=0.1)
    assert len(report.sampled) == 4 and report.compared == 4
    assert report.disagreeing == 4 and report.rate == 1.0
    assert report.field_disagreements == {"name": 4}
    low, high = report.interval
    assert 0.45 < low < 0.55 and high == 1.0
    assert not report.passed(0.1)
    assert report.examples[0]["pack"].startswith("packed-")
    meta = report.as_metadata()
    assert meta["disagreement_rate"] == 1.0 and meta["sampled"] == 4


def test_identical_answers_give_zero() -> None:
    report = run_and_audit(StubClient(packs_differ=False), n=40, per_call=5, share=0.1)
    assert report.compared == 4 and report.disagreeing == 0 and report.rate == 0.0
    assert report.interval[0] == 0.0 and report.passed(0.1)


def test_at_least_one_packed_item_is_audited_and_zero_disables() -> None:
    assert run_and_audit(StubClient(True), n=10, per_call=5, share=0.02).compared == 1
    assert run_and_audit(StubClient(True), n=10, per_call=5, share=0.0).sampled == []
    # One item per call: nothing was packed, nothing to audit.
    assert run_and_audit(StubClient(True), n=10, per_call=1, share=0.02).sampled == []


@pytest.mark.parametrize(
    ("packed", "share", "k"),
    [(0, 0.02, 0), (10, 0.0, 0), (10, 0.02, 1), (1000, 0.02, 20), (3, 1.0, 3)],
)
def test_audit_size(packed: int, share: float, k: int) -> None:
    assert audit_size(packed, share) == k


def test_the_sample_is_seeded() -> None:
    ids = [f"d{i}" for i in range(500)]
    assert audit_sample(ids, 0.02, "a") == audit_sample(list(reversed(ids)), 0.02, "a")
    assert audit_sample(ids, 0.02, "a") != audit_sample(ids, 0.02, "b")


def test_wilson_interval() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_pack_answer_replaced_by_a_lone_one_is_not_packed() -> None:
    from extraction_assets.types import CallRecord, ItemResult

    def outcome(size: int, doc_id: str) -> CallOutcome:
        call = CallRecord("c", "", size, 1, 0, 0, 0.0, "stop", 1, 0, None, 0.0)
        return CallOutcome(call, [ItemResult(doc_id, "h", "ok", fields={"name": "x"})])

    packed = PackedAnswers()
    packed.observe(outcome(3, "a"))
    packed.observe(outcome(1, "b"))
    assert packed.answers == {"a": {"name": "x"}}
