"""The shadow audit in the product, through Dagster and the real vLLM server: a packed run
re-extracts a sample of its packed items alone, reports the disagreement rate and its interval
in the materialisation and the pack_audit check, and stores none of the lone answers."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.pipeline.helpers import (
    SHORT_TASK,
    make_project,
    memory_instance,
    project,
    small_sample,
    write_jsonl,
)

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CFG = {
    "ops": {
        "deaths_extractions": {
            "config": {
                "items_per_call": 2,
                "max_concurrency": 2,
                "pack_audit_share": 0.5,
                "pack_audit_max_disagreement": 1.0,
            }
        }
    }
}


def test_a_packed_run_audits_a_sample_alone_and_stores_none_of_it(
    tmp_path, monkeypatch, vllm_url, vllm_model
):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model, SHORT_TASK)
    before, _ = small_sample(extra=1)  # 4 documents: 2 packs of 2, then 1 or 2 audited alone
    write_jsonl(settings.source_root / "sample" / "documents.jsonl", before)
    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        result = p.run("sample", CFG)
        assert result.success
        meta = (
            instance.fetch_materializations(dg.AssetKey("deaths_extractions"), limit=1)
            .records[0]
            .asset_materialization.metadata
        )
        packed = meta["pack_audit/packed_items"].value
        sampled = meta["pack_audit/sampled"].value
        assert packed >= 1 and sampled == max(1, round(0.5 * packed))
        assert meta["pack_audit/compared"].value + meta["pack_audit/lone_failed"].value <= sampled
        low, high = meta["pack_audit/ci95_low"].value, meta["pack_audit/ci95_high"].value
        assert 0.0 <= low <= meta["pack_audit/disagreement_rate"].value <= high <= 1.0
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "pack_audit"]
        assert check.passed and check.metadata["sampled"].value == sampled
        # The audit's calls and answers are not stored: one row per document, and the calls
        # table holds exactly the run's own calls.
        rows = p.query("SELECT doc_id, count(*) FROM extractions GROUP BY doc_id")
        assert len(rows) == len(before) and all(n == 1 for _, n in rows)
        calls = p.query("SELECT count(*) FROM calls WHERE run_id = ?", [result.run_id])[0][0]
        assert calls == meta["run/calls"].value
