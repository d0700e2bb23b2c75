"""The local cluster of `scripts/cluster` (issue 16), with real services: PostgreSQL (Dagster's
storage and the DuckLake catalog), Redis (the Celery broker), two Celery workers that share nothing
local, the Dagster webserver and daemon; the session's vLLM server stands for the replicas.

One cluster for the module, in order: four corpora backfilled over the two workers; a worker
SIGKILLed mid-step and its step taken over by the other; one corpus never extracted by two machines
at once; the UI shows the runs; `stop` leaves nothing running. The cluster extracts the two-field
SHORT_TASK: these tests check where steps ran and what the lake holds, not the answers.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from extraction_assets.extractions.capacity import endpoint_pool
from tests.cluster.harness import Cluster, local_cluster, processes_under, wait_for, write_corpus
from tests.pipeline.helpers import SHORT_TASK
from tests.reliability.harness import short_docs

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.dagster_daemon,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

RUN_TIMEOUT_S = 900
# A step whose worker died is given to another worker after this long (default 6 h); longer than
# any step of these tests on a busy machine, except in the kill test, which restarts the workers
# with KILL_VISIBILITY_TIMEOUT_S.
VISIBILITY_TIMEOUT_S = 1800
KILL_VISIBILITY_TIMEOUT_S = 60
TASK = "deaths"  # SHORT_TASK's name
EXTRACTION_STEP = f"{TASK}_extractions"


@pytest.fixture(scope="module")
def cluster(vllm_url: str, vllm_model: str) -> Iterator[Cluster]:
    with local_cluster(
        vllm_url,
        vllm_model,
        tasks=SHORT_TASK,
        EXTRACTION_CELERY_VISIBILITY_TIMEOUT_S=str(VISIBILITY_TIMEOUT_S),
    ) as c:
        # This process reads the head's instance like the webserver does.
        saved = {k: os.environ.get(k) for k in ("DAGSTER_PG_URL", "DAGSTER_HOME")}
        os.environ["DAGSTER_PG_URL"] = c.shared["DAGSTER_PG_URL"]
        os.environ["DAGSTER_HOME"] = str(c.dir / "head" / "dagster_home")
        # The endpoint's pool (held in PostgreSQL, so across the cluster) with a slot per worker:
        # two corpora's extraction steps at once, each with half the server's in-flight count.
        with c.instance() as instance:
            pool = endpoint_pool(vllm_url)
            assert pool is not None
            instance.event_log_storage.set_concurrency_slots(pool, 2)
        try:
            yield c
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _ids(cluster: Cluster, corpus: str) -> list[str]:
    return [
        r[0]
        for r in cluster.query(
            "SELECT doc_id FROM extractions WHERE corpus = ? AND task = ? ORDER BY doc_id",
            [corpus, TASK],
        )
    ]


def test_four_corpora_backfilled_over_two_workers_into_the_lake(cluster: Cluster) -> None:
    docs = short_docs(10, "b")  # tiny texts: short answers, steps of seconds
    corpora = {"c_one": docs[0:3], "c_two": docs[3:6], "c_three": docs[6:8], "c_four": docs[8:10]}
    for corpus, corpus_docs in corpora.items():
        write_corpus(cluster.source_root, corpus, corpus_docs)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("corpora", list(corpora))

    backfill = cluster.launch_backfill(list(corpora))
    runs = cluster.wait_for_runs({"dagster/backfill": backfill}, len(corpora), RUN_TIMEOUT_S)
    by_corpus = {r.dagster_run.tags["dagster/partition"]: r.dagster_run.run_id for r in runs}
    assert sorted(by_corpus) == sorted(corpora)

    for corpus, corpus_docs in corpora.items():
        # Every document once (DuckLake has no primary key to enforce it), the same ids as the
        # source, which is what a single-machine run stores (tests/ui/test_backfill.py).
        assert _ids(cluster, corpus) == sorted(d["id"] for d in corpus_docs), corpus
        # Provenance: the corpus's run, its calls in the lake.
        assert cluster.query(
            "SELECT DISTINCT run_id FROM extractions WHERE corpus = ?", [corpus]
        ) == [(by_corpus[corpus],)]
        assert cluster.query("SELECT count(*) FROM calls WHERE run_id = ?", [by_corpus[corpus]])[0][
            0
        ] >= len(corpus_docs)

    # Every step ran on a Celery worker, and both workers took steps.
    workers = [cluster.step_workers(run_id) for run_id in by_corpus.values()]
    for run_workers in workers:
        assert EXTRACTION_STEP in run_workers, run_workers
    assert {w.split("@")[0] for ws in workers for s in ws.values() for w in s} == {
        "worker1",
        "worker2",
    }, workers
    # Nothing of it lives in a machine's own folder: no store file, no export, and no step output
    # (the filesystem IO manager would write $DAGSTER_HOME/storage/<run id>/...).
    for machine in ("head", "worker1", "worker2"):
        home = cluster.dir / machine
        assert not list(home.rglob("*.duckdb")), machine
        assert not list((home / "dagster_home" / "storage").glob("*")), machine
    # The typed tables' exports are on the shared path.
    exports = {p.name for p in (Path(cluster.shared["EXTRACTION_EXPORT_DIR"]) / TASK).glob("*")}
    assert exports == {f"{c}.parquet" for c in corpora}, exports


def test_a_worker_killed_mid_step_its_step_resumes_on_the_other(cluster: Cluster) -> None:
    corpus = "c_killed"
    # Two-field answers take ~1-4 s each (idle to busy machine): twelve keep the step running
    # well past the two stored documents that time the kill, and the survivor's share short.
    docs = short_docs(12, "k")
    write_corpus(cluster.source_root, corpus, docs)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("corpora", [corpus])
    cluster.restart_workers(EXTRACTION_CELERY_VISIBILITY_TIMEOUT_S=str(KILL_VISIBILITY_TIMEOUT_S))
    # One call at a time, so the step is still running after its first documents are stored.
    run_id = cluster.launch_run(
        corpus, {"ops": {EXTRACTION_STEP: {"config": {"max_concurrency": 1}}}}
    )

    def stored() -> list[tuple] | None:
        rows = cluster.query(
            "SELECT doc_id, extracted_at FROM extractions WHERE corpus = ? ORDER BY doc_id",
            [corpus],
        )
        return rows if len(rows) >= 2 else None

    before = wait_for(
        stored, RUN_TIMEOUT_S, "two documents stored by the run", cluster, every_s=0.5
    )
    # The worker that took the step first is extracting. Under load a step outlasting
    # KILL_VISIBILITY_TIMEOUT_S is also handed to the other worker, which then waits on the
    # corpus lock (and takes over once the first dies): both are in the list then.
    victim = cluster.step_workers(run_id)[EXTRACTION_STEP][0].split("@")[0]
    cluster.kill(victim)
    killed_at = time.monotonic()
    finished_before = dict(
        cluster.query(
            "SELECT doc_id, extracted_at FROM extractions WHERE corpus = ? ORDER BY doc_id",
            [corpus],
        )
    )
    assert len(finished_before) < len(docs), "the run ended before the kill: nothing to resume"

    [record] = cluster.wait_for_runs({"dagster/partition": corpus}, 1, RUN_TIMEOUT_S)
    took_over = time.monotonic() - killed_at
    workers = cluster.step_workers(run_id)[EXTRACTION_STEP]
    survivor = "worker2" if victim == "worker1" else "worker1"
    assert {w.split("@")[0] for w in workers} == {victim, survivor}, workers

    # Nothing lost, nothing doubled, finished documents not redone.
    assert _ids(cluster, corpus) == sorted(d["id"] for d in docs)
    after = dict(
        cluster.query("SELECT doc_id, extracted_at FROM extractions WHERE corpus = ?", [corpus])
    )
    assert {d: after[d] for d in finished_before} == finished_before
    assert cluster.query("SELECT count(*) FROM extraction_history WHERE corpus = ?", [corpus]) == [
        (0,)
    ]
    assert cluster.query("SELECT DISTINCT run_id FROM extractions WHERE corpus = ?", [corpus]) == [
        (record.dagster_run.run_id,)
    ]
    print(f"\n{len(before)} stored before the kill of {victim}; run done {took_over:.0f} s later")

    # The dead worker comes back with the same command (and the long timeout again).
    cluster.restart_workers()


def test_one_corpus_is_never_extracted_by_two_machines_at_once(cluster: Cluster) -> None:
    docs = short_docs(3, "l")
    corpus = "c_locked"
    write_corpus(cluster.source_root, corpus, docs)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("corpora", [corpus])

    # Another machine extracting the corpus holds the catalog's advisory lock: the run's extraction
    # step, on a worker, waits for it and makes no call until it is released.
    store = cluster.store()
    with store.extraction_lock(corpus, TASK):
        first = cluster.launch_run(corpus)
        wait_for(
            lambda: any("another run is extracting it" in m for m in cluster.messages(first)),
            RUN_TIMEOUT_S, "the step to wait for the lock", cluster,
        )  # fmt: skip
        # A second run of the corpus waits in Dagster's queue (one run per corpus at a time).
        second = cluster.launch_run(corpus)
        time.sleep(10)
        assert cluster.query("SELECT count(*) FROM calls WHERE corpus = ?", [corpus]) == [(0,)]
        [queued] = [
            r for r in cluster.runs({"dagster/partition": corpus}) if r.dagster_run.run_id == second
        ]
        assert queued.dagster_run.status == dg.DagsterRunStatus.QUEUED, queued.dagster_run.status
    records = cluster.wait_for_runs({"dagster/partition": corpus}, 2, RUN_TIMEOUT_S)
    by_id = {r.dagster_run.run_id: r for r in records}
    assert set(by_id) == {first, second}
    first_end, second_start = by_id[first].end_time, by_id[second].start_time
    assert first_end is not None and second_start is not None
    assert second_start >= first_end, (first_end, second_start)
    assert _ids(cluster, corpus) == sorted(d["id"] for d in docs)
    assert cluster.query("SELECT count(*) FROM calls WHERE run_id = ?", [second]) == [(0,)]


@pytest.mark.browser
def test_the_ui_shows_the_cluster_runs(cluster: Cluster) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing: apt-get install -y chromium", pytrace=False)
    shots = Path(__file__).resolve().parents[2] / "test-artifacts" / "cluster"
    shots.mkdir(parents=True, exist_ok=True)
    runs = [r.dagster_run for r in cluster.runs({})]
    # The runs page lists a backfill as one row (its runs are on the backfill's own page).
    singles = [r for r in runs if "dagster/backfill" not in r.tags]
    backfills: dict[str, list[str]] = {}
    for r in runs:
        if "dagster/backfill" in r.tags:
            backfills.setdefault(r.tags["dagster/backfill"], []).append(r.run_id)
    assert singles and backfills
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").dispatch_event("click"),
        )
        try:
            page.goto(f"{cluster.url}/runs")
            for run in singles:
                page.get_by_text(run.run_id[:8]).first.wait_for()
            page.screenshot(path=str(shots / "runs.png"), full_page=True)
            for backfill, run_ids in backfills.items():
                page.goto(f"{cluster.url}/runs/b/{backfill}?tab=runs")
                for run_id in run_ids:
                    page.get_by_text(run_id[:8]).first.wait_for()
                page.screenshot(path=str(shots / f"backfill-{backfill}.png"), full_page=True)
            killed = next(r for r in runs if r.tags.get("dagster/partition") == "c_killed")
            page.goto(f"{cluster.url}/runs/{killed.run_id}")
            page.get_by_text("Success", exact=True).first.wait_for()
            page.get_by_text("in celery worker").first.wait_for()
            page.screenshot(path=str(shots / "killed-run.png"), full_page=True)
        finally:
            browser.close()


def test_stop_leaves_nothing_running(cluster: Cluster) -> None:
    groups = [cluster.pid(p.stem) for p in (cluster.dir / "run").glob("*.pid")]
    assert len(groups) >= 5  # redis, daemon, webserver, two workers
    stopped = cluster.script("stop", timeout_s=300)
    assert stopped.returncode == 0, stopped.stderr
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
    assert processes_under(cluster.dir) == []
    for port in cluster.ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, port
    assert cluster.script("status").returncode == 1
