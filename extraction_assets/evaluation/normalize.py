"""Field normalisation: what counts as "the same value" when a prediction meets a gold value.

Names and Arabic letters are compared with the keys of `extraction_assets.text`. Years written in
Arabic words (Ibn Hajar's "مات سنة سبع وأربعين ومائتين") become integers; vague forms ("بضع وتسعين",
"بعد المائتين") become approximate ranges, never a made-up exact year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from extraction_assets.text import arabic_tokens, fold_arabic, is_arabic, normalize_name

# --- Arabic number words ----------------------------------------------------------------------

_UNITS = {
    "واحد": 1,
    "واحده": 1,
    "احدي": 1,
    "احد": 1,
    "اثنين": 2,
    "اثنتين": 2,
    "اثنان": 2,
    "اثنتان": 2,
    "ثنتين": 2,
    "اثني": 2,
    "اثنا": 2,
    "اثنتي": 2,
    "اثنتا": 2,
    "ثنتي": 2,
    "ثلاث": 3,
    "ثلاثه": 3,
    "ثلث": 3,
    "اربع": 4,
    "اربعه": 4,
    "خمس": 5,
    "خمسه": 5,
    "ست": 6,
    "سته": 6,
    "سبع": 7,
    "سبعه": 7,
    "ثمان": 8,
    "ثماني": 8,
    "ثمانيه": 8,
    "ثمنه": 8,
    "تسع": 9,
    "تسعه": 9,
}
_TEN = {"عشر": 10, "عشره": 10}
_TENS = {
    "عشرين": 20,
    "عشرون": 20,
    "ثلاثين": 30,
    "ثلاثون": 30,
    "ثلثين": 30,
    "اربعين": 40,
    "اربعون": 40,
    "خمسين": 50,
    "خمسون": 50,
    "ستين": 60,
    "ستون": 60,
    "سبعين": 70,
    "سبعون": 70,
    "ثمانين": 80,
    "ثمانون": 80,
    "ثمنين": 80,
    "تسعين": 90,
    "تسعون": 90,
}
_HUNDRED = {
    "مايه": 100,
    "ميه": 100,
    "ماه": 100,
    "مايتين": 200,
    "ميتين": 200,
    "مايتان": 200,
    "ميتان": 200,
}
_THOUSAND = {"الف": 1000, "الفين": 2000, "الفان": 2000, "الاف": 1000}
_SOME = {"بضع", "بضعه", "نيف", "نيفا"}  # "some" (3..9) / "a little over"
_OR = {"او"}
_BEFORE = {"قبل"}
_AFTER = {"بعد"}


def _number_word(token: str) -> tuple[str, int] | None:
    """(kind, value) of one folded token, or None. kind: unit|ten|tens|hundred|thousand|some."""
    bare = token[1:] if token.startswith("و") and token not in _UNITS else None
    forms = [token, bare]
    forms += [f[2:] for f in (token, bare) if f and f.startswith("ال") and len(f) > 3]
    for cand in forms:
        if not cand:
            continue
        if cand.isdigit():
            return ("digits", int(cand))
        if cand in _UNITS:
            return ("unit", _UNITS[cand])
        if cand in _TEN:
            return ("ten", 10)
        if cand in _TENS:
            return ("tens", _TENS[cand])
        if cand in _HUNDRED:
            return ("hundred", _HUNDRED[cand])
        if cand in _THOUSAND:
            return ("thousand", _THOUSAND[cand])
        if cand in _SOME:
            return ("some", 0)
        # ثلاثمائة, تسعمئة ... written as one word
        for hw in ("مايه", "ميه"):
            if cand.endswith(hw) and cand[: -len(hw)] in _UNITS:
                return ("hundred", _UNITS[cand[: -len(hw)]] * 100)
    return None


@dataclass(frozen=True)
class ParsedYear:
    """A year read from text. `value` is None when only a range is known (بضع وتسعين)."""

    value: int | None
    approximate: bool = False
    low: int | None = None
    high: int | None = None
    alternatives: tuple[int, ...] = ()  # "سنة سبع أو ثمان وعشرين" -> (27, 28)

    def candidates(self) -> list[int]:
        """Every year this reading allows (for lenient scoring)."""
        if self.alternatives:
            return list(self.alternatives)
        if self.low is not None and self.high is not None and self.high - self.low <= 20:
            return list(range(self.low, self.high + 1))
        return [self.value] if self.value is not None else []

    def shifted(self, offset: int) -> ParsedYear:
        def s(v: int | None) -> int | None:
            return None if v is None else v + offset

        return ParsedYear(
            s(self.value),
            self.approximate,
            s(self.low),
            s(self.high),
            tuple(a + offset for a in self.alternatives),
        )


def _parse_group(words: list[tuple[str, int, bool]]) -> tuple[int, int, bool] | None:
    """Sum one run of number words. Returns (total, units part, has 'some').

    A hundred/thousand directly after a unit without "و" multiplies it (ثلاث مائة = 300);
    with "و" it adds (ثلاث ومائة = 103)."""
    total = 0
    units = 0
    some = False
    prev_unit: int | None = None
    for kind, value, has_wa in words:
        if kind in ("hundred", "thousand") and prev_unit is not None and not has_wa:
            base = 100 if kind == "hundred" else 1000
            total += prev_unit * base - prev_unit
            units -= prev_unit
            prev_unit = None
            continue
        if kind == "some":
            some = True
            prev_unit = None
            continue
        total += value
        if kind == "unit":
            units += value
            prev_unit = value
        else:
            prev_unit = None
    if total == 0 and not some:
        return None
    return total, units, some


def parse_arabic_number(text: str) -> ParsedYear | None:
    """The first number written in words or digits in `text` (e.g. "سبع وأربعين ومائتين" -> 247).

    "بضع وتسعين" -> value None, approximate, range 93..99 (بضع is three to nine).
    "بعد المائتين" -> value 200, approximate, range 201..209; "قبل المائة" -> 91..99.
    "سبع أو ثمان وعشرين" -> alternatives (27, 28).
    """
    tokens = arabic_tokens(text)
    i = 0
    qualifier: str | None = None
    while i < len(tokens):
        tok = tokens[i].removeprefix("و")
        if tok in _BEFORE:
            qualifier = "before"
        elif tok in _AFTER:
            qualifier = "after"
        # "أحد" alone is "one of", not a number.
        if _number_word(tokens[i]) is not None and not (
            tokens[i] == "احد" and (i + 1 >= len(tokens) or _number_word(tokens[i + 1]) is None)
        ):
            break
        i += 1
    if i >= len(tokens):
        return None
    groups: list[list[tuple[str, int, bool]]] = [[]]
    while i < len(tokens):
        tok = tokens[i]
        if tok in _OR and groups[-1] and i + 1 < len(tokens) and _number_word(tokens[i + 1]):
            groups.append([])
            i += 1
            continue
        word = _number_word(tok)
        if word is None:
            break
        kind, value = word
        if kind == "digits":
            if groups[-1]:
                break
            groups[-1].append(("digits", value, False))
            i += 1
            break
        groups[-1].append((kind, value, tok.startswith("و") and tok not in _UNITS))
        i += 1
    parsed = [g for g in (_parse_group(grp) for grp in groups) if g is not None]
    if not parsed:
        return None
    # "سنة سبع عشرة أو بعدها" / "أو قبلها": the year or a little after/before it.
    if i + 1 < len(tokens) and tokens[i] in _OR:
        nxt = tokens[i + 1]
        if nxt.startswith("بعد"):
            qualifier = "or_after"
        elif nxt.startswith("قبل"):
            qualifier = "or_before"
    total, _units, some = parsed[-1]
    if len(parsed) > 1:
        # Alternatives share the last one's tens/hundreds: "سبع أو ثمان وعشرين" = 27 or 28.
        last_total, last_units, _ = parsed[-1]
        alts = []
        for t, _u, _s in parsed[:-1]:
            if t < 10 and last_units:  # shares tens and hundreds
                t += last_total - last_units
            elif t < 100 <= last_total:  # "إحدى عشرة أو اثنتي عشرة ومائتين": shares hundreds
                t += last_total // 100 * 100
            alts.append(t)
        alts.append(last_total)
        return ParsedYear(alts[0], True, min(alts), max(alts), tuple(dict.fromkeys(alts)))
    if some:
        return ParsedYear(None, True, total + 3, total + 9)
    if qualifier == "after":
        return ParsedYear(total, True, total + 1, total + 9)
    if qualifier == "before":
        return ParsedYear(total, True, total - 9, total - 1)
    if qualifier == "or_after":
        return ParsedYear(total, True, total, total + 9)
    if qualifier == "or_before":
        return ParsedYear(total, True, total - 9, total)
    return ParsedYear(total)


# Masculine and feminine forms: the Taqrib's women entries say "ماتت سنة ...".
_DEATH_CUE = re.compile(r"(?:^|\s)(?:مات|ماتت|توفي|توفيت|قتل|قتلت|استشهد|وفاته)(?:\s|$)")


def find_death_year(entry_text: str) -> ParsedYear | None:
    """The death year an entry states ("مات سنة ست وثلاثين", "مات بعد الخمسين"), as written:
    Ibn Hajar often omits the century (see `complete_century`)."""
    text = " ".join(arabic_tokens(entry_text))
    for m in _DEATH_CUE.finditer(text):
        window = text[m.end() : m.end() + 80].split()
        # Accept "مات سنة ...", "مات في سنة ...", "مات بعد/قبل ...", "مات بعد سنة ...".
        head = window[:3]
        if not any(w in ("سنه", "بعد", "قبل") or _number_word(w) for w in head):
            continue
        parsed = parse_arabic_number(" ".join(window[:12]))
        if parsed is not None:
            return parsed
    return None


def complete_century(year: ParsedYear, generation: int | None) -> ParsedYear:
    """Add the century Ibn Hajar leaves out, by his own rule (Taqrib, introduction): narrators of
    generations 1-2 died before 100, 3-8 after 100, 9-12 after 200. Years >= 100 are kept."""
    if generation is None:
        return year
    known = [*year.candidates(), *(v for v in (year.value, year.low) if v is not None)]
    if not known or max(known) >= 100:
        return year
    offset = 0 if generation <= 2 else 100 if generation <= 8 else 200
    return year.shifted(offset)


# --- years in English / digits ----------------------------------------------------------------

_APPROX_EN = re.compile(r"\b(?:c|ca|circa|about|around|approx(?:imately)?)\b\.?", re.I)
_YEAR_EN = re.compile(r"(?<!\d)(\d{3,4})(s?)(?!\d)")


def parse_year(text: str | int | None) -> ParsedYear | None:
    """A year from any text: English dates ("12 March 1955", "c. 1790", "1790s"), digits in
    either script, or Arabic number words."""
    if text is None:
        return None
    if isinstance(text, int):
        return ParsedYear(text)
    folded = fold_arabic(str(text))
    m = _YEAR_EN.search(folded)
    if m:
        year = int(m.group(1))
        if m.group(2):  # a decade
            return ParsedYear(year, True, year, year + 9)
        return ParsedYear(year, bool(_APPROX_EN.search(folded)))
    if is_arabic(folded):
        return parse_arabic_number(folded)
    # A bare short number is a year ("36"); "12 January" has a day but no year.
    bare = folded.strip()
    return ParsedYear(int(bare)) if bare.isdigit() else None


# --- grades and generations -------------------------------------------------------------------

# Folded token sequences -> the biography task's grade enum. Earliest phrase in the text wins.
_GRADE_PHRASES: list[tuple[tuple[str, ...], str]] = [
    (("كذاب",), "liar"),
    (("وضاع",), "liar"),
    (("متهم", "بالكذب"), "liar"),
    (("متروك",), "abandoned"),
    (("متروكه",), "abandoned"),
    (("منكر", "الحديث"), "abandoned"),
    (("صحابي",), "companion"),
    (("صحابيه",), "companion"),
    (("له", "صحبه"), "companion"),
    (("له", "رويه"), "companion"),
    (("صحبه",), "companion"),
    (("احد", "العشره"), "companion"),
    (("ام", "المومنين"), "companion"),
    (("بدري",), "companion"),
    (("مجهول",), "unknown"),
    (("مجهوله",), "unknown"),
    (("مستور",), "unknown"),
    (("مستوره",), "unknown"),
    (("لا", "يعرف"), "unknown"),
    (("لا", "تعرف"), "unknown"),
    (("ضعيف",), "weak"),
    (("ضعيفه",), "weak"),
    (("لين",), "weak"),
    (("لين", "الحديث"), "weak"),
    (("ليس", "بالقوي"), "weak"),
    (("مقبول",), "acceptable"),
    (("مقبوله",), "acceptable"),
    (("صدوق",), "truthful"),
    (("صدوقه",), "truthful"),
    (("لا", "باس", "به"), "truthful"),
    (("ليس", "به", "باس"), "truthful"),
    (("ثقه",), "trustworthy"),
    (("ثبت",), "trustworthy"),
    (("حجه",), "trustworthy"),
    (("امام",), "trustworthy"),
    (("الامام",), "trustworthy"),
]
GRADE_VALUES = (
    "companion",
    "trustworthy",
    "truthful",
    "acceptable",
    "weak",
    "unknown",
    "abandoned",
    "liar",
    "not_stated",
)


def grade_from_text(text: str | None) -> str | None:
    """Map a grade phrase (ثقة ثبت, صدوق له أوهام, لين الحديث, متروك ...) onto the task's enum.

    Looks for the earliest grade phrase in the text, so an entry's own verdict wins over words
    later in it. An English enum value passes through. None when no grade is stated."""
    if not text:
        return None
    plain = text.strip().lower()
    if plain in GRADE_VALUES:
        return plain
    tokens = arabic_tokens(text)
    best: tuple[int, str] | None = None
    for phrase, grade in _GRADE_PHRASES:
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i : i + n]) == phrase:
                if best is None or i < best[0]:
                    best = (i, grade)
                break
    return best[1] if best else None


_ORDINALS = {
    "الاولي": 1,
    "الثانيه": 2,
    "الثالثه": 3,
    "الرابعه": 4,
    "الخامسه": 5,
    "السادسه": 6,
    "السابعه": 7,
    "الثامنه": 8,
    "التاسعه": 9,
    "العاشره": 10,
}
_TABAQA = re.compile(
    r"(?:^|\s)(?P<min>من\s+)?(?:(?:كبار|صغار|اواسط|اوساط)\s+)?"
    r"(الاولي|الثانيه|الثالثه|الرابعه|الخامسه|السادسه|السابعه|الثامنه|التاسعه|العاشره|الحاديه)"
    r"(\s+عشره)?(?=\s|$)"
)


def generation_from_text(text: str | None, *, require_min: bool = True) -> int | None:
    """Ibn Hajar's generation (tabaqa) 1-12 from "من الثامنة", "من كبار التاسعة", "من الحادية
    عشرة"; a Companion is generation 1. require_min: only "من ..." phrases count (in an entry's
    running text); off for a bare value such as the CSV's "العاشرة"."""
    if not text:
        return None
    folded = " ".join(arabic_tokens(text))
    for m in _TABAQA.finditer(folded):
        if require_min and not m.group("min"):
            continue
        word, teen = m.group(2), m.group(3)
        if word == "الحاديه":
            if teen:
                return 11
            continue
        if teen and word == "الثانيه":
            return 12
        return _ORDINALS[word]
    if grade_from_text(text) == "companion":
        return 1
    return None


def normalize_kunya(kunya: str | None) -> str:
    """A comparison key for a kunya: the name key with the case forms أبا/أبي folded to أبو
    ("يكنى أبا عبد الملك" names the kunya أبو عبد الملك)."""
    tokens = normalize_name(kunya).split()
    if tokens and tokens[0] in ("ابا", "ابي"):
        tokens[0] = "ابو"
    return " ".join(tokens)


_KUNYA = re.compile(r"(?:^|\s)(ابو|ابا)\s+((?:عبد\s+)?\S+)")


def find_kunya(entry_text: str) -> str | None:
    """The subject's kunya as stated in an entry ("أبو علي", "يكنى أبا عبد الملك" -> ابو عبد الملك);
    an "أبي" after "بن" is part of the lineage, not a kunya."""
    folded = " ".join(arabic_tokens(entry_text))
    for m in _KUNYA.finditer(folded):
        return f"ابو {m.group(2)}"
    return None
