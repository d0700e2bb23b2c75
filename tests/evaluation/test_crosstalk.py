"""Why: the contamination figure must be able to come out non-zero for an item re-run alone: it
is scored against the ORIGINAL pack membership (the first request each document was in) and the
pack-mates' GOLD values, with no code from the engine's detector."""

from __future__ import annotations

import ast
from pathlib import Path

from extraction_assets.evaluation import crosstalk as ct
from extraction_assets.evaluation.gold import GoldDocument
from extraction_assets.evaluation.scoring import REDOCRED_FIELDS, TAQRIB_FIELDS


def doc(doc_id: str, **gold) -> GoldDocument:
    return GoldDocument(doc_id, f"text of {doc_id}", "en", gold, "test")


DOCS = [
    doc("a", name=["Ada Lovelace"], birth_year=1815, family=[{"aliases": ["Lord Byron"]}]),
    doc("b", name=["Charles Babbage"], birth_year=1791, family=[{"aliases": ["Georgiana"]}]),
    doc("c", name=["Mary Somerville"], birth_year=1780),
]


def test_a_value_from_a_pack_mates_gold_counts_and_the_items_own_does_not() -> None:
    predictions = {
        "a": {"name": "Charles Babbage", "birth_year": 1815},  # b's name
        "b": {"name": "Charles Babbage", "birth_year": 1791, "family": [{"name": "Lord Byron"}]},
        "c": {"name": "Mary Somerville", "birth_year": 1780},
    }
    report = ct.gold_crosstalk([["a", "b", "c"]], DOCS, predictions, REDOCRED_FIELDS)
    assert report.answers == 3 and report.contaminated == 2
    assert report.by_field == {"name": 1, "family": 1}
    assert {(e["doc_id"], e["gold_of"]) for e in report.examples} == {("a", "b"), ("b", "a")}


def test_an_item_re_run_alone_is_still_scored_against_its_original_pack() -> None:
    # The engine settled "a" in a call of its own (a re-run alone), but it was first sent with b.
    requests = [["a", "b"], ["c"], ["a"]]
    packs = ct.first_packs(requests)
    assert packs == [["a", "b"], ["c"]]
    predictions = {"a": {"name": "Charles Babbage"}, "b": None, "c": {"name": "Ada Lovelace"}}
    report = ct.gold_crosstalk(packs, DOCS, predictions, REDOCRED_FIELDS)
    assert (report.answers, report.contaminated) == (1, 1)  # c had no pack-mates: not counted


def test_enum_fields_are_not_attributed() -> None:
    docs = [doc("x", grade="ثقة"), doc("y", grade="صدوق")]
    predictions = {"x": {"grade": "صدوق"}, "y": {"grade": "صدوق"}}
    assert ct.gold_crosstalk([["x", "y"]], docs, predictions, TAQRIB_FIELDS).contaminated == 0


def test_chance_groups_keep_the_sizes_and_the_documents() -> None:
    packs = [["a", "b", "c"], ["d", "e"], ["f"]]
    groups = ct.shuffled_groups(packs, seed=1)
    assert [len(g) for g in groups] == [3, 2, 1]
    assert sorted(i for g in groups for i in g) == list("abcdef")
    assert groups == ct.shuffled_groups(packs, seed=1)


def test_shares_no_code_with_the_engines_detector() -> None:
    tree = ast.parse(Path(ct.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("extraction_assets.engine") for m in imported)
