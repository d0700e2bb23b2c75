"""Why: a user's own tasks, one a YAML spec and one a Python module on their path, run through
the real Dagster job on the real server into typed tables, are scored against the user's
gold.jsonl by the gold_sample check (the corpus's own extractions: no extra call), and an
edit of the spec's instructions re-extracts that task's documents and nothing of the other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipeline.helpers import make_project, memory_instance, project, write_jsonl

SPEC = """\
name: people
description: The person a short text is about.
instructions: Extract the person the text is about and their birth year.
output_tokens_per_item: 80
gold: gold.jsonl
fields:
  person: {type: string, description: the person's full name, max_length: 40}
  born: {type: integer, nullable: true, min: 0, max: 2100, description: birth year or null}
examples:
  - text: "Marie Curie (born 1867) was a physicist."
    answer: {person: Marie Curie, born: 1867}
"""
MODULE = """
from pydantic import BaseModel, Field
from extraction_assets.tasks import ExtractionTask

class Place(BaseModel):
    place: str | None = Field(max_length=40, description="the city named in the text, or null")

PLACES = ExtractionTask(name="places", description="Cities.", item_model=Place,
                        instructions="Name the city the text mentions.", output_tokens_per_item=40)
"""
DOCS = [
    {"id": "ada", "text": "Ada Lovelace was born in 1815 in London."},
    {"id": "alan", "text": "Alan Turing was born in 1912 in London."},
]
GOLD = [
    {"id": "ada", "lang": "en", "fields": {"person": "Ada Lovelace", "born": 1815}},
    {"id": "alan", "lang": "en", "fields": {"person": "Alan Turing", "born": 1912}},
    {"id": "elsewhere", "fields": {"person": "Nobody"}},
]  # not in this corpus: not scored
CFG = {
    "ops": {
        f"{t}_extractions": {
            "config": {"items_per_call": 1, "max_concurrency": 4, "retry_limit": 1}
        }
        for t in ("people", "places")
    }
}


@pytest.mark.vllm
def test_user_tasks_in_both_forms_through_the_job(
    tmp_path: Path, monkeypatch, vllm_url: str, vllm_model: str
) -> None:  # type: ignore[no-untyped-def]
    user = tmp_path / "user_project"
    (user / "user_tasks_pkg").mkdir(parents=True)
    (user / "user_tasks_pkg" / "__init__.py").write_text(MODULE)
    spec = user / "people.yaml"
    spec.write_text(SPEC)
    (user / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOLD))
    monkeypatch.syspath_prepend(str(user))
    monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "sample")
    monkeypatch.setenv("EXTRACTION_GOLD_THRESHOLD", "0")
    settings = make_project(
        tmp_path, monkeypatch, vllm_url, vllm_model, tasks=f"{spec},user_tasks_pkg:PLACES"
    )
    write_jsonl(settings.source_root / "notes" / "docs.jsonl", DOCS)

    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        first = p.run("notes", CFG)
        assert first.success
        rows = p.query("SELECT task, status FROM extractions WHERE corpus = 'notes' ORDER BY 1")
        assert sorted({r[0] for r in rows}) == ["people", "places"] and len(rows) == 4
        columns = [r[0] for r in p.query("DESCRIBE people_extractions")]
        assert {"person", "born"} <= set(columns)
        assert "place" in [r[0] for r in p.query("DESCRIBE places_extractions")]

        checks = [e for e in first.get_asset_check_evaluations() if e.check_name == "gold_sample"]
        assert [e.asset_key.to_user_string() for e in checks] == ["people_extractions"]
        meta = {k: v.value for k, v in checks[0].metadata.items()}
        assert (meta["documents"], meta["extracted_this_run"]) == (2, 0)
        assert 0 <= meta["score/people/person"] <= 1 and "score/people/born" in meta
        assert checks[0].passed

        # The spec's instructions change: its two documents again, none of the other task's.
        spec.write_text(SPEC.replace("and their birth year.", "and the year they were born."))
        p = project(settings, instance)
        second = p.run("notes", CFG)
        assert second.success
        per_task = dict(
            p.query(
                "SELECT task, count(*) FROM extraction_history WHERE replaced_by_run_id = ? "
                "GROUP BY task",
                [second.run_id],
            )
        )
        assert per_task == {"people": 2}
