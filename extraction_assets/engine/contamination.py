"""Which answers of a pack not to trust: content borrowed from a pack-mate, and injection-like text.

Packing many documents into one prompt lets a model (or a hostile document) mix items. After a
pack's answers are validated, `suspicious_items` names the ok items whose answer should be made
again with the document alone in the prompt (where there is nothing to borrow from):

- **borrowed**: a string value of the answer, or a name-like token in it, occurs in a sibling
  document's text but not in the item's own text. Candidates are every whole string value (names,
  places, phrases) and, inside values, Latin tokens of >= 4 letters written with a capital,
  Arabic-script tokens of >= 4 letters, and lower-case tokens that some text of the pack writes
  with a capital (a name the model lower-cased). Other lower-case Latin words are not
  candidates: an English summary of an Arabic entry uses "narrator" or "trustworthy" whether or
  not an English sibling does. Only content ABSENT from the item's own text counts (a teacher
  named in two entries of the same dictionary is normal), and "absent" is strict: a value inside
  a longer word of the own text is the item's own (Arabic clitics: "البصرة" in "بالبصرة"). Words
  of the prompt's static part (instructions, field guide) and the schema's enum values are never
  evidence, nor is a short list of capitalised English function words ("After", "During").
- **injection**: the item's own text addresses the model ("ignore previous instructions",
  "disregard the above", "you are now", "system prompt") or imitates the item delimiters of
  engine/prompts.py (`<item id=... key=...>` / `</item key=...>`). Such a text may forge a
  sibling's item: a sibling whose id appears in a forged item tag is flagged too. The hostile
  item itself is re-run alone so that what is stored for it never depends on its pack-mates.

A false positive costs one extra call of one item; a miss stores a borrowed value, so the rules
lean to flagging. Comparison keys: NFC, Arabic diacritics and letter variants folded, case folded, punctuation
dropped, whole-token matching (`text_key`: `extraction_assets.text.normalize_name`, the
evaluation's name key too). The evaluation's
contamination measure uses `find_borrowed` too (one detector).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extraction_assets.text import is_arabic
from extraction_assets.text import normalize_name as text_key

# Capitalised at the start of an English sentence, common in any biography or translation.
_FUNCTION_WORDS = frozenset(
    {
        "about",
        "above",
        "according",
        "after",
        "also",
        "although",
        "among",
        "another",
        "because",
        "been",
        "before",
        "being",
        "between",
        "born",
        "both",
        "came",
        "could",
        "died",
        "during",
        "each",
        "either",
        "every",
        "first",
        "from",
        "have",
        "having",
        "here",
        "however",
        "into",
        "known",
        "later",
        "many",
        "most",
        "much",
        "near",
        "only",
        "other",
        "over",
        "since",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "though",
        "through",
        "under",
        "upon",
        "very",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whose",
        "with",
        "within",
        "without",
        "would",
        "year",
        "years",
    }
)

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+)?"
    r"(?:previous|prior|above|earlier|preceding|your)\s+(?:instructions?|prompts?|rules?|text)\b"
    r"|\byou\s+are\s+now\b|\bsystem\s+prompt\b|\bnew\s+instructions?\s*:"
    r"|تجاهل\s+(?:جميع\s+|كل\s+)?(?:التعليمات|الأوامر)",
    re.IGNORECASE,
)
# The delimiter format of engine/prompts.py: <item id="ID" key="KEY"> ... </item key="KEY">.
_DELIMITER = re.compile(r"</?\s*item\b[^>]*\b(?:id|key)\s*=", re.IGNORECASE)
_FORGED_ID = re.compile(r"<\s*item\b[^>]*\bid\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


@dataclass(frozen=True)
class Borrowed:
    value: str  # the answer's value (or token) that was found elsewhere
    found_in: str  # the sibling document's id


def mentions(text_key_: str, value_key: str) -> bool:
    """`value_key` occurs in `text_key_` as whole tokens (both already `text_key`-normalised)."""
    return f" {value_key} " in f" {text_key_} "


def find_borrowed(
    candidates: Iterable[str],
    own_key: str,
    sibling_keys: Mapping[str, str],
    ignore: Callable[[str], bool] | None = None,
    min_chars: int = 3,
    lenient_own: bool = False,
) -> Borrowed | None:
    """The first candidate found in a sibling's text but not in the item's own text, or None.

    `own_key` and `sibling_keys` (doc id -> key) are `text_key` of the texts; candidates are raw
    strings; `ignore(candidate)` skips values that are not evidence (e.g. grade words).
    `lenient_own`: a value inside a longer word of the own text counts as the item's own
    (Arabic clitics: "البصرة" in "بالبصرة"), so only values clearly absent from it are flagged."""
    for value in candidates:
        key = text_key(value)
        own = key in own_key if lenient_own else mentions(own_key, key)
        if len(key) < min_chars or own or (ignore and ignore(value)):
            continue
        for sibling, sibling_key in sibling_keys.items():
            if mentions(sibling_key, key):
                return Borrowed(value, sibling)
    return None


def string_values(value: Any) -> list[str]:
    """Every non-empty string inside an answer (dict values, list items, nested)."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in string_values(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in string_values(v)]
    return []


def capitalised_words(texts: Iterable[str]) -> set[str]:
    """Casefolded words written with a capital in `texts` (the names of a pack's documents)."""
    return {w.casefold() for text in texts for w in _WORD.findall(text) if w[0].isupper()}


def answer_candidates(answer: Mapping[str, Any], names: Collection[str] = ()) -> list[str]:
    """Whole string values, then the name-like tokens inside them (see the module docstring).

    `names`: casefolded words capitalised in the pack's texts; a lower-case token of the answer
    that is one of them counts too (a model lower-casing a sibling's name)."""
    values = list(dict.fromkeys(string_values(answer)))
    tokens = []
    for value in values:
        for word in _WORD.findall(value):
            if sum(c.isalpha() for c in word) < 4 or word.casefold() in _FUNCTION_WORDS:
                continue
            if is_arabic(word) or word[0].isupper() or word.casefold() in names:
                tokens.append(word)
    return values + [t for t in dict.fromkeys(tokens) if t not in values]


def schema_words(schema: Any) -> list[str]:
    """The enum values of a JSON schema (relation or grade words come from the schema, not from
    a sibling)."""
    if isinstance(schema, Mapping):
        own = [str(v) for v in schema.get("enum", []) if isinstance(v, str)]
        return own + [w for v in schema.values() for w in schema_words(v)]
    if isinstance(schema, list):
        return [w for v in schema for w in schema_words(v)]
    return []


def injection_reason(text: str) -> str | None:
    """Why a document's own text looks like a prompt injection, or None."""
    if _DELIMITER.search(text):
        return "imitates the item delimiters"
    match = _INJECTION.search(text)
    if match:
        return f"addresses the model ({match.group(0)!r})"
    return None


def forged_ids(text: str) -> set[str]:
    """Ids named in forged item tags of a document."""
    return set(_FORGED_ID.findall(text))


def suspicious_items(
    texts: Mapping[str, str],
    answers: Mapping[str, Mapping[str, Any]],
    ignore_words: str = "",
) -> dict[str, str]:
    """Items of one pack to re-run alone: doc id -> reason.

    `texts`: every document of the pack (id -> text); `answers`: the pack's valid answers;
    `ignore_words`: text whose words are never evidence (the prompt's static part and the
    schema's enum values, see `schema_words`); a value made only of such words is skipped. A
    pack of one has no sibling and nothing to re-run."""
    if len(texts) < 2:
        return {}
    keys = {doc_id: text_key(text) for doc_id, text in texts.items()}
    ignored = set(text_key(ignore_words).split())
    names = capitalised_words(texts.values())

    def not_evidence(value: str) -> bool:  # every word of it is in the prompt's static part
        return set(text_key(value).split()) <= ignored

    out: dict[str, str] = {}
    for doc_id, text in texts.items():
        reason = injection_reason(text)
        if reason is None:
            continue
        if doc_id in answers:
            out[doc_id] = f"its text {reason}"
        for victim in forged_ids(text) & set(answers) - {doc_id}:
            out.setdefault(victim, f"its item is forged by {doc_id}")
    for doc_id, answer in answers.items():
        if doc_id in out or doc_id not in keys:
            continue
        siblings = {o: k for o, k in keys.items() if o != doc_id}
        hit = find_borrowed(
            answer_candidates(answer, names), keys[doc_id], siblings, not_evidence, lenient_own=True
        )
        if hit is not None:
            out[doc_id] = f"answer has {hit.value[:60]!r} from {hit.found_in}, not in its own text"
    return out
