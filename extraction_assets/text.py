"""Text keys shared by the engine and the evaluation: Arabic folding, name normalisation, content
tokens, script detection.

Arabic text is compared after stripping diacritics and folding letter variants that editions
write differently (hamza seats, alef maqsura, ta marbuta, ابن/بن). Ground floor: imports nothing
from this project, so the engine's contamination detector and the evaluation's scoring both use
it without importing each other.
"""

from __future__ import annotations

import re
import unicodedata

# --- Arabic letters ---------------------------------------------------------------------------

_TASHKEEL = re.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")  # + tatweel
_ARABIC_FOLD = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ئ": "ي",
        "ؤ": "و",
        "ة": "ه",
        "ء": "",
        "ک": "ك",
        "ی": "ي",
    }
)
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Punctuation of both scripts, brackets of editorial additions, quotes.
_PUNCT = re.compile(r"[\"'`«»“”‘’ʿʾ\[\]{}()<>.,;:!?،؛؟*/\\|_~=+#-]+")
_ARABIC_CHAR = re.compile(r"[\u0600-\u06FF]")


def fold_arabic(text: str) -> str:
    """Arabic letters without diacritics/tatweel, variant letters folded, digits to Latin."""
    text = unicodedata.normalize("NFC", text)
    return _TASHKEEL.sub("", text).translate(_ARABIC_FOLD).translate(_DIGITS)


def arabic_tokens(text: str) -> list[str]:
    return _PUNCT.sub(" ", fold_arabic(text)).split()


# --- names ------------------------------------------------------------------------------------

# "son of" in its written forms; all become one token so "ibn Hanbal" == "b. Hanbal" == "bin Hanbal".
_SON_OF = {"ابن": "بن", "bin": "ibn", "b": "ibn", "ben": "ibn", "bn": "ibn", "ibn": "ibn"}
# Tokens that carry no identity on their own (excluded when judging a partial name match).
_LINK_TOKENS = {"بن", "بنت", "ابو", "ابي", "ابا", "ام", "ibn", "bint", "abu", "abi", "al", "el"}


def normalize_name(name: str | None) -> str:
    """A comparison key for a personal or place name, in Arabic or Latin script.

    Arabic: diacritics and tatweel stripped, alef/ya/ta-marbuta/hamza variants folded, ابن -> بن.
    Latin: NFKD without combining marks, casefolded, ibn/bin/b. unified, "al-X" -> "al x".
    Punctuation dropped, whitespace collapsed.
    """
    if not name:
        return ""
    text = fold_arabic(name)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("ß", "ss")
    tokens = [_SON_OF.get(t, t) for t in _PUNCT.sub(" ", text).split()]
    return " ".join(tokens)


def content_tokens(key: str) -> list[str]:
    return [t for t in key.split() if t not in _LINK_TOKENS]


def names_match(predicted: str | None, gold: str | None) -> bool:
    """Same person (or place) name: equal keys, or the shorter name (at least two identifying
    tokens) contained token-for-token in the longer ("Willi Schneider" in "Wilfried Willi
    Schneider"). A lone first name never matches a full name."""
    p, g = normalize_name(predicted), normalize_name(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    short, long_ = sorted((p, g), key=len)
    short_content = content_tokens(short)
    if len(short_content) < 2:
        return False
    long_tokens = set(long_.split())
    return all(t in long_tokens for t in short.split())


def is_arabic(text: str) -> bool:
    return bool(_ARABIC_CHAR.search(text or ""))
