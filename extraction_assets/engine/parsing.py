"""The one place that parses answers.

`parse_answer` never raises. It attributes an answer to a document only when the answer was
keyed under that document's id exactly once; everything else becomes a per-id reason.

Truncated or otherwise broken JSON: the answer object is read member by member, and members
that were complete before the break are kept (they were keyed and closed, so their
attribution is as sure as in a whole answer); the rest get a reason and are retried. An id
that occurs twice anywhere we could read is never trusted.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
_DECODER_WS = re.compile(r"\s*")


def _skip_ws(text: str, pos: int) -> int:
    """The index of the first non-whitespace character at or after `pos`."""
    match = _DECODER_WS.match(text, pos)  # `\s*` always matches
    return match.end() if match else pos


@dataclass
class ParsedAnswer:
    ok: dict[str, dict[str, Any]] = field(default_factory=dict)  # doc id -> validated fields
    errors: dict[str, str] = field(default_factory=dict)  # doc id -> why it has no answer
    unknown_ids: list[str] = field(default_factory=list)  # keys that are not in the pack
    duplicated_ids: list[str] = field(default_factory=list)
    problem: str | None = None  # what was wrong with the answer as a whole, if anything


class _Obj(dict[str, Any]):
    """A decoded JSON object that remembers keys it saw more than once."""

    dup_keys: frozenset[str] = frozenset()


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj()
    dups: set[str] = set()
    for key, value in pairs:
        if key in obj:
            dups.add(key)
        obj[key] = value
    if dups:
        obj.dup_keys = frozenset(dups)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook)


def _strip_wrapping(raw: str) -> str:
    text = raw.strip()
    if text.startswith("```") or ("```" in text and not text.startswith(("{", "["))):
        m = _FENCE.search(text)
        if m:
            text = m.group(1).strip()
    if text and text[0] not in "{[":
        starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        if starts:
            text = text[min(starts) :]
    return text


def _members_prefix(text: str) -> tuple[list[tuple[str, Any]], list[str], str | None]:
    """Read a JSON object member by member until the end or the first error.

    Returns (complete members, keys seen including the one whose value broke, error).
    """
    members: list[tuple[str, Any]] = []
    keys_seen: list[str] = []
    pos = _skip_ws(text, 0)
    if not text.startswith("{", pos):
        return members, keys_seen, "answer is not a JSON object"
    pos = _skip_ws(text, pos + 1)
    if text.startswith("}", pos):
        return members, keys_seen, None
    while True:
        try:
            key, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            return members, keys_seen, f"invalid JSON at char {pos}"
        if not isinstance(key, str):
            return members, keys_seen, f"invalid JSON at char {pos}"
        keys_seen.append(key)
        pos = _skip_ws(text, pos)
        if not text.startswith(":", pos):
            return members, keys_seen, f"invalid JSON at char {pos}"
        pos = _skip_ws(text, pos + 1)
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            return members, keys_seen, f"invalid or truncated JSON in the answer for {key!r}"
        members.append((key, value))
        pos = _skip_ws(text, pos)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("}", pos):
            rest = text[pos + 1 :].strip()
            trailing = f"text after the JSON object: {rest[:40]!r}" if rest else None
            return members, keys_seen, trailing
        return members, keys_seen, f"invalid JSON at char {pos}"


def _members_from_list(items: list[Any]) -> tuple[list[tuple[str, Any]], str | None]:
    """Tolerate [{"id": ..., ...fields}, ...]: each element keyed by its own "id" field."""
    members = []
    skipped = 0
    for element in items:
        if isinstance(element, dict) and isinstance(element.get("id"), str):
            if "id" in getattr(element, "dup_keys", ()):
                skipped += 1  # which of its ids is the real one is unknowable
                continue
            fields = _Obj({k: v for k, v in element.items() if k != "id"})
            fields.dup_keys = getattr(element, "dup_keys", frozenset())
            members.append((element["id"], fields))
        else:
            skipped += 1
    return members, (f"{skipped} list elements without an id" if skipped else None)


def _validate(
    value: Any, item_model: type[pydantic.BaseModel]
) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(value, dict):
        return None, f"answer is a {type(value).__name__}, not an object"
    dups: frozenset[str] = getattr(value, "dup_keys", frozenset())
    if dups:
        return None, f"answer repeats field(s) {sorted(dups)}"
    try:
        model = item_model.model_validate(dict(value))
    except pydantic.ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '<item>'}: {e['msg']}"
            for e in exc.errors()[:3]
        ]
        return None, "validation failed: " + "; ".join(parts)
    return model.model_dump(mode="json"), None


def parse_answer(
    raw: str | None, pack_ids: Sequence[str], item_model: type[pydantic.BaseModel]
) -> ParsedAnswer:
    """Per pack id: validated fields, or the reason there are none. Never raises."""
    try:
        return _parse(raw, pack_ids, item_model)
    except Exception as exc:  # defensive: a parser bug must not lose the whole run
        # The traceback goes into the stored error so that the bug can be found from the store.
        trace = "".join(traceback.format_exception(exc)).rstrip()
        problem = f"parser error: {type(exc).__name__}: {exc}\n{trace}"
        return ParsedAnswer(errors={i: problem for i in pack_ids}, problem=problem)


def _parse(
    raw: str | None, pack_ids: Sequence[str], item_model: type[pydantic.BaseModel]
) -> ParsedAnswer:
    out = ParsedAnswer()
    text = _strip_wrapping(raw or "")
    if not text:
        out.problem = "empty answer"
        out.errors = {i: "empty answer" for i in pack_ids}
        return out

    keys_seen: list[str]
    if text.startswith("["):
        try:
            decoded = _DECODER.decode(text)
        except json.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, list):
            out.problem = "invalid JSON list"
            out.errors = {i: out.problem for i in pack_ids}
            return out
        members, out.problem = _members_from_list(decoded)
        keys_seen = [k for k, _ in members]
    else:
        members, keys_seen, out.problem = _members_prefix(text)

    wanted = set(pack_ids)
    counts: dict[str, int] = {}
    for key in keys_seen:
        counts[key] = counts.get(key, 0) + 1
    out.duplicated_ids = sorted(k for k, n in counts.items() if n > 1)
    out.unknown_ids = sorted(k for k in counts if k not in wanted)
    values = {k: v for k, v in members if counts[k] == 1 and k in wanted}

    for doc_id in pack_ids:
        if counts.get(doc_id, 0) > 1:
            out.errors[doc_id] = "id answered more than once"
        elif doc_id in values:
            fields, reason = _validate(values[doc_id], item_model)
            if fields is not None:
                out.ok[doc_id] = fields
            else:
                out.errors[doc_id] = reason or "invalid answer"
        elif doc_id in counts:
            out.errors[doc_id] = out.problem or "answer incomplete"
        else:
            out.errors[doc_id] = (
                f"no answer for this id ({out.problem})" if out.problem else "no answer for this id"
            )
    return out
