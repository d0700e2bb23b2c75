"""Declarative tasks: a YAML or JSON spec compiled to an ExtractionTask (pydantic.create_model).

```yaml
name: invoice                      # the asset and table name: [a-z][a-z0-9_]*
description: Invoices: vendor, date, total and lines.
instructions: |
  You extract invoice data. ...
output_tokens_per_item: 200        # output budget of one answer
fields:                            # in the order the model should answer them
  vendor:   {type: string, description: the seller, max_length: 80}
  date:     {type: date, nullable: true}
  total:    {type: number, min: 0}
  currency: {type: string, enum: [EUR, USD, GBP]}
  paid:     {type: boolean}
  lines:
    type: list
    max_items: 10
    items:
      type: object
      fields:
        label:  {type: string, max_length: 80}
        amount: {type: number}
examples:                          # optional few-shot examples, validated against the fields
  - text: "ACME Ltd ... total 12.50 EUR"
    answer: {vendor: ACME Ltd, ...}
gold: gold.jsonl                   # optional, relative to this file: {"id", "fields"} per line
```

Every field is answered (strict structured output): `nullable: true` lets the answer be null.
A field may also say how it is scored against gold (`score: exact|text|set|name|ignore`).
"""

from __future__ import annotations

import datetime
import json
import keyword
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from extraction_assets.errors import TaskSpecError
from extraction_assets.tasks.base import ExtractionTask, FewShotExample

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SCORE_KINDS = ("exact", "text", "name", "set", "ignore")
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# A date is answered as ISO text: grammar engines handle a pattern, not every "format".
_DATE_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldDef(_Strict):
    """One field of a spec (also the items of a list and the fields of an object)."""

    type: Literal["string", "integer", "number", "boolean", "date", "list", "object"]
    description: str = ""
    nullable: bool = False
    enum: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    max_items: int | None = Field(default=None, ge=1)
    items: FieldDef | None = None
    fields: dict[str, FieldDef] | None = None
    score: Literal["exact", "text", "name", "set", "ignore"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldDef:
        t = self.type
        allowed = {
            "string": {"enum", "min_length", "max_length"},
            "integer": {"enum", "min", "max"},
            "number": {"enum", "min", "max"},
            "boolean": set(),
            "date": set(),
            "list": {"items", "max_items"},
            "object": {"fields"},
        }[t]
        for key in (
            "enum",
            "min",
            "max",
            "min_length",
            "max_length",
            "max_items",
            "items",
            "fields",
        ):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(f"{key!r} does not apply to type {t}")
        if t == "list" and self.items is None:
            raise ValueError("a list needs 'items' (the type of its elements)")
        if t == "object" and not self.fields:
            raise ValueError("an object needs 'fields'")
        if self.enum is not None:
            if not self.enum:
                raise ValueError("enum is empty")
            kinds: dict[str, type | tuple[type, ...]] = {
                "string": str,
                "integer": int,
                "number": (int, float),
            }
            bad = [v for v in self.enum if isinstance(v, bool) or not isinstance(v, kinds[t])]
            if bad:
                raise ValueError(f"enum values {bad} are not of type {t}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if t == "integer":
            for key in ("min", "max"):
                v = getattr(self, key)
                if v is not None and v != int(v):
                    raise ValueError(f"{key} of an integer must be a whole number, got {v}")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        return self


class ExampleDef(_Strict):
    text: str = Field(min_length=1)
    answer: dict[str, Any]


class TaskSpec(_Strict):
    name: str
    description: str = ""
    instructions: str = Field(min_length=1)
    output_tokens_per_item: int = Field(ge=1)
    output_tokens_per_input_token: float = Field(default=0.0, ge=0)
    fields: dict[str, FieldDef] = Field(min_length=1)
    examples: list[ExampleDef] = []
    gold: str | None = None

    @model_validator(mode="after")
    def _name(self) -> TaskSpec:
        if not _TASK_NAME.fullmatch(self.name):
            raise ValueError(
                f"task name {self.name!r}: lower-case letters, digits and _, starting with a "
                "letter, at most 50 (it names the assets and the DuckDB table)"
            )
        return self


def read_spec(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a spec file (.yaml, .yml or .json)."""
    path = Path(path)
    source = str(path)
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise TaskSpecError(source, "", f"a task spec ends in {', '.join(SPEC_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskSpecError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskSpecError(source, "", f"cannot read: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TaskSpecError(source, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from None
    except Exception as exc:  # yaml.YAMLError
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaskSpecError(source, where, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise TaskSpecError(
            source, "", "the spec must be a mapping (name, instructions, fields...)"
        )
    return data


def task_from_spec(path: str | Path) -> ExtractionTask:
    """Compile a YAML/JSON spec file to an ExtractionTask; a bad spec raises TaskSpecError."""
    path = Path(path).expanduser().resolve()
    return task_from_dict(read_spec(path), source=str(path), base_dir=path.parent)


def task_from_dict(
    data: Mapping[str, Any], source: str = "<spec>", base_dir: Path | None = None
) -> ExtractionTask:
    """Compile a spec mapping (the parsed YAML/JSON) to an ExtractionTask."""
    try:
        spec = TaskSpec.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        raise TaskSpecError(source, _where(err["loc"]), _problem(err)) from None
    model = _compile_object(spec.name, spec.fields, source, "fields")
    examples = []
    for i, ex in enumerate(spec.examples):
        try:
            model.model_validate(ex.answer)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            where = _where(("examples", i, "answer", *err["loc"]))
            raise TaskSpecError(source, where, _problem(err)) from None
        examples.append(FewShotExample(ex.text, ex.answer))
    gold = None
    if spec.gold:
        gold = Path(spec.gold).expanduser()
        if not gold.is_absolute():
            gold = (base_dir or Path.cwd()) / gold
    return ExtractionTask(
        name=spec.name,
        description=spec.description,
        item_model=model,
        instructions=spec.instructions.strip(),
        output_tokens_per_item=spec.output_tokens_per_item,
        output_tokens_per_input_token=spec.output_tokens_per_input_token,
        examples=tuple(examples),
        gold=gold,
        scoring=_scoring(spec.fields),
    )


def _scoring(fields: Mapping[str, FieldDef]) -> dict[str, str]:
    return {name: f.score for name, f in fields.items() if f.score}


def _compile_object(
    name: str, fields: Mapping[str, FieldDef], source: str, where: str
) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for field_name, f in fields.items():
        path = f"{where}.{field_name}"
        if not _FIELD_NAME.fullmatch(field_name) or keyword.iskeyword(field_name):
            raise TaskSpecError(
                source,
                path,
                "a field name is letters, digits and _, starting "
                "with a letter (it becomes a table column)",
            )
        if hasattr(BaseModel, field_name):
            raise TaskSpecError(
                source,
                path,
                f"{field_name!r} is reserved (a pydantic BaseModel attribute); choose another name",
            )
        definitions[field_name] = (
            _annotation(f, source, path, field_name),
            Field(description=f.description or None),
        )
    model_name = "".join(p.capitalize() for p in re.split(r"[_.]", name) if p) or "Item"
    try:
        return pydantic.create_model(
            model_name, __config__=ConfigDict(extra="forbid"), **definitions
        )
    except (TypeError, ValueError, NameError, pydantic.PydanticUserError) as exc:
        raise TaskSpecError(source, where, str(exc)) from None


def _annotation(f: FieldDef, source: str, path: str, name: str) -> Any:
    """The pydantic type of one field with its bounds (the description goes on the field)."""
    constraints: dict[str, Any] = {}
    extra: list[Any] = []
    base: Any
    if f.enum is not None:
        base = Literal[tuple(f.enum)]
    elif f.type == "string":
        base = str
        constraints.update(min_length=f.min_length, max_length=f.max_length)
    elif f.type == "integer":
        base = int
        constraints.update(
            ge=None if f.min is None else int(f.min), le=None if f.max is None else int(f.max)
        )
    elif f.type == "number":
        base = float
        constraints.update(ge=f.min, le=f.max)
    elif f.type == "boolean":
        base = bool
    elif f.type == "date":
        base = datetime.date
        extra.append(WithJsonSchema(_DATE_SCHEMA))
    elif f.type == "list":
        assert f.items is not None
        if f.items.nullable:
            raise TaskSpecError(source, f"{path}.items", "list elements cannot be nullable")
        base = list[_annotation(f.items, source, f"{path}.items", name)]  # type: ignore[misc]
        constraints.update(max_length=f.max_items)
    else:  # object
        assert f.fields is not None
        base = _compile_object(f"{name}_{path}", f.fields, source, f"{path}.fields")
    constraints = {k: v for k, v in constraints.items() if v is not None}
    if constraints:
        extra.insert(0, Field(**constraints))
    annotated: Any = Annotated[(base, *extra)] if extra else base
    return annotated | None if f.nullable else annotated


def _where(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif str(p).startswith(("function-", "literal[", "list[", "dict[")) or p in (
            "str",
            "int",
            "float",
            "bool",
            "tagged-union[",
        ):
            continue  # pydantic's union/validator labels, not a place in the file
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<spec>"


def _problem(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        return "unknown key (check its spelling)"
    if err.get("type") == "missing":
        return "required key missing"
    if "input" in err and err.get("type") not in ("value_error",):
        shown = repr(err["input"])
        return f"{msg} (got {shown[:60]})"
    return msg
