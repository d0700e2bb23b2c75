"""Why: tests/engine proves the engine survives a misbehaving server call by call; this proves the same
end to end, through the Dagster job and the DuckDB store that users read. A fault-injecting fake (faults a
healthy vLLM will not produce: 429, 500, timeouts, empty bodies, truncated JSON, answers keyed under wrong
or duplicated ids, reordered answers, invalid JSON, invalid items) answers a corpus run; afterwards every
document has exactly one row, ok or failed with a reason, and every ok row's fields carry its own
document id (the fake writes "<field>-of-<id>"), so no answer landed on another document."""

from __future__ import annotations

import pytest

from tests.fakes.fault_injecting_openai_server import (
    FaultInjectingOpenAIServer,
    duplicated_id,
    empty_body,
    hang,
    invalid_item,
    invalid_json,
    reversed_order,
    status,
    truncated,
    wrong_ids,
)
from tests.pipeline.helpers import make_project, memory_instance, project
from tests.reliability.harness import short_docs, write_corpus

FAULTS = {
    "HTTP 429": status(429),
    "HTTP 500": status(500),
    "timeout": hang(4.0),
    "empty body": empty_body(),
    "truncated JSON (finish_reason length)": truncated(keep_items=1),
    "valid JSON for the wrong ids": wrong_ids(),
    "duplicated id": duplicated_id(),
    "answers in another order": reversed_order(),
    "invalid JSON": invalid_json(),
    "item failing validation": invalid_item(),
}


def run_faulty_corpus(tmp_path, monkeypatch, faults: list, n_docs: int = 24) -> dict:  # type: ignore[no-untyped-def]
    """One job run of a corpus against the fake scripted with `faults` (then healthy); a second
    run retries what failed. Returns what the store and the fake saw."""
    monkeypatch.setenv("LLM_TIMEOUT_S", "1.5")  # the injected hang is a timeout
    with FaultInjectingOpenAIServer(script=list(faults)) as fake:
        settings = make_project(tmp_path, monkeypatch, fake.url, "fake")
        docs = short_docs(n_docs)
        write_corpus(settings.source_root, "faults", docs)
        cfg = {
            "ops": {
                "biography_extractions": {"config": {"items_per_call": 4, "max_concurrency": 2}}
            }
        }
        with memory_instance(tmp_path / "dagster_home") as instance:
            p = project(settings, instance)
            first = p.run("faults", cfg)
            rows_first = p.query(
                "SELECT doc_id, status, fields, error FROM extractions WHERE corpus = 'faults'"
            )
            second = p.run("faults", cfg)
            rows = p.query(
                "SELECT doc_id, status, fields, error FROM extractions WHERE corpus = 'faults'"
            )
            calls = p.query("SELECT finish_reason, error FROM calls")
            history = p.query("SELECT count(*) FROM extraction_history WHERE status = 'ok'")[0][0]
    return {
        "docs": docs,
        "first": first,
        "second": second,
        "rows_first": rows_first,
        "rows": rows,
        "calls": calls,
        "requests": len(fake.requests),
        "history": history,
    }


def assert_attributed(rows: list[tuple], docs: list[dict]) -> None:
    assert sorted(r[0] for r in rows) == sorted(d["id"] for d in docs), "one row per document"
    for doc_id, status_, fields, error in rows:
        if status_ == "ok":
            assert f'-of-{doc_id}"' in fields, f"{doc_id} holds another document's answer"
        else:
            assert status_ == "failed" and error, f"{doc_id} failed without a reason"


@pytest.mark.slow
def test_every_fault_through_the_job_and_store(tmp_path, monkeypatch):
    out = run_faulty_corpus(tmp_path, monkeypatch, list(FAULTS.values()))
    assert out["first"].success and out["second"].success
    assert_attributed(out["rows_first"], out["docs"])
    assert_attributed(out["rows"], out["docs"])
    assert out["requests"] > len(FAULTS), "each fault was sent and then recovered from"
    errors = [e for _, e in out["calls"] if e]
    assert any("truncated" in e for e in errors)
    assert any(fr == "length" for fr, _ in out["calls"])
    # After the healthy second run every document is ok, and ok rows were never replaced.
    assert all(r[1] == "ok" for r in out["rows"])
    assert out["history"] == 0


@pytest.mark.parametrize(
    "name",
    ["truncated JSON (finish_reason length)", "valid JSON for the wrong ids", "duplicated id"],
)
@pytest.mark.slow
def test_attribution_faults_repeated_leaves_every_row_attributed(tmp_path, monkeypatch, name):
    # The same attribution fault on the first three requests: the engine's halving down to single
    # items has to work through it without ever keeping a misattributed answer.
    out = run_faulty_corpus(tmp_path, monkeypatch, [FAULTS[name]] * 3, n_docs=6)
    assert out["first"].success, name
    assert_attributed(out["rows_first"], out["docs"])
    assert_attributed(out["rows"], out["docs"])
