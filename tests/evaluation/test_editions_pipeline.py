"""The two Taqrib editions are a real source correction: run through the real pipeline (the
project CLI, Dagster job and DuckDB store, real vLLM server), the second edition must re-extract
exactly the entries whose text changed. Tiny on purpose (2 changed + 2 unchanged entries); the
figures come from `benchmarks/editions.py`, which runs this same code path with more entries.

FAILS when the shared gold data is missing, like the other evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.editions import run_editions
from extraction_assets.evaluation.gold import data_dir


@pytest.mark.vllm
@pytest.mark.slow
def test_second_edition_re_extracts_exactly_the_changed_entries(
    vllm_url: str, vllm_model: str, tmp_path: Path
) -> None:
    if not data_dir().is_dir():
        pytest.fail(f"evaluation data missing: {data_dir()} (the shared gold data)")
    res = run_editions(2, 0, vllm_url, vllm_model, tmp_path, items_per_call=1, max_concurrency=4)

    check = res["check"]
    assert check["n_expected_changed"] == 2  # the sample's two corrected entries, by hash
    assert set(check["store_changed"]) == set(check["expected_changed"])
    assert set(check["re_extracted"]) == set(check["expected_changed"]), check
    assert check["equal"]

    first, second = res["runs"][0], res["runs"][-1]
    assert first["sync"] == {"new": 4} and len(first["extracted_ids"]) == 4
    assert second["sync"] == {"changed": 2}
    assert second["calls"] >= 1 and second["call_items"] >= 2
    # Every document has a current row after each edition, all at the current texts' version.
    assert sum(res["status"]["after"].values()) == 4
    assert res["task_version"]["before"] == res["task_version"]["after"]

    for view in ("own_edition", "fixed_arsanad"):
        block = res["agreement"][view]["changed"]
        assert block["before"]["n_documents"] == block["after"]["n_documents"] == 2
        for when in ("before", "after"):
            for score in block[when]["fields"].values():
                assert score["accuracy"] is None or 0.0 <= score["accuracy"] <= 1.0
    # The fixed reference exists for the corrected entries: both editions link them to AR-Sanad.
    assert any(
        s["n"] for s in res["agreement"]["fixed_arsanad"]["changed"]["before"]["fields"].values()
    )
