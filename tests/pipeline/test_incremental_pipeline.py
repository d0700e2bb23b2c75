"""The product's contract end to end, through Dagster and the real local vLLM server:
a corpus is extracted into typed rows; an unchanged corpus costs no LLM call; a corrected document, and
only it, is extracted again, with the old row kept in history and the changed fields reported."""

from __future__ import annotations

import dagster as dg
import pytest

from extraction_assets.settings import Settings
from tests.pipeline.helpers import (
    corrected_ids,
    make_project,
    memory_instance,
    project,
    small_sample,
    write_jsonl,
)

pytestmark = pytest.mark.vllm


def _calls(p, run_id: str) -> tuple[int, int]:
    return p.query(
        "SELECT count(*), coalesce(sum(pack_size), 0) FROM calls WHERE run_id = ?", [run_id]
    )[0]


def _data_versions(instance: dg.DagsterInstance, asset: str) -> list[str | None]:
    """The data versions of the asset's materialisations of partition "sample", newest first."""
    filters = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=["sample"])
    records = instance.fetch_materializations(filters, limit=10).records
    return [r.asset_materialization.tags.get("dagster/data_version") for r in records]


def test_extract_then_only_corrected_documents_again(tmp_path, monkeypatch, vllm_url, vllm_model):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model)
    before, after = small_sample(extra=3)
    changed = corrected_ids()
    assert len(changed) == 3
    write_jsonl(settings.source_root / "sample" / "documents.jsonl", before)

    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        first = p.run("sample")
        assert first.success
        rows = p.query(
            "SELECT doc_id, status, task_version, content_hash FROM extractions WHERE corpus = 'sample'"
        )
        assert sorted(r[0] for r in rows) == sorted(r["id"] for r in before)
        assert len({r[2] for r in rows}) == 1, "one task version for the whole run"
        ok = sum(r[1] == "ok" for r in rows)
        assert ok > 0
        typed = p.query("SELECT count(*) FROM biography_extractions WHERE corpus = 'sample'")[0][0]
        assert typed == ok
        calls, items = _calls(p, first.run_id)
        assert calls >= 1 and items >= len(before)
        # The default recipe ("auto") on vLLM: one document per call.
        assert (
            p.query("SELECT max(pack_size) FROM calls WHERE run_id = ?", [first.run_id])[0][0] == 1
        )

        # Unchanged corpus: zero LLM calls, the same data version, the typed table not refreshed.
        second = p.run("sample")
        assert second.success
        assert _calls(p, second.run_id) == (0, 0)
        unchanged = _data_versions(instance, "biography_extractions")
        assert len(unchanged) == 2 and unchanged[0] == unchanged[1]
        assert len(_data_versions(instance, "biography_table")) == 1

        # Three corrected documents: exactly those are extracted again.
        write_jsonl(settings.source_root / "sample" / "documents.jsonl", after)
        third = p.run("sample")
        assert third.success
        redone = p.query(
            "SELECT doc_id FROM extractions WHERE run_id = ? ORDER BY doc_id", [third.run_id]
        )
        assert [r[0] for r in redone] == changed
        history = p.query("SELECT doc_id FROM extraction_history ORDER BY doc_id")
        assert [r[0] for r in history] == changed
        report = p.query(
            "SELECT DISTINCT doc_id FROM changes WHERE run_id = ? AND change = 'changed' ORDER BY doc_id",
            [third.run_id],
        )
        assert [r[0] for r in report] == changed
        versions = _data_versions(instance, "biography_extractions")
        assert versions[0] != versions[1]
        assert _data_versions(instance, "biography_table")[0] == versions[0]
        mats = instance.fetch_materializations(
            dg.AssetKey("biography_extractions"), limit=1
        ).records
        metadata = mats[0].asset_materialization.metadata
        assert metadata["pending_before_run"].value == 3
        # The forecast (issue 15 item 6): on the partition before extracting (an observation),
        # and against what happened in the materialization; the first run measured the rate.
        observed = (
            instance.fetch_observations(dg.AssetKey("biography_extractions"), limit=1)
            .records[0]
            .asset_observation
        )
        assert observed.partition == "sample"
        assert observed.metadata["forecast/pending"].value == 3
        # One call per document, plus the retries the first run needed (its calls per first-pass
        # call: the real model sometimes answers a document badly and it is asked again).
        assert metadata["forecast/pending"].value == 3
        assert metadata["forecast/first_pass_calls"].value == 3
        factor = metadata["forecast/retry_factor"].value
        assert factor >= 1 and metadata["forecast/calls"].value == round(3 * factor)
        assert metadata["forecast/rate_runs"].value >= 1 and metadata["forecast/minutes"].value > 0
        for name in ("calls", "input_tokens", "output_tokens", "minutes"):
            for part in ("forecast", "actual", "error_pct"):
                assert f"forecast_vs_actual/{name}_{part}" in metadata
        assert metadata["forecast_vs_actual/calls_actual"].value >= 3
        assert metadata["forecast_vs_actual/minutes_error_pct"].value is not None


def test_task_version_change_re_extracts_everything(tmp_path, monkeypatch, vllm_url, vllm_model):
    """Changing what shapes answers (here the sampling seed, by environment) is a new task version:
    every document is extracted again, rows carry the new version, the old rows move to history."""
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model, tasks="translation")
    before, _ = small_sample(extra=0)
    docs = before[:2]
    write_jsonl(settings.source_root / "tv" / "documents.jsonl", docs)
    with memory_instance(tmp_path / "dagster_home") as instance:
        first = project(settings, instance).run("tv")
        assert first.success
        v1 = {
            r[0] for r in project(settings, instance).query("SELECT task_version FROM extractions")
        }

        # Settings are read when the code location loads (each run's process loads it anew).
        monkeypatch.setenv("LLM_SEED", "7")
        settings = Settings.from_env()
        second = project(settings, instance).run("tv")
        assert second.success
        p = project(settings, instance)
        rows = p.query("SELECT doc_id, task_version, run_id FROM extractions ORDER BY doc_id")
        assert [r[0] for r in rows] == sorted(d["id"] for d in docs)
        v2 = {r[1] for r in rows}
        assert len(v1) == len(v2) == 1 and v1 != v2
        assert {r[2] for r in rows} == {second.run_id}
        history = p.query("SELECT doc_id, task_version FROM extraction_history ORDER BY doc_id")
        assert history == [(d, next(iter(v1))) for d in sorted(d["id"] for d in docs)]
        node = p.defs.resolve_asset_graph().get(dg.AssetKey("translation_extractions"))
        assert node.code_version == next(iter(v2)), "the UI's code version is the task version"
