"""Scoring predictions against gold: per field, overall and per language; and cross-item
contamination (an answer naming someone who appears only in another document of its pack).

Only documents with a gold value for a field are scored on it: the gold sets are incomplete
annotations, so a prediction where gold is silent is neither right nor wrong. A document
without a valid answer counts as wrong on every field it has gold for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import extraction_assets.engine.contamination as detector
from extraction_assets.evaluation.gold import GoldDocument
from extraction_assets.evaluation.normalize import grade_from_text, normalize_kunya
from extraction_assets.text import names_match, normalize_name


@dataclass(frozen=True)
class FieldSpec:
    """How one gold field is scored against the task's answer."""

    gold_field: str
    task_field: str  # the answer field it is compared with
    # Built-in gold sets: "name" | "year" | "enum" | "set" (names) | "kunya" (see _kunya_hit).
    # Any task (type-driven, extraction_assets.evaluation.task_gold): "exact" | "text"
    # (normalised) | "items" (set F1 over list elements) | "object" (every gold key matches).
    kind: str
    year_tolerance: int = 0

    @property
    def is_set(self) -> bool:
        return self.kind in ("set", "items")


REDOCRED_FIELDS = (
    FieldSpec("name", "name", "name"),
    FieldSpec("birth_year", "birth_year", "year"),
    FieldSpec("death_year", "death_year", "year"),
    FieldSpec("birth_place", "birth_place", "name"),
    FieldSpec("death_place", "death_place", "name"),
    FieldSpec("family", "family", "set"),
)
# Death years in the narrator table combine several reports: +-1 and any candidate count.
TAQRIB_FIELDS = (
    FieldSpec("grade", "grade", "enum"),
    FieldSpec("death_year", "death_year", "year", year_tolerance=1),
    FieldSpec("kunya", "kunya", "kunya"),
    FieldSpec("generation", "generation", "enum"),
)
# The bundled sample's gold (extraction_assets/sample_data/gold): English and Arabic entries
# whose full years are written out, so no tolerance.
SAMPLE_FIELDS = (
    *REDOCRED_FIELDS[:5],
    FieldSpec("grade", "grade", "enum"),
    FieldSpec("kunya", "kunya", "kunya"),
    FieldSpec("generation", "generation", "enum"),
)
FIELD_SPECS = {"redocred": REDOCRED_FIELDS, "taqrib": TAQRIB_FIELDS, "sample": SAMPLE_FIELDS}


@dataclass
class FieldScore:
    field: str
    kind: str
    n: int = 0  # documents with gold for this field
    correct: int = 0  # exact-match fields
    tp: int = 0  # set fields
    n_pred: int = 0
    n_gold: int = 0

    @property
    def accuracy(self) -> float | None:
        if self.kind == "set":
            return None
        return self.correct / self.n if self.n else None

    @property
    def precision(self) -> float | None:
        return self.tp / self.n_pred if self.kind == "set" and self.n_pred else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.n_gold if self.kind == "set" and self.n_gold else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision or 0.0, self.recall
        if self.kind != "set" or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def score(self) -> float | None:
        """The field's headline number: accuracy, or F1 for a set."""
        return self.f1 if self.kind == "set" else self.accuracy

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("accuracy", "precision", "recall", "f1", "score"):
            out[key] = getattr(self, key)
        return out


def _candidates(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _name_hit(predicted: Any, gold: Any) -> bool:
    if not isinstance(predicted, str) or not predicted.strip():
        return False
    # "Mediaș, Transylvania" names Mediaș: the first comma part may match on its own.
    forms = {predicted, predicted.split(",")[0]}
    return any(names_match(f, g) for f in forms for g in _candidates(gold))


def _year_hit(predicted: Any, gold: Any, tolerance: int) -> bool:
    if isinstance(predicted, bool) or not isinstance(predicted, int):
        return False
    return any(abs(predicted - int(g)) <= tolerance for g in _candidates(gold))


def _kunya_hit(predicted: Any, gold: Any) -> bool:
    """The answer is the gold kunya, or starts with it token for token: "أبو الهياج الأسدي"
    names the kunya أبو الهياج (with a nisba after it), "أبو عبد" does not name أبو عبد الله."""
    if not isinstance(predicted, str):
        return False
    tokens = normalize_kunya(predicted).split()
    for g in _candidates(gold):
        want = normalize_kunya(g).split()
        if want and tokens[: len(want)] == want:
            return True
    return False


def _member_names(member: Any) -> list[str]:
    """Names of a gold set member ({"aliases": [...]}, a list of aliases, or a string)."""
    if isinstance(member, dict):
        return list(member.get("aliases") or [member.get("name", "")])
    return _candidates(member)


def _answer_names(items: Any) -> list[str]:
    out = []
    for item in items or []:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip():
            out.append(name)
    return out


def match_sets(predicted: Sequence[str], gold: Sequence[Any]) -> int:
    """True positives: gold members matched by distinct predicted names (greedy, in order)."""
    used: set[int] = set()
    tp = 0
    for member in gold:
        aliases = _member_names(member)
        for i, name in enumerate(predicted):
            if i not in used and any(names_match(name, a) for a in aliases):
                used.add(i)
                tp += 1
                break
    return tp


_TYPED_KINDS = ("exact", "text", "object", "items")


def value_match(predicted: Any, gold: Any, *, text: bool = True) -> bool:
    """A predicted value against a gold value, for any task.

    A gold list holds alternatives when the prediction is a single value (any one matches)
    and is compared as a set when the prediction is a list; a gold object matches when each of
    its keys matches (keys it leaves out are not scored); strings match after normalisation
    (case, accents, punctuation, spacing, Arabic letter forms) unless `text` is False; numbers
    by value; booleans and null exactly."""
    if isinstance(gold, dict):
        return isinstance(predicted, dict) and all(
            value_match(predicted.get(k), v, text=text) for k, v in gold.items()
        )
    if isinstance(gold, list | tuple):
        if isinstance(predicted, list | tuple):
            return len(predicted) == len(gold) and match_items(predicted, gold, text=text) == len(
                gold
            )
        return any(value_match(predicted, g, text=text) for g in gold)
    if isinstance(gold, str):
        if not isinstance(predicted, str):
            return False
        return normalize_name(predicted) == normalize_name(gold) if text else predicted == gold
    if isinstance(gold, bool) or gold is None:
        return predicted is gold
    if isinstance(gold, int | float):
        return (
            isinstance(predicted, int | float)
            and not isinstance(predicted, bool)
            and float(predicted) == float(gold)
        )
    return bool(predicted == gold)


def match_items(predicted: Sequence[Any], gold: Sequence[Any], *, text: bool = True) -> int:
    """True positives of a list answer: gold members matched by distinct predicted elements
    (greedy, in gold order; a gold member may list alternatives, see value_match)."""
    used: set[int] = set()
    tp = 0
    for member in gold:
        for i, element in enumerate(predicted):
            if i not in used and value_match(element, member, text=text):
                used.add(i)
                tp += 1
                break
    return tp


def _distinct(values: Any) -> list[Any]:
    if not isinstance(values, list | tuple):
        return []
    seen: dict[str, Any] = {}
    for v in values:  # the same element twice (after normalisation) is one answer
        key = (
            normalize_name(v)
            if isinstance(v, str)
            else json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
        )
        seen.setdefault(key, v)
    return list(seen.values())


def score_field(
    spec: FieldSpec,
    docs: Iterable[GoldDocument],
    predictions: Mapping[str, Mapping[str, Any] | None],
) -> FieldScore:
    score = FieldScore(spec.gold_field, "set" if spec.is_set else "exact")
    for doc in docs:
        gold = doc.gold.get(spec.gold_field, doc.uncovered.get(spec.gold_field))
        # A user's gold states null or [] on purpose ("the text says none"): scored. The
        # built-in sets are incomplete annotations: there, no value means not annotated.
        stated = spec.kind in _TYPED_KINDS and spec.gold_field in doc.gold
        if (gold is None or gold == []) and not stated:
            continue
        answer = predictions.get(doc.doc_id) or {}
        predicted = answer.get(spec.task_field)
        score.n += 1
        if spec.kind == "set":
            names = list(dict.fromkeys(_answer_names(predicted)))
            score.n_pred += len(names)
            score.n_gold += len(gold or [])
            score.tp += match_sets(names, gold or [])
        elif spec.kind == "name":
            score.correct += _name_hit(predicted, gold)
        elif spec.kind == "year":
            score.correct += _year_hit(predicted, gold, spec.year_tolerance)
        elif spec.kind == "enum":
            score.correct += any(predicted == g for g in _candidates(gold))
        elif spec.kind == "kunya":
            score.correct += _kunya_hit(predicted, gold)
        elif spec.kind == "items":
            elements = _distinct(predicted)
            members = gold if isinstance(gold, list) else [gold]
            score.n_pred += len(elements)
            score.n_gold += len(members)
            score.tp += match_items(elements, members)
        elif spec.kind in ("exact", "text", "object"):
            score.correct += value_match(predicted, gold, text=spec.kind != "exact")
        else:
            raise ValueError(f"unknown scoring kind {spec.kind!r} for field {spec.gold_field}")
    return score


def covered_specs(
    specs: Sequence[FieldSpec], task_fields: Iterable[str]
) -> tuple[list[FieldSpec], list[str]]:
    """(specs the task can answer, gold fields it has no field for)."""
    fields = set(task_fields)
    covered = [s for s in specs if s.task_field in fields]
    missing = [s.gold_field for s in specs if s.task_field not in fields]
    return covered, missing


def score_documents(
    docs: Sequence[GoldDocument],
    predictions: Mapping[str, Mapping[str, Any] | None],
    specs: Sequence[FieldSpec],
) -> dict[str, Any]:
    """Per-field scores overall and per language, plus answer coverage."""

    def block(subset: Sequence[GoldDocument]) -> dict[str, Any]:
        fields = {s.gold_field: score_field(s, subset, predictions).as_dict() for s in specs}
        headline = [f["score"] for f in fields.values() if f["score"] is not None]
        answered = sum(1 for d in subset if predictions.get(d.doc_id))
        return {
            "n_documents": len(subset),
            "answered": answered,
            "mean_score": sum(headline) / len(headline) if headline else None,
            "fields": fields,
        }

    langs = sorted({d.lang for d in docs})
    return {
        "overall": block(docs),
        "by_language": {lang: block([d for d in docs if d.lang == lang]) for lang in langs},
    }


# --- contamination ----------------------------------------------------------------------------

_NAME_FIELDS = ("name", "kunya", "birth_place", "death_place")
_NAME_LIST_FIELDS = ("other_names", "teachers", "students", "family")


def answer_names(answer: Mapping[str, Any]) -> list[str]:
    """Every name or place string in a biography answer."""
    out = [answer[f] for f in _NAME_FIELDS if isinstance(answer.get(f), str)]
    for f in _NAME_LIST_FIELDS:
        out += _answer_names(answer.get(f))
    return [n for n in out if n.strip()]


@dataclass
class ContaminationReport:
    answers: int = 0
    contaminated: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.contaminated / self.answers if self.answers else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "contaminated": self.contaminated,
            "rate": self.rate,
            "examples": self.examples[:10],
        }


def contamination(
    packs: Sequence[Sequence[str]],
    texts: Mapping[str, str],
    predictions: Mapping[str, Mapping[str, Any] | None],
) -> ContaminationReport:
    """Answers that name someone (or somewhere) found only in ANOTHER document of the same pack.

    Names are compared as normalised whole-token sequences; names shorter than three
    characters and grade words are ignored (too common to attribute to one document). The
    matching is the engine's own detector (`engine.contamination.find_borrowed`), applied here
    to the answer's name fields only."""
    report = ContaminationReport()
    keys = {doc_id: normalize_name(text) for doc_id, text in texts.items()}  # = text_key
    for pack in packs:
        for doc_id in pack:
            answer = predictions.get(doc_id)
            if not answer:
                continue
            report.answers += 1
            others = {o: keys[o] for o in pack if o != doc_id and o in keys}
            # Grade words ("صدوق") in a name field are a wrong answer, not a borrowed name.
            hit = detector.find_borrowed(
                answer_names(answer),
                keys.get(doc_id, ""),
                others,
                ignore=lambda text: bool(grade_from_text(text)),
            )
            if hit is not None:
                report.contaminated += 1
                report.examples.append(
                    {"doc_id": doc_id, "name": hit.value, "found_in": hit.found_in}
                )
    return report
