"""The response schema of one call: an object keyed by exactly the pack's document ids.

Under grammar-constrained decoding (vLLM) this makes a missing, duplicated or unknown id
impossible; the parser still checks, because other backends and faulty servers can break it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extraction_assets.tasks.base import ExtractionTask


def pack_schema(task: ExtractionTask, doc_ids: Sequence[str]) -> dict[str, Any]:
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("a pack cannot hold the same document id twice")
    item = task.item_schema()
    return {
        "type": "object",
        "properties": {doc_id: item for doc_id in doc_ids},
        "required": list(doc_ids),
        "additionalProperties": False,
    }


def schema_name(task: ExtractionTask) -> str:
    """Name sent with the schema (OpenAI requires ^[a-zA-Z0-9_-]{1,64}$)."""
    return f"{task.name}_pack"[:64]
