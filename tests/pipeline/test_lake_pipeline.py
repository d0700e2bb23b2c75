"""The product's contract with the store on DuckLake (EXTRACTION_STORE=ducklake:postgres:...):
through Dagster and the real vLLM server, a corpus is extracted into the lake, an unchanged corpus
costs no LLM call, a corrected document and only it is extracted again, the typed table is
exported from the lake; nothing of it lives in a local DuckDB file."""

from __future__ import annotations

import duckdb
import pytest

from resources.store import DuckDBStore
from tests.pipeline.helpers import (
    SHORT_TASK,
    corrected_ids,
    make_project,
    memory_instance,
    project,
    small_sample,
    write_jsonl,
)
from tests.postgres import create_database

pytestmark = pytest.mark.postgres


@pytest.mark.vllm
def test_the_job_extracts_incrementally_into_a_lake(
    tmp_path, monkeypatch, vllm_url, vllm_model, postgres
):
    catalog = f"ducklake:postgres:{create_database(postgres)}"
    monkeypatch.setenv("EXTRACTION_STORE", catalog)
    monkeypatch.setenv("EXTRACTION_LAKE_DATA_PATH", str(tmp_path / "lake-data"))
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model, SHORT_TASK)
    assert settings.lake_catalog == catalog
    before, after = small_sample(extra=1)
    changed = corrected_ids()
    write_jsonl(settings.source_root / "sample" / "documents.jsonl", before)
    store = DuckDBStore.from_settings(settings)

    def query(sql: str, params: list | None = None) -> list[tuple]:
        with store.connect(read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        first = p.run("sample")
        assert first.success
        rows = query("SELECT doc_id FROM extractions WHERE corpus = 'sample' ORDER BY doc_id")
        assert [r[0] for r in rows] == sorted(r["id"] for r in before)
        assert query("SELECT count(*) FROM calls WHERE run_id = ?", [first.run_id])[0][0] >= 4

        second = p.run("sample")
        assert second.success
        assert query("SELECT count(*) FROM calls WHERE run_id = ?", [second.run_id]) == [(0,)]

        write_jsonl(settings.source_root / "sample" / "documents.jsonl", after)
        third = p.run("sample")
        assert third.success
        redone = query("SELECT doc_id FROM extractions WHERE run_id = ? ORDER BY doc_id",
                       [third.run_id])  # fmt: skip
        assert [r[0] for r in redone] == changed
        assert [r[0] for r in query("SELECT doc_id FROM extraction_history ORDER BY doc_id")] == (
            changed
        )

    # The typed table came from the lake into its Parquet export; no local store file exists.
    export = settings.export_dir / "deaths" / "sample.parquet"
    if export.exists():  # the table asset may be skipped when nothing valid was extracted
        exported = duckdb.sql(f"SELECT count(*) FROM '{export}'").fetchone()
        assert (
            exported is not None
            and exported[0]
            == query("SELECT count(*) FROM deaths_extractions WHERE corpus = 'sample'")[0][0]
        )
    assert not settings.store_path.exists()


def test_a_lake_store_gets_a_maintenance_job_that_compacts_it(tmp_path, monkeypatch, postgres):
    """A DuckLake store's definitions carry the weekly lake_maintenance job; run, it compacts."""
    import dagster as dg

    from extraction_assets.project import build_definitions
    from extraction_assets.settings import Settings
    from extraction_assets.types import Document

    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EXTRACTION_STORE", raising=False)
    assert "lake_maintenance" not in {j.name for j in build_definitions(Settings.from_env()).jobs}
    monkeypatch.setenv("EXTRACTION_STORE", f"ducklake:postgres:{create_database(postgres)}")
    monkeypatch.setenv("EXTRACTION_LAKE_DATA_PATH", str(tmp_path / "lake-data"))
    settings = Settings.from_env()
    store = DuckDBStore.from_settings(settings)
    for batch in range(3):  # above the inlining limit: Parquet files per commit
        store.sync_documents("c", [Document.make("c", f"d{batch}-{i}", "t") for i in range(1500)],
                             f"r{batch}")  # fmt: skip
    defs = build_definitions(settings)
    assert {s.name for s in defs.schedules} >= {"lake_maintenance_schedule"}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("lake_maintenance").execute_in_process(
            instance=instance,
            run_config={"ops": {"maintain_lake": {"config": {"keep_snapshots_s": 0}}}},
        )
    assert result.success
    report = result.output_for_node("maintain_lake")
    assert report["files_before"] > report["files_after"], report
