"""Cross-item contamination measured against gold, independently of the engine.

The engine's detector (engine/contamination.py) looks in pack-mates' TEXTS for what an answer
borrowed, and the calls it settled are what the older measure counted as packs; an item re-run
alone then has no pack-mates, so that measure is zero by construction. This one shares neither:

- pack membership is the ORIGINAL pack: the ids of the first request each document was sent in,
  as the LLM client saw it (recorded by the evaluation harness, not taken from the engine);
- an answer field is contaminated when its value matches a pack-mate's GOLD value for that
  field and does not match the item's own gold (matched as the scoring matches it: a value the
  scoring would count right for the pack-mate).

Enum fields (grade, generation) are left out: a handful of values, shared by chance. Chance
matters for the others too (a common year, a city named in many documents), so `chance` applies
the same detector to a seeded shuffle of the same documents into groups of the same sizes: the
rate a document's answer would show against strangers it was never packed with.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extraction_assets.evaluation.gold import GoldDocument
from extraction_assets.evaluation.scoring import (
    FieldSpec,
    _answer_names,
    _kunya_hit,
    _member_names,
    _name_hit,
    _year_hit,
)


def _hit(spec: FieldSpec, value: Any, gold: Any) -> bool:
    """The answer value matches this gold value as the scoring would count it right."""
    if gold is None or gold == []:
        return False
    if spec.kind == "name":
        return _name_hit(value, gold)
    if spec.kind == "year":
        return _year_hit(value, gold, spec.year_tolerance)
    if spec.kind == "kunya":
        return _kunya_hit(value, gold)
    if spec.kind == "set":
        members = [a for m in gold for a in _member_names(m)]
        return any(_name_hit(name, members) for name in _answer_names(value))
    return False  # enum: too few values to attribute


def _gold(doc: GoldDocument, spec: FieldSpec) -> Any:
    return doc.gold.get(spec.gold_field, doc.uncovered.get(spec.gold_field))


def _borrowed_set_names(spec: FieldSpec, value: Any, own: Any, mate: Any) -> list[str]:
    """Set field: the predicted names matching the pack-mate's gold and not the item's own."""
    mates = [a for m in (mate or []) for a in _member_names(m)]
    owns = [a for m in (own or []) for a in _member_names(m)]
    return [
        n
        for n in _answer_names(value)
        if mates and _name_hit(n, mates) and not (owns and _name_hit(n, owns))
    ]


@dataclass
class CrosstalkReport:
    answers: int = 0  # items with an answer and at least one pack-mate
    contaminated: int = 0  # of those, items with a field matching a pack-mate's gold only
    by_field: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.contaminated / self.answers if self.answers else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "contaminated": self.contaminated,
            "rate": self.rate,
            "by_field": self.by_field,
            "examples": self.examples[:10],
        }


def gold_crosstalk(
    packs: Sequence[Sequence[str]],
    docs: Sequence[GoldDocument],
    predictions: Mapping[str, Mapping[str, Any] | None],
    specs: Sequence[FieldSpec],
) -> CrosstalkReport:
    """Contamination of the answers against the gold of their original pack-mates."""
    by_id = {d.doc_id: d for d in docs}
    report = CrosstalkReport()
    for pack in packs:
        for doc_id in pack:
            answer = predictions.get(doc_id)
            mates = [by_id[o] for o in pack if o != doc_id and o in by_id]
            if not answer or not mates or doc_id not in by_id:
                continue
            report.answers += 1
            own = by_id[doc_id]
            hits = []
            for spec in specs:
                value = answer.get(spec.task_field)
                if value is None or spec.kind == "enum":
                    continue
                for mate in mates:
                    if spec.kind == "set":
                        borrowed = _borrowed_set_names(
                            spec, value, _gold(own, spec), _gold(mate, spec)
                        )
                    else:
                        borrowed = (
                            [value]
                            if _hit(spec, value, _gold(mate, spec))
                            and not _hit(spec, value, _gold(own, spec))
                            else []
                        )
                    if borrowed:
                        hits.append(
                            {
                                "doc_id": doc_id,
                                "field": spec.gold_field,
                                "value": borrowed[0],
                                "gold_of": mate.doc_id,
                            }
                        )
                        break
            if hits:
                report.contaminated += 1
                for h in hits:
                    report.by_field[h["field"]] = report.by_field.get(h["field"], 0) + 1
                report.examples += hits
    return report


def shuffled_groups(packs: Sequence[Sequence[str]], seed: int = 0) -> list[list[str]]:
    """The same documents in groups of the same sizes, shuffled: pack-mates by chance."""
    ids = [i for p in packs for i in p]
    random.Random(seed).shuffle(ids)
    out, start = [], 0
    for p in packs:
        out.append(ids[start : start + len(p)])
        start += len(p)
    return out


def first_packs(requests: Sequence[Sequence[str]]) -> list[list[str]]:
    """Original packs: each request's ids not seen in an earlier request, in request order."""
    seen: set[str] = set()
    packs = []
    for ids in requests:
        new = [i for i in ids if i not in seen]
        seen.update(new)
        if new:
            packs.append(new)
    return packs
