"""What an extraction task is: instructions, the pydantic model of one item, an output budget.

The task version is the identity of "what an answer means": when it changes, stored answers
are stale and their documents are re-extracted.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
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

    return walk(raw)


def field_guide(model: type[pydantic.BaseModel]) -> str:
    """One line per field: name and description, in schema order (read by the model)."""
    lines = []
    for name, info in model.model_fields.items():
        lines.append(f"- {name}: {info.description or ''}".rstrip())
    return "\n".join(lines)


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

    def item_schema(self) -> dict[str, Any]:
        """JSON schema of one item: $refs inlined, strict-compatible."""
        return strict_schema(self.item_model)

    def field_guide(self) -> str:
        return field_guide(self.item_model)

    def version(self, model: str, generation: Mapping[str, Any]) -> str:
        """12 hex chars identifying what an answer means for this task, model and settings."""
        identity = {
            "instructions": self.instructions,
            "item_schema": self.item_schema(),
            "model": model,
            "generation": dict(generation),
            "prompt_format": PROMPT_FORMAT_VERSION,
        }
        blob = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
