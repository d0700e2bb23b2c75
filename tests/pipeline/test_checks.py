"""The extraction's standalone checks, per corpus partition, through the real job on a real instance:
validity blocks the typed table when nothing valid was extracted; the source sensor reports a change
left waiting past the allowed lag as a failed `source_freshness` check, and a fresh one after the run.

No LLM is called here: with a context too small for any document, every document fails as "too long"
without a request (what a real server would refuse anyway).
"""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from extraction_assets.extractions.freshness import DEFAULT_MAX_LAG, evaluate_freshness
from tests.pipeline.helpers import (
    SAMPLE_CORPUS,
    make_project,
    memory_instance,
    project,
    read_jsonl,
    real_instance,
)
from tests.pipeline.helpers import write_jsonl as write_corpus

EXTRACTIONS = dg.AssetKey("biography_extractions")
TABLE = dg.AssetKey("biography_table")


def _evaluations(result: dg.ExecuteInProcessResult, name: str) -> list[dg.AssetCheckEvaluation]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == name]


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey, corpus: str) -> int:
    filters = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[corpus])
    return len(instance.fetch_materializations(filters, limit=100).records)


@pytest.mark.slow
def test_nothing_valid_fails_validity_and_leaves_the_table_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_MAX_MODEL_LEN", "300")  # smaller than any prompt: all "too long"
    settings = make_project(tmp_path, monkeypatch, "http://127.0.0.1:9/v1", "unused")
    write_corpus(settings.source_root / "c" / "documents.jsonl", read_jsonl(SAMPLE_CORPUS)[:2])
    with memory_instance(tmp_path / "dh") as instance:
        p = project(settings, instance)
        result = p.run("c")
        assert not result.success  # the blocking check failed the run
        [validity] = _evaluations(result, "validity")
        assert validity.partition == "c"
        assert not validity.passed and validity.severity == dg.AssetCheckSeverity.ERROR
        assert "nothing valid was extracted" in (validity.description or "")
        assert validity.metadata["valid_this_run"].value == 0
        assert _materializations(instance, EXTRACTIONS, "c") == 1
        assert _materializations(instance, TABLE, "c") == 0
        assert not (settings.export_dir / "biography" / "c.parquet").exists()
        # the other standalone checks ran on the same partition
        standalone = {"coverage", "validity", "source_freshness"}
        evaluations = [
            e for e in result.get_asset_check_evaluations() if e.check_name in standalone
        ]
        assert {(e.check_name, e.partition) for e in evaluations} == {
            (name, "c") for name in standalone
        }


def test_freshness_waiting_time():
    changed, extracted = 1_000.0, 900.0
    lag = DEFAULT_MAX_LAG.total_seconds()
    args = dict(corpus="c", source_changed_at=changed, max_lag_s=lag)
    from extraction_assets.extractions.freshness import Freshness

    assert Freshness(**args, extracted_at=1_001.0, checked_at=changed + 10 * lag).fresh
    waiting = Freshness(**args, extracted_at=extracted, checked_at=changed + lag + 1)
    assert waiting.waiting_s == lag + 1 and not waiting.fresh
    assert Freshness(**args, extracted_at=None, checked_at=changed + lag).fresh


def test_sensor_reports_a_change_waiting_past_the_lag(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch, "http://127.0.0.1:9/v1", "unused")
    path = settings.source_root / "c" / "documents.jsonl"
    write_corpus(path, read_jsonl(SAMPLE_CORPUS)[:1])
    with real_instance(tmp_path / "dh") as instance:
        p = project(settings, instance)
        sensor = p.defs.resolve_sensor_def("corpus_source_sensor")

        def tick(cursor: str | None) -> dg.SensorResult:
            result = sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, definitions=p.defs)
            )
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            return result

        first = tick(None)  # adds the partition; no evaluation before it exists
        assert first.asset_events == []
        # The source changed two days ago and was never extracted: stale, reported once.
        old = time.time() - 2 * 86400
        os.utime(path, (old, old))
        os.utime(path.parent, (old, old))
        second = tick(first.cursor)
        [stale] = second.asset_events
        assert (stale.check_name, stale.partition, stale.passed) == ("source_freshness", "c", False)
        assert stale.metadata["waiting_minutes"].value > DEFAULT_MAX_LAG.total_seconds() / 60
        assert tick(second.cursor).asset_events == []
        assert not evaluate_freshness(settings.source_root, "c", None).fresh
