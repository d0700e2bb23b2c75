"""Why: a user defines a task in a YAML/JSON spec or in their own Python module, without
touching the package. A bad spec must be refused before any LLM call with the file, the
field and the problem; a spec must compile to the pydantic model it describes."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from extraction_assets.errors import TaskSpecError
from extraction_assets.tasks import BUILTIN_TASKS, ExtractionTask, load_task, task_from_spec

INVOICE = """\
name: invoice
description: Invoices
instructions: |
  You extract invoice data.
output_tokens_per_item: 200
fields:
  vendor: {type: string, description: the seller, max_length: 80}
  issued: {type: date, nullable: true, description: issue date}
  total: {type: number, min: 0}
  count: {type: integer, min: 1, max: 99}
  currency: {type: string, enum: [EUR, USD]}
  paid: {type: boolean}
  tags: {type: list, max_items: 3, items: {type: string, max_length: 20}}
  lines:
    type: list
    max_items: 2
    items:
      type: object
      fields:
        label: {type: string, max_length: 40}
        amount: {type: number, nullable: true}
examples:
  - text: "ACME Ltd, 2024-03-01: 2 items, total 12.50 EUR, paid."
    answer: {vendor: ACME Ltd, issued: "2024-03-01", total: 12.5, count: 2, currency: EUR,
             paid: true, tags: [], lines: [{label: items, amount: 12.5}]}
"""


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_yaml_spec_compiles_to_the_model_it_describes(tmp_path: Path) -> None:
    task = load_task(str(write(tmp_path, INVOICE)))
    assert task.name == "invoice" and task.output_tokens_per_item == 200
    assert list(task.item_model.model_fields) == [
        "vendor",
        "issued",
        "total",
        "count",
        "currency",
        "paid",
        "tags",
        "lines",
    ]
    props = task.item_schema()["properties"]
    assert props["vendor"] == {"type": "string", "maxLength": 80, "description": "the seller"}
    assert props["issued"]["anyOf"][1] == {"type": "null"}
    assert props["issued"]["anyOf"][0]["pattern"] == r"^\d{4}-\d{2}-\d{2}$"
    assert props["total"]["minimum"] == 0
    assert (props["count"]["minimum"], props["count"]["maximum"]) == (1, 99)
    assert props["currency"]["enum"] == ["EUR", "USD"]
    assert props["paid"]["type"] == "boolean"
    assert props["tags"]["maxItems"] == 3 and props["tags"]["items"]["maxLength"] == 20
    line = props["lines"]["items"]
    assert line["additionalProperties"] is False and line["required"] == ["label", "amount"]
    ok = task.item_model.model_validate(task.examples[0].answer)
    assert str(ok.issued) == "2024-03-01"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        task.item_model.model_validate({**task.examples[0].answer, "currency": "GBP"})
    with pytest.raises(ValueError):
        task.item_model.model_validate({**task.examples[0].answer, "tags": ["a", "b", "c", "d"]})


def test_json_spec_and_yaml_spec_are_the_same_task(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(INVOICE)
    from_json = load_task(write(tmp_path, json.dumps(data), "invoice.json"))
    from_yaml = load_task(write(tmp_path, INVOICE))
    assert from_json.version("m", {}) == from_yaml.version("m", {})


@pytest.mark.parametrize(
    ("edit", "where", "problem"),
    [
        (("type: boolean", "type: bool"), "fields.paid.type", "Input should be"),
        (("max_length: 80", "max_lenght: 80"), "fields.vendor.max_lenght", "unknown key"),
        (("{type: boolean}", "{type: boolean, enum: [x]}"), "fields.paid", "'enum' does not apply"),
        (("min: 1, max: 99", "min: 100, max: 99"), "fields.count", "above max"),
        (("min: 1, max: 99", "min: 1.5"), "fields.count", "whole number"),
        (("enum: [EUR, USD]", "enum: [EUR, 3]"), "fields.currency", "not of type string"),
        (
            ("type: list, max_items: 3, items: {type: string, max_length: 20}", "type: list"),
            "fields.tags",
            "needs 'items'",
        ),
        (("  paid: {type", "  paid-flag: {type"), "fields.paid-flag", "field name"),
        (("  paid: {type", "  copy: {type"), "fields.copy", "reserved"),
        (("name: invoice", "name: Invoice Data"), "<spec>", "task name"),
        (("instructions: |\n  You extract invoice data.\n", ""), "instructions", "missing"),
        (("currency: EUR", "currency: GBP"), "examples[0].answer.currency", "Input should be"),
        (("count: 2,", "count: 0,"), "examples[0].answer.count", "greater than or equal"),
        (
            ("output_tokens_per_item: 200", "output_tokens_per_item: 0"),
            "output_tokens_per_item",
            "greater than",
        ),
    ],
)
def test_bad_spec_names_file_field_and_problem(
    tmp_path: Path, edit: tuple[str, str], where: str, problem: str
) -> None:
    assert edit[0] in INVOICE
    path = write(tmp_path, INVOICE.replace(edit[0], edit[1], 1))
    with pytest.raises(TaskSpecError) as caught:
        load_task(str(path))
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert caught.value.where == where, message
    assert problem in message, message


def test_unreadable_specs_are_named(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match="file not found"):
        load_task(str(tmp_path / "missing.yaml"))
    bad_yaml = write(tmp_path, "name: x\nfields: [unclosed\n")
    with pytest.raises(TaskSpecError, match=r"line 3, column 1: invalid YAML: expected"):
        load_task(str(bad_yaml))
    with pytest.raises(TaskSpecError, match=r"line 1.*invalid JSON"):
        load_task(str(write(tmp_path, "{name: 1}", "t.json")))
    with pytest.raises(TaskSpecError, match="must be a mapping"):
        load_task(str(write(tmp_path, "- a\n- b\n")))


USER_MODULE = """
from pydantic import BaseModel, Field
from extraction_assets.tasks import ExtractionTask, FewShotExample

class Invoice(BaseModel):
    vendor: str = Field(max_length=80, description="the seller")
    total: float | None = Field(description="the total, null if absent")

INVOICE = ExtractionTask(
    name="invoice_py", description="Invoices", item_model=Invoice,
    instructions="You extract invoices.", output_tokens_per_item=100,
    examples=(FewShotExample("ACME: 3 EUR", {"vendor": "ACME", "total": 3}),),
)
NOT_A_TASK = 42
"""


def test_python_task_by_import_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "my_pkg_tasks_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    task = load_task("my_pkg_tasks_test.tasks:INVOICE")
    assert task.name == "invoice_py" and task.examples[0].answer == {"vendor": "ACME", "total": 3.0}
    with pytest.raises(TaskSpecError, match="not an ExtractionTask"):
        load_task("my_pkg_tasks_test.tasks:NOT_A_TASK")
    with pytest.raises(TaskSpecError, match="no attribute"):
        load_task("my_pkg_tasks_test.tasks:MISSING")
    with pytest.raises(TaskSpecError, match="cannot import"):
        load_task("no_such_module_xyz:TASK")
    with pytest.raises(KeyError, match="unknown extraction task 'nosuch'"):
        load_task("nosuch")
    sys.modules.pop("my_pkg_tasks_test.tasks", None)


def test_a_python_example_that_breaks_the_model_is_refused() -> None:
    from extraction_assets.tasks import FewShotExample

    class Item(BaseModel):
        n: int = Field(ge=0)

    with pytest.raises(ValueError, match="example 1: n"):
        ExtractionTask("t", "", Item, "x", 10, examples=(FewShotExample("t", {"n": -1}),))


def test_builtin_translation_spec_is_the_former_python_task() -> None:
    """The built-in translation task moved from a pydantic class to a YAML spec: same schema,
    same version, so nothing stored is re-extracted by the move."""

    class Translation(BaseModel):
        source_language: str = Field(
            max_length=40, description="the language of the item's text, in English, e.g. Arabic"
        )
        translation_en: str = Field(
            max_length=3000, description="faithful English translation of the whole item text"
        )

    python_task = ExtractionTask(
        name="translation",
        description="",
        item_model=Translation,
        instructions="You translate texts into English. For each item, translate the item's "
        "whole text faithfully and name its language. Keep proper names transliterated; do not "
        "add commentary.",
        output_tokens_per_item=64,
        output_tokens_per_input_token=1.5,
    )
    spec_task = load_task("translation")
    assert BUILTIN_TASKS["translation"].endswith("translation.yaml")
    assert spec_task.item_schema() == python_task.item_schema()
    assert spec_task.version("m", {"seed": 0}) == python_task.version("m", {"seed": 0})
    assert spec_task.output_tokens_per_input_token == 1.5


def test_builtins_load_through_the_public_references() -> None:
    for name, ref in BUILTIN_TASKS.items():
        assert load_task(name).name == name
        assert load_task(ref).version("m", {}) == load_task(name).version("m", {})
    assert task_from_spec(BUILTIN_TASKS["translation"]).name == "translation"


def test_two_references_to_one_task_name_are_refused(tmp_path: Path) -> None:
    """Two tasks named alike would make the same assets and share stored rows: refused,
    naming both references."""
    from extraction_assets.tasks import load_tasks

    first = write(tmp_path, INVOICE, "a.yaml")
    second = write(tmp_path, INVOICE.replace("You extract", "Extract"), "b.yaml")
    assert [t.name for t in load_tasks(["biography", str(first)])] == ["biography", "invoice"]
    with pytest.raises(TaskSpecError, match=r"a\.yaml and .*b\.yaml both define task 'invoice'"):
        load_tasks([str(first), str(second)])
