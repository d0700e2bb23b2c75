"""The `extraction` command line: every command is listed, `tasks validate` refuses a bad spec
with the file and field before any LLM call, and `export` writes the typed table in each format
with the rows the store holds (a real DuckDB file, outcomes recorded as the engine does)."""

from __future__ import annotations

import csv
import importlib
import json
import textwrap
import time
import tomllib
from pathlib import Path

import duckdb
import pytest

from extraction_assets.cli import main
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import CallContext, DuckDBStore

REPO = Path(__file__).resolve().parents[1]

NOTE_TASK = """\
name: note
description: Notes
instructions: Extract the person and the year from the note.
output_tokens_per_item: 80
fields:
  person: {type: string, max_length: 80}
  year: {type: integer, nullable: true}
  topics: {type: list, max_items: 3, items: {type: string, max_length: 20}}
"""


def test_console_script_points_at_main() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, attr = scripts["extraction"].split(":")
    assert getattr(importlib.import_module(module), attr) is main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "serve", "tasks", "eval", "export", "demo"):
        assert f"\n    {command} " in out


@pytest.mark.parametrize("command", ["tasks", "eval", "export", "run", "serve"])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: extraction {command}" in capsys.readouterr().out


def test_tasks_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "note.yaml"
    good.write_text(NOTE_TASK)
    assert main(["tasks", "validate", str(good)]) == 0
    assert "ok: task note: 3 fields (person, year, topics)" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(NOTE_TASK.replace("type: integer", "type: integr"))
    assert main(["tasks", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "year" in err and "integr" in err


def _store_with_notes(tmp_path: Path, spec: Path) -> tuple[DuckDBStore, list[Document]]:
    from extraction_assets.tasks import load_task

    task = load_task(str(spec))
    store = DuckDBStore(path=str(tmp_path / "home" / "store.duckdb"))
    docs = [Document.make(c, i, f"text of {i}") for c, i in (("a", "n1"), ("a", "n2"), ("b", "n3"))]
    for corpus in ("a", "b"):
        store.sync_documents(corpus, [d for d in docs if d.corpus == corpus], "r1")
    fields = {
        "n1": {"person": "Ada", "year": 1843, "topics": ["math", "engines"]},
        "n2": {"person": 'Émile, "Z"', "year": None, "topics": []},
        "n3": {"person": "Bo", "year": 1900, "topics": ["x"]},
    }
    for doc in docs:
        results = [ItemResult(doc.doc_id, doc.content_hash, "ok", fields[doc.doc_id])]
        call = CallRecord(
            f"c-{doc.doc_id}", "http://x", 1, 1, 10, 5, 0.1, "stop", 1, 0, None, time.time()
        )
        store.record_outcome(
            outcome=CallOutcome(call=call, results=results),
            context=CallContext("r1", doc.corpus, task.name, "v1", "vllm", "m"),
        )
    store.ensure_task_view(task.name, task.item_model)
    return store, docs


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_the_typed_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    spec = tmp_path / "note.yaml"
    spec.write_text(textwrap.dedent(NOTE_TASK))
    store, _ = _store_with_notes(tmp_path, spec)
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXTRACTION_DB", store.path)
    out = tmp_path / "out" / f"notes.{fmt}"

    assert main(["export", str(spec), "-o", str(out)]) == 0
    assert f"3 rows of task note -> {out} ({fmt})" in capsys.readouterr().out
    if fmt == "csv":
        with out.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert [(r["corpus"], r["doc_id"], r["person"], r["year"]) for r in rows] == [
            ("a", "n1", "Ada", "1843"),
            ("a", "n2", 'Émile, "Z"', ""),
            ("b", "n3", "Bo", "1900"),
        ]
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [(r["doc_id"], r["year"], r["topics"]) for r in rows] == [
            ("n1", 1843, ["math", "engines"]),
            ("n2", None, []),
            ("n3", 1900, ["x"]),
        ]
    else:
        with duckdb.connect() as con:
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM '{out}'").fetchall()}
            rows = con.execute(f"SELECT doc_id, year FROM '{out}'").fetchall()
        assert {k: types[k] for k in ("person", "year", "topics")} == {
            "person": "VARCHAR",
            "year": "BIGINT",
            "topics": "VARCHAR[]",
        }
        assert rows == [("n1", 1843), ("n2", None), ("n3", 1900)]

    one = tmp_path / "b.jsonl"
    assert main(["export", str(spec), "--corpus", "b", "-o", str(one)]) == 0
    assert [json.loads(x)["doc_id"] for x in one.read_text().splitlines()] == ["n3"]


def test_export_without_a_store_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXTRACTION_DB", str(tmp_path / "none.duckdb"))
    assert main(["export", "biography", "-o", str(tmp_path / "x.csv")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_export_of_all_corpora_leaves_out_the_gold_pseudo_corpora(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gold_sample check extracts its documents into `[gold]<set>` pseudo-corpora of the
    same store: a user's export of "all corpora" is their corpora; the gold is one --corpus away."""
    spec = tmp_path / "note.yaml"
    spec.write_text(textwrap.dedent(NOTE_TASK))
    store, _ = _store_with_notes(tmp_path, spec)
    gold = Document.make("[gold]sample", "g1", "gold text")
    store.sync_documents(gold.corpus, [gold], "r1")
    call = CallRecord("c-g1", "http://x", 1, 1, 10, 5, 0.1, "stop", 1, 0, None, time.time())
    store.record_outcome(
        outcome=CallOutcome(
            call=call,
            results=[
                ItemResult("g1", gold.content_hash, "ok", {"person": "G", "year": 1, "topics": []})
            ],
        ),
        context=CallContext("r1", gold.corpus, "note", "v1", "vllm", "m"),
    )
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXTRACTION_DB", store.path)

    every = tmp_path / "all.jsonl"
    assert main(["export", str(spec), "-o", str(every)]) == 0
    assert [json.loads(x)["doc_id"] for x in every.read_text().splitlines()] == ["n1", "n2", "n3"]
    only_gold = tmp_path / "gold.jsonl"
    assert main(["export", str(spec), "--corpus", "[gold]sample", "-o", str(only_gold)]) == 0
    assert [json.loads(x)["doc_id"] for x in only_gold.read_text().splitlines()] == ["g1"]
