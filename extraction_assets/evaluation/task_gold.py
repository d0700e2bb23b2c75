"""Gold for any task: the task's own gold file and type-driven scoring.

A gold file is JSON lines, one document each:
`{"id": "doc-1", "fields": {"vendor": "ACME", "total": 12.5}, "lang": "en", "text": "..."}`.
`fields` holds the expected answer for the fields it names (a field left out is not scored;
null or [] stated on purpose is). A value may list alternatives (`"vendor": ["ACME", "ACME Ltd"]`)
and an object in a list may name only the keys to score. `text` is optional: without it the
document is the corpus document of that id (the gold_sample check scores the corpus's own
extractions; the evaluation CLI reads it from `--corpus`). `lang` (default "und") gives the
per-language scores.

Scoring follows the field's type: exact for enums, numbers, booleans and dates; normalised
match for strings (case, accents, punctuation, spacing, Arabic letter forms); set F1 for lists;
every gold key for objects. A task overrides it per field (`score:` in a spec, `scoring=` in
Python): exact, text, name (a person/place name, partial names allowed), set, ignore.
"""

from __future__ import annotations

import datetime
import enum
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic

from extraction_assets.errors import GoldFileError, GoldFileMissingError
from extraction_assets.evaluation.gold import GOLD_SET_TASK, GOLD_SETS, GoldDocument, load_gold
from extraction_assets.evaluation.scoring import FIELD_SPECS, FieldSpec, covered_specs
from extraction_assets.tasks.base import ExtractionTask

# The user-facing names of scoring kinds (spec `score:`) -> FieldSpec kinds.
SCORE_OVERRIDES = {"exact": "exact", "text": "text", "name": "name", "set": "items", "ignore": None}


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return _strip_optional(typing.get_args(annotation)[0])
    return annotation


def default_kind(annotation: Any) -> str:
    """The scoring kind a field's type implies."""
    a = _strip_optional(annotation)
    origin = typing.get_origin(a)
    if origin is typing.Literal:
        return "exact"
    if origin in (list, tuple, set, frozenset):
        return "items"
    if isinstance(a, type):
        if issubclass(a, pydantic.BaseModel):
            return "object"
        if issubclass(a, enum.Enum | bool | int | float | datetime.date):
            return "exact"
        if issubclass(a, str):
            return "text"
    return "exact"


def task_field_specs(task: ExtractionTask) -> list[FieldSpec]:
    """How each field of the task is scored: its type's default or the task's override."""
    specs = []
    for name, info in task.item_model.model_fields.items():
        override = task.scoring.get(name)
        if override is not None and override not in SCORE_OVERRIDES:
            raise ValueError(
                f"task {task.name}: field {name}: unknown scoring {override!r} "
                f"(one of {', '.join(SCORE_OVERRIDES)})"
            )
        kind = SCORE_OVERRIDES[override] if override else default_kind(info.annotation)
        if kind:
            specs.append(FieldSpec(name, name, kind))
    unknown = set(task.scoring) - set(task.item_model.model_fields)
    if unknown:
        raise ValueError(f"task {task.name}: scoring names unknown fields {sorted(unknown)}")
    return specs


def load_task_gold(task: ExtractionTask, path: str | Path | None = None) -> list[GoldDocument]:
    """The task's gold documents (its `gold` file, or `path`)."""
    path = Path(path) if path is not None else task.gold
    if path is None:
        raise GoldFileMissingError(f"task {task.name} has no gold file (spec key `gold:`)")
    if not path.is_file():
        raise GoldFileMissingError(f"gold file missing: {path} (gold of task {task.name})")
    fields = set(task.item_model.model_fields)
    docs: list[GoldDocument] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise GoldFileError(f"{where}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
                raise GoldFileError(f'{where}: each line is an object with a string "id"')
            doc_id = row["id"]
            if doc_id in seen:
                raise GoldFileError(f"{where}: id {doc_id!r} appears twice")
            seen.add(doc_id)
            gold = row.get("fields")
            if not isinstance(gold, dict):
                raise GoldFileError(f'{where}: id {doc_id!r}: "fields" must be an object')
            extra = sorted(set(gold) - fields)
            if extra:
                raise GoldFileError(
                    f"{where}: id {doc_id!r}: {extra} are not fields of task "
                    f"{task.name} ({', '.join(sorted(fields))})"
                )
            text = row.get("text", "")
            if not isinstance(text, str):
                raise GoldFileError(f'{where}: id {doc_id!r}: "text" must be a string')
            docs.append(
                GoldDocument(
                    doc_id=doc_id,
                    text=text,
                    lang=str(row.get("lang") or "und"),
                    gold=gold,
                    source=where,
                    gold_sources=dict.fromkeys(gold, str(path)),
                )
            )
    if not docs:
        raise GoldFileError(f"{path}: no gold documents")
    return docs


def gold_set_names(task: ExtractionTask, configured: Sequence[str]) -> list[str]:
    """The gold sets scored for a task: the configured built-in sets written for it (an
    unknown name is kept, to be reported), and its own gold (named after the task) if it has one."""
    names = [
        n for n in configured if GOLD_SET_TASK.get(n, task.name) == task.name and n != task.name
    ]
    if task.gold is not None and configured:
        names.append(task.name)
    return names


def gold_set(
    task: ExtractionTask, name: str, root: Path | None = None
) -> tuple[list[GoldDocument], list[FieldSpec]]:
    """(documents, field specs) of one gold set for this task: its own gold when `name` is the
    task's name, else a built-in set (from `root`, default `data_dir()`). KeyError for an unknown
    set; GoldFileMissingError."""
    if name == task.name and task.gold is not None:
        return load_task_gold(task), task_field_specs(task)
    if name not in GOLD_SETS:
        raise KeyError(name)
    specs, _ = covered_specs(FIELD_SPECS[name], task.item_model.model_fields)
    return load_gold(name, root), specs
