"""Why: a user scores their own task against their own gold.jsonl, with no scoring code:
the field's type picks the comparison (exact for enums/numbers/booleans, normalised for
strings, set F1 for lists, every stated key for objects), a spec can override it per field,
and the scores come per field and per language. A bad gold line is named (file, line, id)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from extraction_assets.errors import GoldFileError
from extraction_assets.evaluation import (
    load_task_gold,
    score_documents,
    task_field_specs,
    value_match,
)
from extraction_assets.evaluation.__main__ import main as eval_main
from extraction_assets.evaluation.task_gold import gold_set_names
from extraction_assets.tasks import load_task

SPEC = """\
name: deals
instructions: Extract the deal.
output_tokens_per_item: 100
gold: gold.jsonl
fields:
  buyer: {type: string, max_length: 60}
  kind: {type: string, enum: [merger, acquisition]}
  price: {type: number, nullable: true}
  closed: {type: boolean}
  year: {type: integer, nullable: true}
  advisers: {type: list, max_items: 5, items: {type: string, max_length: 60}}
  seller:
    type: object
    fields:
      name: {type: string, max_length: 60}
      country: {type: string, max_length: 40}
  code: {type: string, max_length: 10, score: exact}
  note: {type: string, max_length: 100, score: ignore}
"""
GOLD = [
    {
        "id": "a",
        "lang": "en",
        "fields": {
            "buyer": "Acme Corp.",
            "kind": "merger",
            "price": 10.0,
            "closed": True,
            "year": 2020,
            "advisers": ["Lazard", "Rothschild & Co"],
            "seller": {"name": "Beta"},
            "code": "X-1",
        },
    },
    {
        "id": "b",
        "lang": "de",
        "fields": {
            "buyer": ["Müller AG", "Mueller"],
            "kind": "acquisition",
            "price": None,
            "closed": False,
            "advisers": [],
            "code": "y-2",
        },
    },
]


@pytest.fixture
def task(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "deals.yaml").write_text(SPEC)
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOLD))
    return load_task(str(tmp_path / "deals.yaml"))


def test_field_types_pick_the_scoring(task) -> None:  # type: ignore[no-untyped-def]
    kinds = {s.task_field: s.kind for s in task_field_specs(task)}
    assert kinds == {
        "buyer": "text",
        "kind": "exact",
        "price": "exact",
        "closed": "exact",
        "year": "exact",
        "advisers": "items",
        "seller": "object",
        "code": "exact",
    }
    assert "note" not in kinds  # score: ignore
    with pytest.raises(ValueError, match="unknown fields"):
        task_field_specs(replace(task, scoring={"nosuch": "exact"}))


def test_scores_per_field_and_language(task) -> None:  # type: ignore[no-untyped-def]
    docs = load_task_gold(task)
    assert [d.doc_id for d in docs] == ["a", "b"] and docs[0].text == ""
    predictions = {
        "a": {
            "buyer": "ACME corp",
            "kind": "merger",
            "price": 10,
            "closed": True,
            "year": 2021,
            "advisers": ["lazard", "Goldman", "Lazard"],
            "seller": {"name": "beta", "country": "DE"},
            "code": "X-1",
            "note": "whatever",
        },
        "b": {
            "buyer": "Mueller",
            "kind": "merger",
            "price": None,
            "closed": False,
            "year": None,
            "advisers": ["Evercore"],
            "seller": {"name": "x", "country": "y"},
            "code": "Y-2",
        },
    }
    scores = score_documents(docs, predictions, task_field_specs(task))
    overall = scores["overall"]["fields"]
    assert overall["buyer"]["score"] == 1.0  # normalised: case, punctuation; an alternative
    assert overall["kind"]["score"] == 0.5
    assert overall["price"]["score"] == 1.0  # 10 == 10.0; a stated null matched by null
    assert overall["closed"]["score"] == 1.0
    assert overall["year"]["n"] == 1 and overall["year"]["score"] == 0.0  # b states no year
    # set F1: a: 1 of 2 gold found, 2 distinct predicted; b: gold states none, 1 predicted
    assert (
        overall["advisers"]["tp"],
        overall["advisers"]["n_pred"],
        overall["advisers"]["n_gold"],
    ) == (1, 3, 2)
    assert overall["advisers"]["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert overall["seller"]["n"] == 1 and overall["seller"]["score"] == 1.0  # only "name" stated
    assert overall["code"]["score"] == 0.5  # exact: "Y-2" is not "y-2"
    by_lang = scores["by_language"]
    assert set(by_lang) == {"en", "de"}
    assert by_lang["de"]["fields"]["kind"]["score"] == 0.0
    assert by_lang["en"]["fields"]["kind"]["score"] == 1.0


def test_relation_triples_match_by_any_mention() -> None:
    """The Re-DocRED shape: a gold triple lists every mention of its entities."""
    gold = {"head": ["Barack Obama", "Obama"], "relation": "P27", "tail": ["United States", "US"]}
    assert value_match({"head": "obama", "relation": "P27", "tail": "US", "evidence": [0]}, gold)
    assert not value_match({"head": "Obama", "relation": "P19", "tail": "US"}, gold)
    assert not value_match({"head": "Michelle", "relation": "P27", "tail": "US"}, gold)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('{"fields": {}}', 'string "id"'),
        ('{"id": "a", "fields": {"nosuch": 1}}', "['nosuch'] are not fields of task deals"),
        ('{"id": "a", "fields": []}', '"fields" must be an object'),
        (
            '{"id": "a", "fields": {"buyer": "x"}}\n{"id": "a", "fields": {}}',
            "id 'a' appears twice",
        ),
    ],
)
def test_bad_gold_line_is_named(task, line: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    assert task.gold is not None
    task.gold.write_text(line + "\n")
    with pytest.raises(GoldFileError) as caught:
        load_task_gold(task)
    assert str(caught.value).startswith(f"{task.gold}:"), caught.value
    assert problem in str(caught.value)


def test_own_gold_is_scored_unless_the_check_is_off(task) -> None:  # type: ignore[no-untyped-def]
    assert gold_set_names(task, ["sample"]) == ["deals"]  # sample is the biography's
    assert gold_set_names(task, []) == []  # EXTRACTION_GOLD_SAMPLE=none
    assert gold_set_names(load_task("biography"), ["sample", "nosuch"]) == ["sample", "nosuch"]


def test_eval_cli_needs_gold_and_texts_before_any_call(task, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # The gold lines have no text and no corpus is given: exit 2 naming what is missing.
    assert eval_main(["--task", str(tmp_path / "deals.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert 'no "text"' in capsys.readouterr().err
    corpus = tmp_path / "deals_corpus"
    corpus.mkdir()
    (corpus / "docs.jsonl").write_text('{"id": "a", "text": "Acme buys Beta."}\n')
    assert (
        eval_main(
            [
                "--task",
                str(tmp_path / "deals.yaml"),
                "--corpus",
                str(corpus),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "gold ids are not in corpus" in capsys.readouterr().err
    (tmp_path / "deals.yaml").write_text(SPEC.replace("gold: gold.jsonl\n", ""))
    with pytest.raises(SystemExit):
        eval_main(["--task", str(tmp_path / "deals.yaml")])
    assert "--gold is required" in capsys.readouterr().err


def test_eval_report_has_a_row_per_language(task) -> None:  # type: ignore[no-untyped-def]
    from extraction_assets.evaluation.harness import markdown

    docs = load_task_gold(task)
    scores = score_documents(
        docs, {"a": {"kind": "merger"}, "b": {"kind": "merger"}}, task_field_specs(task)
    )
    results = {
        "gold": "deals",
        "n_documents": 2,
        "backend": "vllm",
        "model": "m",
        "task": "deals",
        "task_version": "v",
        "seed": 0,
        "scored_fields": ["kind"],
        "not_covered_by_task": [],
        "runs": [
            {
                "items_per_call": 1,
                "scores": scores,
                "contamination": {"rate": None},
                "run_summary": {},
            }
        ],
    }
    report = markdown(results)
    assert "| 1 | de | 1/1 | 0.00 |" in report
    assert "| 1 | en | 1/1 | 1.00 |" in report
