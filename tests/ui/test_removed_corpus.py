"""With a real `dagster-daemon`: a removed corpus folder removes its partition and gets no run; a folder
that comes back is a partition again and gets a run; the sensor reports each corpus's freshness (a
source change waiting past the allowed lag fails `source_freshness` for that partition) without a run.

The corpus files hold invalid JSON, so each requested run stops at `corpus_documents` (a bad corpus,
never retried) and no LLM is called: only partitions, run requests and check evaluations are checked.
"""

from __future__ import annotations

import os
import shutil
import time

import dagster as dg
import pytest

from tests.ui.servers import dagster_project, wait_for

pytestmark = [pytest.mark.dagster_daemon, pytest.mark.slow]

SENSOR_INTERVAL_S = 5


def _write(root, corpus: str, age_s: float = 0) -> None:
    folder = root / corpus
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "documents.jsonl").write_text("not json\n", encoding="utf-8")
    if age_s:
        then = time.time() - age_s
        for path in (folder / "documents.jsonl", folder):
            os.utime(path, (then, then))


def _freshness(p, corpus: str) -> list[bool]:
    """The `source_freshness` evaluations reported for a corpus partition, oldest first."""
    with p.instance() as instance:
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
            ascending=True,
        )
    out = []
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if data.check_name == "source_freshness" and data.partition == corpus:
            out.append(data.passed)
    return out


def test_removed_folder_loses_its_partition_and_a_returning_one_runs(tmp_path):
    started = time.monotonic()
    with dagster_project(
        tmp_path, "http://127.0.0.1:9/v1", "unused", "running", SENSOR_INTERVAL_S
    ) as p:
        _write(p.source_root, "kept", age_s=2 * 86400)  # changed two days ago, never extracted
        _write(p.source_root, "leaving")
        p.start_daemon()

        def partitions() -> set[str]:
            with p.instance() as instance:
                return set(instance.get_dynamic_partitions("corpora"))

        wait_for(lambda: partitions() == {"kept", "leaving"}, 240, "both partitions", p)
        wait_for(lambda: len(p.runs("leaving")) == 1, 120, "a run for the new corpus", p)
        # Freshness, from the sensor alone: the old change is overdue, the new one is not.
        wait_for(lambda: _freshness(p, "kept"), 120, "a freshness evaluation of 'kept'", p)
        assert _freshness(p, "kept")[0] is False
        wait_for(lambda: _freshness(p, "leaving"), 60, "a freshness evaluation of 'leaving'", p)
        assert _freshness(p, "leaving")[0] is True

        shutil.move(p.source_root / "leaving", tmp_path / "aside")
        wait_for(lambda: partitions() == {"kept"}, 120, "the removed corpus's partition to go", p)
        ticks = p.sensor_ticks("corpus_source_sensor")
        wait_for(
            lambda: p.sensor_ticks("corpus_source_sensor") >= ticks + 2, 60, "two more ticks", p
        )
        assert len(p.runs("leaving")) == 1, "a run was requested for a removed corpus"

        shutil.move(tmp_path / "aside", p.source_root / "leaving")
        wait_for(lambda: "leaving" in partitions(), 120, "the returning corpus's partition", p)
        wait_for(lambda: len(p.runs("leaving")) == 2, 120, "a run for the returning corpus", p)
        assert len(p.runs("kept")) == 1
    print(f"\ntiming: {time.monotonic() - started:.0f} s")
