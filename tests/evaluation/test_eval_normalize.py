"""Field normalisation decides what counts as a correct answer: a wrong reading of an Arabic
year or a name variant silently moves every score, so each rule is pinned here."""

from __future__ import annotations

import pytest

from extraction_assets.evaluation.normalize import (
    ParsedYear,
    complete_century,
    find_death_year,
    find_kunya,
    generation_from_text,
    grade_from_text,
    normalize_kunya,
    parse_arabic_number,
    parse_year,
)
from extraction_assets.text import names_match, normalize_name


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("مات سنة سبع وأربعين ومائتين", 247),
        ("سنة ثلاث ومائة", 103),
        ("سنة إحدى وعشرين ومائتين", 221),
        ("سنة احدى وعشرين ومئتين", 221),
        ("سنة سبع وأربعين ومئتين", 247),
        ("سنة ثلاثمائة", 300),
        ("سنة ثلاث مائة", 300),
        ("سنة ثلاثمئة", 300),
        ("سنة ثلاث مئة وعشر", 310),
        ("سنة تسع وثمانين", 89),
        ("سنة تسعة وثمانون", 89),
        ("سنة ثمان وثمانين ومائة", 188),
        ("سنة ثماني عشرة", 18),
        ("سنة اثنتي عشرة", 12),
        ("سنة اثنتين وأربعين", 42),
        ("سنة إحدى عشرة", 11),
        ("سنة عشر ومائة", 110),
        ("سنة خمسين", 50),
        ("سنة مائة", 100),
        ("سنة أربعمائة", 400),
        ("سنة ست", 6),
        ("سَنَةَ سَبْعٍ وَأَرْبَعِينَ وَمِائَتَيْنِ", 247),  # fully vocalised
        ("سنـة سبـع وأربعيـن", 47),  # tatweel
        ("مات سنة ٢٤٧", 247),
        ("مات سنة 197 خ ت ق", 197),
        ("توفي سنة ۲۰۵", 205),  # Persian digits
        ("أحد الأئمة مات سنة ست وثلاثين", 36),  # "أحد" alone is not "one"
    ],
)
def test_arabic_year_words(text: str, year: int) -> None:
    parsed = parse_arabic_number(text)
    assert parsed is not None
    assert parsed.value == year
    assert not parsed.approximate


def test_bid_is_a_flagged_range_not_a_number() -> None:
    parsed = parse_arabic_number("مات سنة بضع وتسعين")
    assert parsed == ParsedYear(None, True, 93, 99)
    assert parsed.candidates() == list(range(93, 100))


@pytest.mark.parametrize(
    ("text", "value", "low", "high"),
    [
        ("مات بعد المائتين", 200, 201, 209),
        ("مات بعد الخمسين", 50, 51, 59),
        ("مات قبل المائة", 100, 91, 99),
        ("مات سنة سبع عشرة أو بعدها", 17, 17, 26),
    ],
)
def test_before_after_are_approximate(text: str, value: int, low: int, high: int) -> None:
    parsed = parse_arabic_number(text)
    assert parsed is not None and parsed.approximate
    assert (parsed.value, parsed.low, parsed.high) == (value, low, high)


def test_alternative_years_share_the_tens() -> None:
    parsed = parse_arabic_number("مات سنة سبع أو ثمان وعشرين")
    assert parsed is not None and parsed.approximate
    assert parsed.candidates() == [27, 28]


def test_no_number() -> None:
    assert parse_arabic_number("صدوق من العاشرة") is None
    assert parse_year(None) is None
    assert parse_year("unknown") is None


@pytest.mark.parametrize(
    ("text", "year", "approx"),
    [
        ("12 March 1955", 1955, False),
        ("1955", 1955, False),
        ("c. 1790", 1790, True),
        ("circa 1790", 1790, True),
        ("born 13 March 1963 in Mediaș", 1963, False),
        ("1955-03-12", 1955, False),
        ("سنة سبع وأربعين ومائتين", 247, False),
        (247, 247, False),
    ],
)
def test_parse_year(text: str | int, year: int, approx: bool) -> None:
    parsed = parse_year(text)
    assert parsed is not None
    assert (parsed.value, parsed.approximate) == (year, approx)


def test_decade_is_a_range() -> None:
    parsed = parse_year("the 1790s")
    assert parsed is not None and parsed.approximate and parsed.candidates()[-1] == 1799


def test_death_year_in_an_entry_and_century_rule() -> None:
    entry = (
        "أحمد بن إبراهيم بن خالد الموصلي أبو علي نزيل بغداد صدوق من العاشرة مات سنة ست وثلاثين د فق"
    )
    stated = find_death_year(entry)
    assert stated is not None and stated.value == 36  # as written: the century is implied
    assert complete_century(stated, generation_from_text(entry)).value == 236
    assert complete_century(ParsedYear(36), 5).value == 136
    assert complete_century(ParsedYear(36), 2).value == 36
    assert complete_century(ParsedYear(103), 10).value == 103  # already has its century
    assert complete_century(ParsedYear(36), None).value == 36
    # an age is not a death year
    assert find_death_year("صدوق من الثالثة وقد نيف على التسعين") is None
    after = find_death_year("ثقة من التاسعة مات بعد الخمسين")
    assert after is not None and complete_century(after, 9).candidates()[0] == 251


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("أَحْمَدُ بْنُ حَنْبَلٍ", "احمد بن حنبل"),
        ("أحمد ابن حنبل", "احمد بن حنبل"),
        ("إبراهيم", "ابراهيم"),
        ("آدم", "ادم"),
        ("موسى", "موسي"),
        ("فاطمة", "فاطمه"),
        ("عبـــد الله", "عبد الله"),
        ("  عبد   الله ", "عبد الله"),
        ("Aḥmad b. Ḥanbal", "ahmad ibn hanbal"),
        ("Ahmad bin Hanbal", "AHMAD IBN HANBAL"),
        ("Al-Bukhārī", "al bukhari"),
        ("Mediaș", "medias"),
        ("José Martí", "jose marti"),
        ("Straße", "strasse"),
    ],
)
def test_name_variants_normalise_equal(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b)


def test_different_names_stay_different() -> None:
    assert normalize_name("محمد بن علي") != normalize_name("محمد بن عمر")
    assert not names_match("Ahmad", "Ahmad ibn Hanbal")  # a lone first name is not the person


def test_names_match_partial_full_name() -> None:
    assert names_match("Willi Schneider", 'Wilfried " Willi " Schneider')
    assert names_match("Peter Ham", "Peter William Ham")
    assert not names_match("Schneider", "Wilfried Schneider")
    assert not names_match("", "x")


@pytest.mark.parametrize(
    ("phrase", "grade"),
    [
        ("ثقة", "trustworthy"),
        ("ثقة ثبت", "trustworthy"),
        ("ثقة حافظ", "trustworthy"),
        ("ثقة فقيه ، تغير حفظه قليلا في الآخر", "trustworthy"),
        ("ثقةٌ", "trustworthy"),
        ("صدوق", "truthful"),
        ("صدوق يخطئ", "truthful"),
        ("صدوق له أوهام", "truthful"),
        ("صدوق يهم", "truthful"),
        ("لا بأس به", "truthful"),
        ("مقبول", "acceptable"),
        ("مقبولة", "acceptable"),
        ("لين الحديث", "weak"),
        ("ضعيف", "weak"),
        ("ليس بالقوي", "weak"),
        ("متروك", "abandoned"),
        ("منكر الحديث", "abandoned"),
        ("مجهول", "unknown"),
        ("مجهول الحال", "unknown"),
        ("مستور", "unknown"),
        ("لا يعرف", "unknown"),
        ("كذاب", "liar"),
        ("صحابي", "companion"),
        ("له صحبة", "companion"),
        ("trustworthy", "trustworthy"),
    ],
)
def test_grade_phrases(phrase: str, grade: str) -> None:
    assert grade_from_text(phrase) == grade


def test_grade_in_entry_text_is_the_entrys_own_verdict() -> None:
    entry = "أحمد بن بديل بن قريش أبو جعفر اليامي قاضي الكوفة صدوق له أوهام من العاشرة"
    assert grade_from_text(entry) == "truthful"
    assert grade_from_text("وثقه النسائي من الثالثة") is None  # someone else's verdict word
    assert grade_from_text("") is None


@pytest.mark.parametrize(
    ("text", "generation"),
    [
        ("صدوق من العاشرة مات سنة ست", 10),
        ("ثقة من الثامنة", 8),
        ("من الأولى", 1),
        ("من الثانية", 2),
        ("من الحادية عشرة", 11),
        ("من الثانية عشرة مات", 12),
        ("ثقة من كبار التاسعة", 9),
        ("مقبول من صغار الخامسة", 5),
        ("صحابي مشهور", 1),
        ("صدوق", None),
    ],
)
def test_generation(text: str, generation: int | None) -> None:
    assert generation_from_text(text) == generation


def test_generation_bare_csv_value() -> None:
    assert generation_from_text("العاشرة") is None
    assert generation_from_text("العاشرة", require_min=False) == 10
    assert generation_from_text("كبار العاشرة", require_min=False) == 10


def test_death_year_of_a_woman() -> None:
    year = find_death_year(
        "زينب بنت سليمان الهاشمية، مقبولة، من السابعة. ماتت سنة خمس وسبعين ومائة."
    )
    assert year is not None and year.value == 175


def test_normalize_kunya_folds_case_forms() -> None:
    assert normalize_kunya("أبا عبد المَلِك") == normalize_kunya("أبو عبد الملك") == "ابو عبد الملك"
    assert normalize_kunya("أبي علي") == "ابو علي"
    assert normalize_kunya("أم كلثوم") != normalize_kunya("أبو كلثوم")
    assert normalize_kunya(None) == ""


def test_kunya() -> None:
    assert find_kunya("أحمد بن إبراهيم الموصلي أبو علي نزيل بغداد") == "ابو علي"
    assert find_kunya("يكنى أبا عبد الملك صدوق") == "ابو عبد الملك"
    assert find_kunya("أحمد بن أبي بكر الزهري صدوق") is None  # lineage, not a kunya


def test_alternatives_sharing_only_the_hundreds() -> None:
    parsed = parse_arabic_number("مات سنة إحدى عشرة أو اثنتي عشرة ومائتين")
    assert parsed is not None and parsed.candidates() == [211, 212]
    assert complete_century(parsed, 10).candidates() == [211, 212]  # century already there


def test_day_and_month_without_year() -> None:
    assert parse_year("12 January") is None
    assert parse_year("July 2 , 626") == ParsedYear(626)
    assert parse_year("36") == ParsedYear(36)
