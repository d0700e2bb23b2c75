"""Why: editing a user's spec must re-extract exactly what it should. Instructions, a field,
an example change what an answer means (new task version: every document pending again); a
comment, the order of keys, the task's description, its gold file or scoring rules do not
(same version: nothing pending). Checked on a real DuckDB store's pending rule. A second task
beside the first leaves the first's extractions current. Few-shot examples are in the static
system message (so the prefix cache still serves it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from extraction_assets.engine import build_messages, system_message
from extraction_assets.tasks import ExtractionTask, load_task
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import DuckDBStore

GEN = {"temperature": 0.0, "seed": 0}
SPEC = """\
# a user's task
name: people
description: People named in a text.
instructions: Extract the main person.
output_tokens_per_item: 100
fields:
  person: {type: string, description: the main person, max_length: 60}
  born: {type: integer, nullable: true, min: 0, max: 2100}
"""
NO_OP_EDITS = {
    "comment": ("# a user's task", "# a user's task, reviewed\n# by a colleague"),
    "key order": (
        "{type: string, description: the main person, max_length: 60}",
        "{max_length: 60, description: the main person, type: string}",
    ),
    "top-level order": (
        "description: People named in a text.\ninstructions: Extract the main person.",
        "instructions: Extract the main person.\ndescription: People named in a text.",
    ),
    "task description": ("description: People named in a text.", "description: Persons."),
    "output budget": ("output_tokens_per_item: 100", "output_tokens_per_item: 150"),
    "gold and scoring": ("max: 2100}", "max: 2100, score: exact}\ngold: gold.jsonl"),
    "yaml style": (
        "instructions: Extract the main person.",
        "instructions: >-\n  Extract the main\n  person.",
    ),
}
MEANING_EDITS = {
    "instructions": ("Extract the main person.", "Extract the main person, in English."),
    "field description": ("description: the main person,", "description: the subject,"),
    "field bound": ("max_length: 60", "max_length: 80"),
    "field type": ("born: {type: integer", "born: {type: number"),
    "field added": ("fields:\n", "fields:\n  died: {type: integer, nullable: true}\n"),
    "field order": (
        "  person: {type: string, description: the main person, max_length: 60}\n"
        "  born: {type: integer, nullable: true, min: 0, max: 2100}\n",
        "  born: {type: integer, nullable: true, min: 0, max: 2100}\n"
        "  person: {type: string, description: the main person, max_length: 60}\n",
    ),
    "example added": (
        "fields:\n",
        "examples:\n  - {text: 'Ada, born 1815', answer: {person: Ada, born: 1815}}\nfields:\n",
    ),
}


def version_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "people.yaml"
    path.write_text(text, encoding="utf-8")
    return load_task(str(path)).version("m", GEN)


@pytest.mark.parametrize("edit", NO_OP_EDITS, ids=list(NO_OP_EDITS))
def test_no_op_edit_keeps_the_version(tmp_path: Path, edit: str) -> None:
    old, new = NO_OP_EDITS[edit]
    assert old in SPEC
    assert version_of(tmp_path, SPEC.replace(old, new)) == version_of(tmp_path, SPEC)


@pytest.mark.parametrize("edit", MEANING_EDITS, ids=list(MEANING_EDITS))
def test_meaningful_edit_changes_the_version(tmp_path: Path, edit: str) -> None:
    old, new = MEANING_EDITS[edit]
    assert old in SPEC
    assert version_of(tmp_path, SPEC.replace(old, new)) != version_of(tmp_path, SPEC)


def _extract_all(store: DuckDBStore, task: ExtractionTask, docs: list[Document]) -> None:
    version = task.version("m", GEN)
    results = [
        ItemResult(d.doc_id, d.content_hash, "ok", {"person": "x", "born": None}) for d in docs
    ]
    call = CallRecord(
        "c-" + version + task.name, "u", len(docs), 1, 1, 1, 0.1, "stop", len(docs), 0, None, 0.0
    )
    store.record_outcomes(
        [CallOutcome(call, results)],
        run_id="r",
        corpus="c",
        task=task.name,
        task_version=version,
        backend="vllm",
        model="m",
    )


def test_store_re_extracts_after_a_meaningful_edit_only(tmp_path: Path) -> None:
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    docs = [Document.make("c", f"d{i}", f"text {i}") for i in range(3)]
    store.sync_documents("c", docs, "r0")
    spec = tmp_path / "people.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    task = load_task(str(spec))
    _extract_all(store, task, docs)

    def pending(t: ExtractionTask) -> list[str]:
        return [d.doc_id for d in store.pending_documents("c", t.name, t.version("m", GEN), 3)]

    assert pending(task) == []
    spec.write_text(SPEC.replace(*NO_OP_EDITS["comment"]).replace(*NO_OP_EDITS["key order"]))
    assert pending(load_task(str(spec))) == []
    spec.write_text(SPEC.replace(*MEANING_EDITS["instructions"]))
    assert pending(load_task(str(spec))) == ["d0", "d1", "d2"]

    # A second task beside the first: pending for itself, nothing of the first.
    second = tmp_path / "places.yaml"
    second.write_text(SPEC.replace("name: people", "name: places"))
    assert pending(load_task(str(second))) == ["d0", "d1", "d2"]
    assert pending(task) == []


def test_examples_are_in_the_static_system_message(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(SPEC.replace(*MEANING_EDITS["example added"]), encoding="utf-8")
    task = load_task(str(path))
    system = system_message(task)
    assert "Example 1 text:\nAda, born 1815\nExample 1 answer:\n" in system
    assert '{"person":"Ada","born":1815}' in system
    assert (
        system.index("Fields of each answer")
        < system.index("Example 1")
        < system.index("Input format")
    )
    one = build_messages(task, [Document.make("c", "a", "Bob, 1900")])
    two = build_messages(task, [Document.make("c", "b", "Eve"), Document.make("c", "x", "y")])
    assert one[0] == two[0]
    assert "Ada" not in one[1]["content"]
    # a task without examples has no examples block (built-in prompts unchanged)
    assert "Example 1" not in system_message(load_task("biography"))


def test_spec_text_is_read_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(textwrap.dedent(SPEC))
    first = load_task(str(path)).instructions
    path.write_text(SPEC.replace(*MEANING_EDITS["instructions"]))
    assert load_task(str(path)).instructions != first


def test_typed_table_columns_follow_the_spec_types(tmp_path: Path) -> None:
    """A spec's field types become the typed view's column types (a date is a DATE)."""
    path = tmp_path / "typed.yaml"
    path.write_text(
        "name: typed\ninstructions: x\noutput_tokens_per_item: 10\nfields:\n"
        "  s: {type: string}\n  i: {type: integer}\n  n: {type: number}\n  b: {type: boolean}\n"
        "  d: {type: date, nullable: true}\n  tags: {type: list, items: {type: string}}\n"
    )
    task = load_task(str(path))
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    doc = Document.make("c", "a", "text")
    store.sync_documents("c", [doc], "r0")
    answer = {"s": "x", "i": 1, "n": 1.5, "b": True, "d": "2024-02-29", "tags": ["t"]}
    call = CallRecord("c1", "u", 1, 1, 1, 1, 0.1, "stop", 1, 0, None, 0.0)
    store.record_outcomes(
        [CallOutcome(call, [ItemResult("a", doc.content_hash, "ok", answer)])],
        run_id="r",
        corpus="c",
        task="typed",
        task_version=task.version("m", GEN),
        backend="vllm",
        model="m",
    )
    view = store.ensure_task_view(task.name, task.item_model)
    with store.connect(read_only=True) as con:
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}
        row = con.execute(f"SELECT d, i, tags FROM {view}").fetchone()
    assert [types[c] for c in ("s", "i", "n", "b", "d", "tags")] == [
        "VARCHAR",
        "BIGINT",
        "DOUBLE",
        "BOOLEAN",
        "DATE",
        "VARCHAR[]",
    ]
    assert str(row[0]) == "2024-02-29" and row[1] == 1 and row[2] == ["t"]
