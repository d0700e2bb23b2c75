"""The automation a user gets from `make ui`, for real: a `dagster-daemon` whose source sensor turns a new
corpus folder into a partition and a successful run, and a corrected document into exactly one run for
that corpus that re-extracts that document only, while an untouched corpus is left alone.

Everything is real: the daemon (sensor, queued run coordinator, run workers as subprocesses), the SQLite
instance, the DuckDB store and the vLLM server. Corpora are tiny and the task is the two-field
SHORT_TASK because the CPU model is slow and only which documents get extracted is checked.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from tests.pipeline.helpers import SHORT_TASK
from tests.ui.servers import dagster_project, sample_documents, wait_for, write_corpus

pytestmark = [pytest.mark.vllm, pytest.mark.dagster_daemon, pytest.mark.slow]

RUN_TIMEOUT_S = 420  # generous: a run worker loads the code, and runs queue on the shared server
SENSOR_INTERVAL_S = 5
SENSOR = "corpus_source_sensor"


def test_sensor_runs_new_corpora_then_only_the_changed_document(tmp_path, vllm_url, vllm_model):
    started = time.monotonic()
    docs = sample_documents(3)
    changing, untouched = "letters", "notes"
    with dagster_project(
        tmp_path, vllm_url, vllm_model, "running", SENSOR_INTERVAL_S, tasks=SHORT_TASK
    ) as p:
        write_corpus(p.source_root, changing, docs[:2])
        write_corpus(p.source_root, untouched, docs[2:3])
        p.start_daemon()

        # New folders: the sensor adds both partitions and requests one run each.
        def first_runs() -> list[dg.DagsterRun] | None:
            runs = [r for c in (changing, untouched) for r in p.runs(c)]
            return runs if len(runs) == 2 else None

        runs = wait_for(first_runs, 180, "the sensor to request a run for each new corpus", p)
        with p.instance() as instance:
            partitions = set(instance.get_dynamic_partitions("corpora"))
        assert partitions == {changing, untouched}, p.tail()
        for run in runs:
            assert run.tags.get("trigger") == "source", run.tags
            p.wait_for_run(run.run_id, RUN_TIMEOUT_S)
        first_run = next(r for r in runs if r.tags["dagster/partition"] == changing)
        rows = p.query(
            "SELECT doc_id, run_id FROM extractions WHERE corpus = ? AND task = 'deaths' ORDER BY doc_id",
            [changing],
        )
        assert [r[0] for r in rows] == sorted(d["id"] for d in docs[:2]), f"{rows}\n{p.tail()}"
        assert {r[1] for r in rows} == {first_run.run_id}
        first_done = time.monotonic()

        # One document corrected: exactly one new run, for that corpus, re-extracting that document.
        corrected = {**docs[1], "text": docs[1]["text"] + " He also kept a diary in Latin."}
        write_corpus(p.source_root, changing, [docs[0], corrected])
        second = wait_for(
            lambda: p.runs(changing)[1:] or None,
            120,
            f"a run for the corrected corpus {changing!r}",
            p,
        )
        assert len(second) == 1, [r.run_id for r in second]
        second_run = p.wait_for_run(second[0].run_id, RUN_TIMEOUT_S)
        assert second_run.tags.get("trigger") == "source"
        redone = p.query("SELECT doc_id FROM extractions WHERE run_id = ?", [second_run.run_id])
        assert [r[0] for r in redone] == [corrected["id"]], f"{redone}\n{p.tail()}"
        calls = p.query(
            "SELECT count(*), coalesce(sum(pack_size), 0) FROM calls WHERE run_id = ?",
            [second_run.run_id],
        )[0]
        assert calls[0] >= 1 and calls[1] == calls[0], (
            f"one document per call expected, got {calls}"
        )
        history = p.query(
            "SELECT doc_id FROM extraction_history WHERE corpus = ? AND replaced_by_run_id = ?",
            [changing, second_run.run_id],
        )
        assert [r[0] for r in history] == [corrected["id"]]

        # More sensor ticks with nothing changed: no more runs; the untouched corpus never ran again.
        ticks = p.sensor_ticks(SENSOR)
        wait_for(
            lambda: p.sensor_ticks(SENSOR) >= ticks + 2, 60, "two more sensor ticks", p, every_s=2
        )
        assert len(p.runs(changing)) == 2, p.tail()
        assert len(p.runs(untouched)) == 1, p.tail()
        assert len(p.runs()) == 3, [(r.run_id, r.tags) for r in p.runs()]
    print(
        f"\ntiming: first runs {first_done - started:.0f} s, "
        f"change -> second run done {time.monotonic() - first_done:.0f} s, total {time.monotonic() - started:.0f} s"
    )


def test_sensor_runs_a_corpus_reverted_to_earlier_content(tmp_path, vllm_url, vllm_model):
    """A user undoes a correction: the source is back to text A, the store holds the extraction of text
    B, so the corpus needs a run. Dagster never launches a run key twice, so a key made of corpus and
    fingerprint alone would silently skip it. The runs need not finish: only the requests are checked."""
    doc = sample_documents(1)[0]
    corrected = {**doc, "text": doc["text"] + " (corrected)"}
    corpus = "reverted"
    with dagster_project(
        tmp_path, vllm_url, vllm_model, "running", SENSOR_INTERVAL_S, tasks=SHORT_TASK
    ) as p:
        write_corpus(p.source_root, corpus, [doc])
        p.start_daemon()
        for expected, text in ((1, "original"), (2, "corrected"), (3, "reverted")):
            if text == "corrected":
                write_corpus(p.source_root, corpus, [corrected])
            elif text == "reverted":
                write_corpus(p.source_root, corpus, [doc])
            # Three sensor ticks after the write are plenty to see the request.
            ticks = p.sensor_ticks(SENSOR)
            wait_for(
                lambda n=expected, t=ticks: (
                    len(p.runs(corpus)) >= n or p.sensor_ticks(SENSOR) >= t + 3
                ),
                120,
                f"a run for the {text} corpus, or three sensor ticks",
                p,
            )
            runs = p.runs(corpus)
            assert len(runs) == expected, (
                f"{text}: runs {[r.tags.get('dagster/run_key') for r in runs]}"
            )
