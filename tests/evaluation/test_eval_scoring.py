"""Scoring and contamination on hand-made predictions, where the right numbers are known."""

from __future__ import annotations

import pytest

from extraction_assets.evaluation.gold import GoldDocument
from extraction_assets.evaluation.scoring import (
    REDOCRED_FIELDS,
    TAQRIB_FIELDS,
    contamination,
    covered_specs,
    match_sets,
    score_documents,
)
from extraction_assets.tasks import get_task


def _doc(doc_id: str, lang: str, gold: dict, text: str = "", **uncovered) -> GoldDocument:
    return GoldDocument(doc_id, text, lang, gold, "test", uncovered=uncovered)


EN = [
    _doc(
        "a",
        "en",
        {
            "name": ["Wilfried Willi Schneider", "Schneider"],
            "birth_year": [1963],
            "birth_place": ["Mediaș"],
            "family": [
                {"relation": "father", "aliases": ["Hans Schneider"]},
                {"relation": "spouse", "aliases": ["Anna Berg"]},
            ],
        },
    ),
    _doc("b", "en", {"name": ["Pete Ham"], "birth_year": [1947], "death_year": [1975]}),
]
AR = [
    _doc(
        "t1",
        "ar",
        {"grade": "truthful", "death_year": [235, 236], "kunya": ["أبو علي"], "generation": 10},
    ),
    _doc(
        "t2",
        "ar",
        {"grade": "trustworthy", "death_year": [246], "kunya": ["أبو عبد الملك"], "generation": 10},
    ),
]


def test_exact_fields_and_sets() -> None:
    predictions = {
        "a": {
            "name": "Willi Schneider",
            "birth_year": 1963,
            "birth_place": "Medias, Transylvania",
            "family": [
                {"relation": "father", "name": "Hans Schneider"},
                {"relation": "son", "name": "Karl Schneider"},
                {"relation": "other", "name": "Hans Schneider"},
            ],
        },
        "b": {"name": "Pete Ham", "birth_year": 1948, "death_year": 1975},
    }
    specs, missing = covered_specs(REDOCRED_FIELDS, get_task("biography").item_model.model_fields)
    assert missing == []
    fields = score_documents(EN, predictions, specs)["overall"]["fields"]
    assert fields["name"]["accuracy"] == 1.0
    assert fields["birth_year"]["accuracy"] == 0.5  # 1948 != 1947: no tolerance for CE years
    assert fields["death_year"]["accuracy"] == 1.0 and fields["death_year"]["n"] == 1
    assert fields["birth_place"]["accuracy"] == 1.0
    assert fields["death_place"]["n"] == 0 and fields["death_place"]["accuracy"] is None
    fam = fields["family"]
    # duplicates collapse: predicted {Hans, Karl}, gold {Hans, Anna}
    assert (fam["tp"], fam["n_pred"], fam["n_gold"]) == (1, 2, 2)
    assert fam["precision"] == fam["recall"] == fam["f1"] == pytest.approx(0.5)


def test_failed_item_counts_wrong_and_languages_split() -> None:
    predictions = {
        "a": None,
        "b": {"name": "Pete Ham", "birth_year": 1947, "death_year": 1975},
        "t1": {"grade": "truthful", "death_year": 237, "kunya": "أَبُو عَلِيٍّ", "generation": 10},
        # a kunya in other_names is not the kunya field; أبا is the accusative of أبو
        "t2": {
            "grade": "truthful",
            "death_year": 245,
            "kunya": "أبا عبد الملك",
            "other_names": ["أبو علي"],
            "generation": 9,
        },
    }
    specs, missing = covered_specs(
        REDOCRED_FIELDS + TAQRIB_FIELDS, get_task("biography").item_model.model_fields
    )
    assert missing == []  # the task answers every Taqrib gold field
    scores = score_documents(EN + AR, predictions, specs)
    assert scores["overall"]["answered"] == 3
    en = scores["by_language"]["en"]["fields"]
    assert en["name"]["accuracy"] == 0.5  # "a" failed
    ar = scores["by_language"]["ar"]["fields"]
    assert ar["grade"]["accuracy"] == 0.5
    assert ar["death_year"]["accuracy"] == 1.0  # 237 ~ 236 and 245 ~ 246, within +-1
    assert ar["kunya"]["accuracy"] == 1.0  # diacritics and case forms folded
    assert ar["generation"]["accuracy"] == 0.5


def test_kunya_is_read_from_the_kunya_field_only() -> None:
    specs, _ = covered_specs(TAQRIB_FIELDS, get_task("biography").item_model.model_fields)
    only_other_names = {
        "t1": {"kunya": None, "other_names": ["أبو علي"]},
        "t2": {"kunya": "أبو علي"},
    }  # t1's kunya, not t2's
    fields = score_documents(AR, only_other_names, specs)["overall"]["fields"]
    assert (fields["kunya"]["n"], fields["kunya"]["correct"]) == (2, 0)
    # a nisba after the kunya still names it; a cut-off kunya does not
    trailing = {"t1": {"kunya": "أبو علي الموصلي"}, "t2": {"kunya": "أبو عبد"}}
    fields = score_documents(AR, trailing, specs)["overall"]["fields"]
    assert fields["kunya"]["correct"] == 1


def test_match_sets_is_one_to_one() -> None:
    assert match_sets(["Anna Berg", "Anna Berg"], [{"aliases": ["Anna Berg"]}]) == 1
    assert match_sets([], [{"aliases": ["x y"]}]) == 0
    assert match_sets(["محمد بن علي"], [["محمد ابن علي"], ["محمد بن عمر"]]) == 1


def test_contamination_in_a_hand_made_pack() -> None:
    texts = {
        "p1": "سفيان بن عيينة الهلالي ثقة حافظ روى عن عمرو بن دينار",
        "p2": "مالك بن أنس الأصبحي إمام دار الهجرة روى عن نافع",
        "p3": "شعبة بن الحجاج ثقة حافظ روى عن قتادة",
    }
    predictions = {
        "p1": {"name": "سفيان بن عيينة", "teachers": ["عمرو بن دينار"]},  # clean
        "p2": {"name": "مالك بن أنس", "teachers": ["نافع", "قتادة"]},  # قتادة is only in p3
        "p3": {"name": "سفيان بن عيينة", "teachers": [], "other_names": ["إمام"]},  # p1's subject
    }
    report = contamination([["p1", "p2", "p3"]], texts, predictions)
    assert (report.answers, report.contaminated) == (3, 2)
    assert report.rate == pytest.approx(2 / 3)
    assert {e["doc_id"]: e["found_in"] for e in report.examples} == {"p2": "p3", "p3": "p1"}
    # the same answers in packs of one cannot be contaminated
    alone = contamination([["p1"], ["p2"], ["p3"]], texts, predictions)
    assert alone.contaminated == 0
    # a grade word copied into a name field is not attributed to another document
    graded = contamination([["p1", "p2"]], texts, {"p1": {"name": "x", "other_names": ["إمام"]}})
    assert graded.contaminated == 0
