"""One server's capacity shared by concurrent runs, on a real Dagster instance: with the endpoint
pool's limit at 1, two runs of two corpora started at once (two `extraction run` processes, one
DAGSTER_HOME) never extract at the same time: the second run's extraction step waits for the
pool's slot, then runs. A delayed fake server stands for the LLM (the test is about Dagster, not
the model): it records when each request came and went.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from extraction_assets.extractions.capacity import endpoint_pool
from tests.fakes.fault_injecting_openai_server import (
    ChatRequest,
    FaultInjectingOpenAIServer,
    delayed,
)
from tests.pipeline.helpers import make_project
from tests.reliability.harness import short_docs, write_corpus

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STEP = "biography_extractions"
CORPORA = ("left", "right")


def recording(seen: dict[str, list[tuple[float, float]]]):  # type: ignore[no-untyped-def]
    """Answers after 1 s, noting (arrival, answer) per corpus (its documents' id prefix)."""
    slow = delayed(1.0)

    async def act(req: ChatRequest):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        response = await slow(req)
        text = json.dumps(req.body.get("messages"))
        corpus = next(c for c in CORPORA if f"{c}0" in text)
        seen.setdefault(corpus, []).append((started, time.monotonic()))
        return response

    return act


def _step_spans(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """(start, end) of the run's extraction step, from its Dagster events."""
    times = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key == STEP:
            times.setdefault(event.event_type_value, record.timestamp)
    return times["STEP_START"], times["STEP_SUCCESS"]


def test_with_limit_1_two_runs_do_not_extract_at_once(tmp_path, monkeypatch) -> None:
    seen: dict[str, list[tuple[float, float]]] = {}
    with FaultInjectingOpenAIServer(default=recording(seen)) as fake:
        settings = make_project(tmp_path, monkeypatch, fake.url, "fake")
        monkeypatch.setenv("EXTRACTION_AUTOMATION_DEFAULT", "stopped")
        monkeypatch.delenv("EXTRACTION_LLM_POOL", raising=False)
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
        pool = endpoint_pool(fake.url)
        assert pool is not None
        with dg.DagsterInstance.get() as instance:
            instance.event_log_storage.set_concurrency_slots(pool, 1)
        for corpus in CORPORA:
            write_corpus(settings.source_root, corpus, short_docs(8, prefix=corpus))
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "extraction_assets",
                    "run",
                    corpus,
                    "--max-concurrency",
                    "2",
                ],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for corpus in CORPORA
        ]
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        for p, out in zip(procs, outputs, strict=True):
            assert p.returncode == 0, out[-4000:]
    # What the server saw: each corpus's requests, from the first arrival to the last answer.
    assert sorted(seen) == sorted(CORPORA) and all(len(v) >= 8 for v in seen.values())
    spans = {c: (min(s for s, _ in v), max(e for _, e in v)) for c, v in seen.items()}
    first, second = sorted(spans.values())
    assert first[1] <= second[0], f"both corpora on the server at once: {spans}"
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
        steps = sorted(_step_spans(instance, r.run_id) for r in runs)
        assert steps[0][1] <= steps[1][0], f"extraction steps overlapped: {steps}"
        assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots
