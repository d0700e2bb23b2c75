"""The gold_sample asset check: users see extraction quality in the UI with every materialisation.

Its contract: the gold documents are extracted once per task version through the same engine and
store (a pseudo-corpus), later runs only re-score; the result carries per-field scores and passes
exactly when the mean score reaches the threshold (0 and 1.01 give both outcomes whatever the
model's accuracy); a missing gold set is a warned failure naming what is missing, never a pass.
The bundled gold itself is checked against its own texts, so a hand-written slip fails here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from extraction_assets.engine import EngineSettings
from extraction_assets.evaluation.gold import load_sample_gold
from extraction_assets.evaluation.normalize import (
    find_death_year,
    find_kunya,
    generation_from_text,
    grade_from_text,
    normalize_kunya,
)
from extraction_assets.extractions.gold_check import GoldRun, evaluate_gold_sample, gold_corpus
from extraction_assets.settings import Settings, parse_gold_sample
from extraction_assets.tasks import get_task
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import DuckDBStore
from tests.pipeline.helpers import SAMPLE_CORPUS, make_project, memory_instance, project, read_jsonl
from tests.pipeline.helpers import write_jsonl as write_corpus


def test_gold_sample_setting() -> None:
    assert parse_gold_sample("taqrib:20, sample") == (("taqrib", 20), ("sample", None))
    assert parse_gold_sample("none") == parse_gold_sample("") == ()
    for bad in ("taqrib:x", "taqrib:0"):
        with pytest.raises(ValueError, match="EXTRACTION_GOLD_SAMPLE"):
            parse_gold_sample(bad)


def test_bundled_gold_agrees_with_its_texts() -> None:
    docs = load_sample_gold()
    assert len(docs) == 10 and {d.lang for d in docs} == {"en", "de", "ar"}
    for d in docs:
        gold = d.gold
        for key in ("birth_year", "death_year"):
            if d.lang != "ar" and key in gold:
                assert str(gold[key][0]) in d.text, (d.doc_id, key)
        if d.lang == "ar":
            assert grade_from_text(d.text) == gold["grade"], d.doc_id
            assert generation_from_text(d.text) == gold["generation"], d.doc_id
            stated = find_death_year(d.text)
            if "death_year" in gold:
                assert stated is not None and stated.value == gold["death_year"][0], d.doc_id
            kunya = find_kunya(d.text)
            assert [normalize_kunya(k) for k in gold.get("kunya", [])] == (
                [normalize_kunya(kunya)] if kunya else []
            ), d.doc_id


def test_missing_gold_set_is_a_warning_naming_it(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    monkeypatch.setenv("EXTRACTION_EVAL_DATA", str(tmp_path / "no-data"))
    settings = replace(Settings.from_env(), gold_sample=(("taqrib", 2), ("nosuch", None)))
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    # No client: a missing gold set is found before anything is extracted.
    run = GoldRun(
        store,
        None,
        "vllm",
        "m",
        "v1",
        "run",
        None,
        3,  # type: ignore[arg-type]
        logging.getLogger("test"),
    )
    result = asyncio.run(evaluate_gold_sample(get_task("biography"), settings, run))
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.WARN
    missing = result.metadata["missing"].value
    assert str(tmp_path / "no-data" / "taqrib" / "taqrib.JK000121.txt") in missing
    assert "nosuch: unknown gold set" in missing
    assert "mean_score" not in result.metadata and result.metadata["documents"].value == 0


def test_store_current_fields_only_ok_answers_for_current_text_and_version(tmp_path: Path) -> None:
    """What the check scores: an answer counts only if it is ok, at this task version, and made
    from the document's current text; anything else is an unanswered (wrong) gold document."""
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    a, b, c, d = (Document.make("g", i, f"text {i}") for i in "abcd")
    store.sync_documents("g", [a, b, c, d], "r1")

    def call(results: list[ItemResult], version: str, call_id: str) -> None:
        record = CallRecord(call_id, "u", len(results), 1, 0, 0, 0.0, "stop", 0, 0, None, 0.0)
        store.record_outcome(
            run_id="r1",
            corpus="g",
            task="biography",
            task_version=version,
            backend="vllm",
            model="m",
            outcome=CallOutcome(record, results),
        )

    call(
        [
            ItemResult("a", a.content_hash, "ok", {"name": "A"}),
            ItemResult("b", b.content_hash, "failed", error="bad"),
        ],
        "v1",
        "c1",
    )
    call([ItemResult("c", c.content_hash, "ok", {"name": "C"})], "v0", "c2")
    call([ItemResult("d", d.content_hash, "ok", {"name": "D"})], "v1", "c3")
    store.sync_documents("g", [a, b, c, Document.make("g", "d", "text d, corrected")], "r2")
    assert store.current_fields("g", "biography", "v1") == {
        "a": {"name": "A"},
        "b": None,
        "c": None,
        "d": None,
    }


def test_gold_check_passes_exactly_at_the_threshold(tmp_path: Path) -> None:
    """Mean score 0 (every gold document answered with nothing right): threshold 0 passes, the
    least threshold above it fails. The answers are in the store, so nothing is extracted."""
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    corpus = gold_corpus("sample")
    docs = [Document.make(corpus, d.doc_id, d.text, d.source) for d in load_sample_gold()]
    store.sync_documents(corpus, docs, "r0")
    record = CallRecord("c1", "u", len(docs), 1, 0, 0, 0.0, "stop", len(docs), 0, None, 0.0)
    store.record_outcome(
        run_id="r0",
        corpus=corpus,
        task="biography",
        task_version="v1",
        backend="vllm",
        model="m",
        outcome=CallOutcome(record, [ItemResult(d.doc_id, d.content_hash, "ok", {}) for d in docs]),
    )

    def check(threshold: float) -> tuple[bool, float]:
        settings = replace(
            Settings.from_env(), gold_sample=(("sample", None),), gold_threshold=threshold
        )
        # No client: nothing is pending, so nothing is extracted.
        run = GoldRun(
            store, None, "vllm", "m", "v1", "run", EngineSettings(), 1, logging.getLogger("test")
        )
        result = asyncio.run(evaluate_gold_sample(get_task("biography"), settings, run))
        assert result.metadata["extracted_this_run"].value == 0
        return result.passed, result.metadata["mean_score"].value

    assert check(0.0) == (True, 0.0)
    assert check(1e-9) == (False, 0.0)


# Failed gold documents are retried by later runs up to retry_limit, like any corpus's: with 1,
# the second run has nothing to extract whatever the tiny model got wrong.
# One item per call, several in flight: what this server runs fastest (packing is not tested here).
CFG = {
    "ops": {
        "biography_extractions": {
            "config": {"retry_limit": 1, "items_per_call": 1, "max_concurrency": 4}
        }
    }
}


def _gold_evaluation(result):  # type: ignore[no-untyped-def]
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "gold_sample"]
    assert len(evaluations) == 1
    return evaluations[0]


@pytest.mark.vllm
def test_gold_check_scores_once_and_follows_the_threshold(
    tmp_path, monkeypatch, vllm_url, vllm_model
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "sample:3")
    monkeypatch.setenv("EXTRACTION_GOLD_THRESHOLD", "0")
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model)
    gold_ids = {d.doc_id for d in load_sample_gold()}
    corpus = [r for r in read_jsonl(SAMPLE_CORPUS) if r["id"] not in gold_ids][:2]
    write_corpus(settings.source_root / "tiny" / "documents.jsonl", corpus)

    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        first = p.run("tiny", CFG)
        assert first.success
        ev = _gold_evaluation(first)
        meta = {k: v.value for k, v in ev.metadata.items()}
        assert (meta["documents"], meta["extracted_this_run"], meta["threshold"]) == (3, 3, 0.0)
        scores = {k: v for k, v in meta.items() if k.startswith("score/sample/")}
        assert "score/sample/name" in scores and all(0 <= v <= 1 for v in scores.values())
        assert "| gold | language |" in meta["scores"]
        assert ev.passed is True  # threshold 0: any mean passes (the boundary: test below)
        gold_rows = p.query(
            "SELECT count(*) FROM extractions WHERE corpus = ?", [gold_corpus("sample")]
        )[0][0]
        assert gold_rows == 3
        # the partition's own rows do not include the gold documents
        assert p.query("SELECT count(*) FROM extractions WHERE corpus = 'tiny'")[0][0] == 2

        # Nothing changed: the gold sample is re-scored from the store, not extracted again.
        # Settings are read when the code location loads (each run's process loads it anew).
        monkeypatch.setenv("EXTRACTION_GOLD_THRESHOLD", "1.01")
        p = project(Settings.from_env(), instance)
        second = p.run("tiny", CFG)
        assert second.success
        ev2 = _gold_evaluation(second)
        meta2 = {k: v.value for k, v in ev2.metadata.items()}
        assert meta2["extracted_this_run"] == 0
        assert p.query("SELECT count(*) FROM calls WHERE run_id = ?", [second.run_id])[0][0] == 0
        assert {k: v for k, v in meta2.items() if k.startswith("score/")} == scores
        assert ev2.passed is False and meta2["mean_score"] < 1.01

        # A gold set whose files are missing: the step succeeds, the check warns and says what.
        monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "taqrib:2")
        monkeypatch.setenv("EXTRACTION_EVAL_DATA", str(tmp_path / "no-data"))
        p = project(Settings.from_env(), instance)
        third = p.run("tiny", CFG)
        assert third.success
        ev3 = _gold_evaluation(third)
        assert ev3.passed is False
        assert "taqrib/taqrib.JK000121.txt" in ev3.metadata["missing"].value
