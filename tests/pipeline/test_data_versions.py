"""No-op runs are no-ops for what users read: the extraction's data version is a digest of the rows its
typed table shows, so a run of an unchanged corpus keeps it, and the typed table is then observed, not
materialised (no new Parquet export, nothing marked updated); a corrected document changes it, and the
table is refreshed.

The answers come from the fake OpenAI server in its default mode (valid answers, no fault: only the
LLM is replaced, to keep this test fast); instance, job and store are real. The same contract against
the real vLLM server is asserted in test_incremental_pipeline.py.
"""

from __future__ import annotations

import dagster as dg
import pytest

from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer
from tests.pipeline.helpers import make_project, memory_instance, project
from tests.reliability.harness import short_docs, write_corpus

EXTRACTIONS, TABLE = dg.AssetKey("biography_extractions"), dg.AssetKey("biography_table")


def _records(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[dg.EventLogRecord]:
    filters = dg.AssetRecordsFilter(asset_key=key, asset_partitions=["c"])
    return list(instance.fetch_materializations(filters, limit=100).records)


def _version(record: dg.EventLogRecord) -> str | None:
    assert record.asset_materialization is not None
    return record.asset_materialization.tags.get("dagster/data_version")


@pytest.mark.slow
def test_unchanged_corpus_keeps_the_data_version_and_the_table(tmp_path, monkeypatch):
    with FaultInjectingOpenAIServer() as server:
        settings = make_project(tmp_path, monkeypatch, server.url, "fake")
        docs = short_docs(3)
        write_corpus(settings.source_root, "c", docs)
        export = settings.export_dir / "biography" / "c.parquet"
        with memory_instance(tmp_path / "dh") as instance:
            p = project(settings, instance)
            assert p.run("c").success
            [first] = _records(instance, EXTRACTIONS)
            [table] = _records(instance, TABLE)
            assert _version(first) and _version(table) == _version(first)
            exported_at = export.stat().st_mtime_ns
            calls = len(server.requests)

            second = p.run("c")
            assert second.success
            assert len(server.requests) == calls  # nothing pending: no call
            latest = _records(instance, EXTRACTIONS)
            assert len(latest) == 2 and _version(latest[0]) == _version(first)
            assert len(_records(instance, TABLE)) == 1, "the typed table was marked updated"
            assert export.stat().st_mtime_ns == exported_at
            # The table is observed, not materialised (the extraction's forecast is an
            # observation of its own asset).
            observed = [
                e.asset_key
                for e in second.all_events
                if e.event_type_value == "ASSET_OBSERVATION" and e.asset_key != EXTRACTIONS
            ]
            assert observed == [TABLE]

            docs[1] = {**docs[1], "text": docs[1]["text"] + " He died young."}
            write_corpus(settings.source_root, "c", docs)
            assert p.run("c").success
            latest = _records(instance, EXTRACTIONS)
            assert _version(latest[0]) != _version(first)
            tables = _records(instance, TABLE)
            assert len(tables) == 2 and _version(tables[0]) == _version(latest[0])
