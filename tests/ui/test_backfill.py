"""A backfill of several corpora, launched as the UI launches it: the webserver's
`launchPartitionBackfill` GraphQL mutation on the `extract_corpus` job's partition set, then the real
daemon's backfill daemon starting one run per corpus. Those runs write the same DuckDB file at the same
time, which is what the store's short transactions with lock retry are for: both must succeed, each
corpus must hold exactly its documents' extractions, and no run may log a lock error. The task is
the two-field SHORT_TASK: only which documents are stored is checked, not the answers.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from tests.pipeline.helpers import SHORT_TASK
from tests.ui.servers import (
    LAUNCH_BACKFILL,
    dagster_project,
    sample_documents,
    wait_for,
    write_corpus,
)

pytestmark = [pytest.mark.vllm, pytest.mark.dagster_daemon, pytest.mark.slow]

RUN_TIMEOUT_S = 600  # two 2-document runs at once on the shared CPU server, plus queueing
CORPORA = ("backfill_letters", "backfill_notes")


def test_backfill_of_two_corpora_runs_both_without_lock_errors(tmp_path, vllm_url, vllm_model):
    started = time.monotonic()
    docs = sample_documents(4)
    by_corpus = {CORPORA[0]: docs[:2], CORPORA[1]: docs[2:4]}
    with dagster_project(tmp_path, vllm_url, vllm_model, "stopped", tasks=SHORT_TASK) as p:
        # No endpoint pool: the two runs must extract (and write the file) at the same time, not
        # one after the other as the pool's default limit of 1 would have them.
        p.env["EXTRACTION_LLM_POOL"] = "none"
        for corpus, corpus_docs in by_corpus.items():
            write_corpus(p.source_root, corpus, corpus_docs)
        with p.instance() as instance:
            instance.add_dynamic_partitions("corpora", list(CORPORA))
        p.start_daemon()
        p.start_webserver()

        result = p.graphql(
            LAUNCH_BACKFILL,
            {
                "backfillParams": {
                    "selector": {
                        "repositorySelector": {
                            "repositoryLocationName": "extraction_assets",
                            "repositoryName": "__repository__",
                        },
                        "partitionSetName": "extract_corpus_partition_set",
                    },
                    "partitionNames": list(CORPORA),
                }
            },
        )["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        backfill_id = result["backfillId"]
        launched = time.monotonic()

        def backfill_runs() -> list[dg.DagsterRun]:
            with p.instance() as instance:
                records = instance.get_run_records(
                    filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})
                )
            return [r.dagster_run for r in records]

        def all_finished() -> list[dg.DagsterRun] | None:
            runs = backfill_runs()
            done = len(runs) >= len(CORPORA) and all(r.is_finished for r in runs)
            return runs if done else None

        runs = wait_for(all_finished, RUN_TIMEOUT_S, f"backfill {backfill_id}'s runs", p, every_s=3)
        errors = {r.run_id: p.run_errors(r.run_id) for r in runs}
        statuses = {r.tags.get("dagster/partition"): r.status for r in runs}
        assert statuses == dict.fromkeys(CORPORA, dg.DagsterRunStatus.SUCCESS), (
            f"{statuses}\n{errors}\n{p.tail()}"
        )
        assert len(runs) == len(CORPORA), [(r.run_id, r.tags) for r in runs]
        assert not [r for r in p.runs() if r.status == dg.DagsterRunStatus.FAILURE]

        for corpus, corpus_docs in by_corpus.items():
            rows = p.query(
                "SELECT doc_id FROM extractions WHERE corpus = ? AND task = 'deaths' ORDER BY doc_id",
                [corpus],
            )
            assert [r[0] for r in rows] == sorted(d["id"] for d in corpus_docs), (corpus, rows)

        # Concurrent writers: the store retries DuckDB's lock; no run may report a lock error.
        lock_errors = {run_id: e for run_id, e in errors.items() if "lock" in e.lower()}
        assert not lock_errors, lock_errors
    print(
        f"\ntiming: backfill launched {launched - started:.0f} s, "
        f"both runs done {time.monotonic() - launched:.0f} s later, "
        f"total {time.monotonic() - started:.0f} s"
    )
