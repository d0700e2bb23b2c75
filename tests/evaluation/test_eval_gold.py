"""The gold loaders read the real evaluation data beside the repository (../shared/data).

These tests FAIL when the data is missing: an evaluation silently skipped is an evaluation
that never ran. Counts are checked against plausible ranges from the data's own README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from extraction_assets.errors import GoldFileMissingError
from extraction_assets.evaluation.__main__ import main
from extraction_assets.evaluation.gold import (
    TAQRIB_EDITIONS,
    compare_editions,
    data_dir,
    load_redocred,
    load_taqrib,
    parse_taqrib,
)


@pytest.fixture(scope="module")
def root() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.fail(f"evaluation data missing: {path} (the shared gold data beside the repository)")
    return path


@pytest.fixture(scope="module")
def taqrib(root: Path) -> list:
    return load_taqrib(root)


def test_redocred_person_biographies(root: Path) -> None:
    docs = load_redocred(root)
    assert 80 <= len(docs) <= 200
    assert all(d.lang == "en" and d.text and d.gold.get("name") for d in docs)
    assert all("birth_year" in d.gold or "death_year" in d.gold for d in docs)
    # years are integers read from the TIME mentions
    years = [y for d in docs for y in d.gold.get("birth_year", [])]
    assert years and all(isinstance(y, int) and 100 < y < 2100 for y in years)
    # relations the task has no field for are reported, not dropped
    assert any("citizenship" in d.uncovered for d in docs)
    schneider = next(d for d in docs if "Mediaș" in d.text and "Schneider" in d.text)
    assert schneider.gold["birth_year"] == [1963]
    assert schneider.gold["birth_place"] == ["Mediaș"]


def test_taqrib_editions_parse(root: Path) -> None:
    for rel in TAQRIB_EDITIONS.values():
        entries = parse_taqrib(root / rel)
        assert 8_500 <= len(entries) <= 9_200
        assert len({e.entry_id for e in entries}) == len(entries)
        first = entries[0]
        assert first.entry_id == "taqrib-1"
        assert first.text.startswith("أحمد") and "من العاشرة" in first.text
        assert not any("ms0" in e.text or "PageV" in e.text for e in entries)


def test_taqrib_gold_sources(taqrib: list) -> None:
    linked = [d for d in taqrib if d.gold_sources.get("grade", "").startswith("ar-sanad")]
    assert 500 <= len(linked) <= 1_500  # README: about 1,000 rows link to one entry
    from_text = [d for d in taqrib if d.gold_sources.get("grade") == "entry-text"]
    assert len(from_text) > 5_000
    graded = [d for d in taqrib if "grade" in d.gold]
    assert len(graded) / len(taqrib) > 0.9
    first = next(d for d in taqrib if d.doc_id == "taqrib-1")
    assert first.gold["grade"] == "truthful"
    assert 236 in first.gold["death_year"]
    assert first.gold["generation"] == 10  # scored against the task's generation field
    # every gold value says where it came from
    assert all(set(d.gold) <= set(d.gold_sources) for d in taqrib)


def test_century_rule_applied_to_text_years(taqrib: list) -> None:
    ruled = [
        d
        for d in taqrib
        if d.gold_sources.get("death_year", "").endswith("century-rule(generation)")
    ]
    assert len(ruled) > 1_000
    for d in ruled:
        gen = d.gold["generation"]
        low = 0 if gen <= 2 else 100 if gen <= 8 else 200
        assert all(low <= y < low + 110 for y in d.gold["death_year"]), d.doc_id


def test_edition_diff_is_plausible(root: Path) -> None:
    diff = compare_editions(root)
    assert diff["common"] > 8_700
    assert 800 <= diff["changed"] <= 1_800  # README: about 1,200
    assert diff["changed_whitespace_only_fold"] > diff["changed"]  # ابن/بن spelling dominates
    assert "taqrib-17" in diff["changed_ids"]  # [القاسم] added in the Shamela edition


def test_missing_gold_file_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GoldFileMissingError, match=str(tmp_path)):
        load_redocred(tmp_path)
    monkeypatch.setenv("EXTRACTION_EVAL_DATA", str(tmp_path))
    assert main(["--gold", "taqrib", "--limit", "1"]) == 2
    assert str(tmp_path / "taqrib" / "taqrib.JK000121.txt") in capsys.readouterr().err
