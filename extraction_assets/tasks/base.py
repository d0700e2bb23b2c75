"""What an extraction task is: instructions, the pydantic model of one item, an output budget,
optional few-shot examples, and (for scoring only) a gold file and per-field scoring rules.

The task version is the identity of "what an answer means": when it changes, stored answers
are stale and their documents are re-extracted.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

# Bump when the prompt layout (extraction_assets.engine.prompts) changes what the model sees.
PROMPT_FORMAT_VERSION = "1"

# JSON-schema keys that carry no constraint; dropped so the schema the server compiles
# (and the version hash) only holds what matters.
_NOISE_KEYS = ("title", "default", "examples")


def strict_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The model's JSON schema made compatible with OpenAI strict mode and grammar engines.

    $refs inlined, every object closed (additionalProperties false) with all properties
    required (optional fields are nullable types instead), titles and defaults dropped.
    """
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged)
        out = {k: walk(v) for k, v in node.items() if k not in _NOISE_KEYS}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    schema: dict[str, Any] = walk(raw)
    return schema


def field_guide(model: type[pydantic.BaseModel]) -> str:
    """One line per field: name and description, in schema order (read by the model)."""
    lines = []
    for name, info in model.model_fields.items():
        lines.append(f"- {name}: {info.description or ''}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class FewShotExample:
    """An input text and the answer expected for it (validated against the task's model)."""

    text: str
    answer: Mapping[str, Any]


@dataclass(frozen=True)
class ExtractionTask:
    name: str
    description: str
    item_model: type[pydantic.BaseModel]
    instructions: str
    # Output budget for one item, measured on the dev server (see the task modules).
    output_tokens_per_item: int
    # Extra output budget per (estimated) input token, for tasks whose answer grows with the
    # document (translation). 0 for tasks with a bounded answer.
    output_tokens_per_input_token: float = 0.0
    # Shown to the model in the system message, before the items.
    examples: tuple[FewShotExample, ...] = ()
    # Scoring only (no effect on answers, not in the version): the task's own gold
    # (JSON lines {"id", "fields", optional "lang", "text"}) and per-field scoring kinds
    # overriding the type-driven defaults (extraction_assets.evaluation.scoring).
    gold: Path | None = None
    scoring: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Examples are checked once, here, so a bad one fails before any call.
        checked = []
        for i, ex in enumerate(self.examples, start=1):
            try:
                answer = self.item_model.model_validate(dict(ex.answer)).model_dump(mode="json")
            except pydantic.ValidationError as exc:
                raise ValueError(f"task {self.name}: example {i}: {_first_error(exc)}") from None
            checked.append(FewShotExample(ex.text, answer))
        object.__setattr__(self, "examples", tuple(checked))

    def item_schema(self) -> dict[str, Any]:
        """JSON schema of one item: $refs inlined, strict-compatible."""
        return strict_schema(self.item_model)

    def field_guide(self) -> str:
        return field_guide(self.item_model)

    def version(self, model: str, generation: Mapping[str, Any]) -> str:
        """12 hex chars identifying what an answer means for this task, model and settings."""
        identity: dict[str, Any] = {
            "instructions": self.instructions,
            "item_schema": self.item_schema(),
            "model": model,
            "generation": dict(generation),
            "prompt_format": PROMPT_FORMAT_VERSION,
        }
        if self.examples:  # absent when none, so tasks without examples keep their version
            identity["examples"] = [[ex.text, dict(ex.answer)] for ex in self.examples]
        blob = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "<answer>"
    return f"{where}: {err['msg']}"
