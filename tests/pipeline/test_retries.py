"""Dagster retries what a retry can fix, and only that: a server lost for a moment (the LLM client's
own retries spent) fails the extraction step, which Dagster runs again after a backoff and which then
succeeds; a request the server refuses (an unknown model) fails the run at once.

The outage and the refusal are injected by the fault-injecting fake OpenAI server (tests/fakes/);
the instance, the job, its retry policy and the DuckDB store are real. The real vLLM server's own
refusal of an unknown model is checked by the `vllm`-marked test.
"""

from __future__ import annotations

import dagster as dg
import pytest

from extraction_assets.project import build_definitions
from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer, status
from tests.pipeline.helpers import Project, make_project, memory_instance
from tests.reliability.harness import short_docs, write_corpus

# Short delays for the test; the definitions' policy waits 30 s, then 60 s, then 120 s.
FAST = dg.RetryPolicy(max_retries=2, delay=0.2, backoff=dg.Backoff.EXPONENTIAL)
# Both documents in one call, one call at a time, no shadow audit (its lone calls would count).
CONFIG = {
    "ops": {
        "biography_extractions": {
            "config": {"items_per_call": 2, "max_concurrency": 1, "pack_audit_share": 0.0}
        }
    }
}
# The LLM client retries a 503 itself (once here, LLM_MAX_RETRIES) before the step gives up.
CLIENT_RETRIES = 1
CLIENT_ATTEMPTS = 1 + CLIENT_RETRIES


def _step_events(result: dg.ExecuteInProcessResult, kind: str) -> list[dg.DagsterEvent]:
    return [
        e
        for e in result.all_events
        if e.event_type_value == kind and e.step_key == "biography_extractions"
    ]


def _run(tmp_path, monkeypatch, url: str, model: str = "fake") -> dg.ExecuteInProcessResult:
    monkeypatch.setenv("LLM_MAX_RETRIES", str(CLIENT_RETRIES))
    settings = make_project(tmp_path, monkeypatch, url, model)
    write_corpus(settings.source_root, "c", short_docs(2))
    with memory_instance(tmp_path / "dh") as instance:
        p = Project(settings, build_definitions(settings, retry_policy=FAST), instance)
        return p.run("c", CONFIG)


def test_a_lost_server_is_retried_and_the_retry_succeeds(tmp_path, monkeypatch):
    with FaultInjectingOpenAIServer(script=[status(503)] * CLIENT_ATTEMPTS) as server:
        result = _run(tmp_path, monkeypatch, server.url)
        assert result.success, [e.message for e in _step_events(result, "STEP_FAILURE")]
        assert len(_step_events(result, "STEP_UP_FOR_RETRY")) == 1
        assert len(server.requests) == CLIENT_ATTEMPTS + 1  # the lost ones, then the retry's
        [materialization] = result.asset_materializations_for_node("biography_extractions")
        assert materialization.metadata["run/items_ok"].value == 2


def test_a_refused_request_is_not_retried(tmp_path, monkeypatch):
    with FaultInjectingOpenAIServer(default=status(404, "model not found")) as server:
        result = _run(tmp_path, monkeypatch, server.url)
        assert not result.success
        assert _step_events(result, "STEP_UP_FOR_RETRY") == []
        [failure] = _step_events(result, "STEP_FAILURE")
        assert "a retry cannot fix this" in str(failure.event_specific_data)
        assert len(server.requests) == 1  # a 404 is not retried by the client either


@pytest.mark.vllm
def test_the_real_server_refusing_an_unknown_model_is_not_retried(tmp_path, monkeypatch, vllm_url):
    result = _run(tmp_path, monkeypatch, vllm_url, model="no-such-model")
    assert not result.success
    assert _step_events(result, "STEP_UP_FOR_RETRY") == []
    [failure] = _step_events(result, "STEP_FAILURE")
    assert "RequestRejectedError" in str(failure.event_specific_data)
