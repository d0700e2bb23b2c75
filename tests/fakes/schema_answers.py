"""Valid answers built from a request's JSON schema, for the fake servers.

Each item carries its document id inside a string field ("name-of-<id>"), so a test can tell
whether an answer was attributed to the right document.
"""

from __future__ import annotations

from typing import Any


def value_for(schema: dict[str, Any], doc_id: str, field: str) -> Any:
    if "anyOf" in schema:
        non_null = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return value_for(non_null[0], doc_id, field) if non_null else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "string":
        text = f"{field}-of-{doc_id}"
        return text[: schema.get("maxLength", len(text))]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return item_for(schema, doc_id)
    return None


def item_for(item_schema: dict[str, Any], doc_id: str) -> dict[str, Any]:
    return {
        name: value_for(prop, doc_id, name)
        for name, prop in item_schema.get("properties", {}).items()
    }


def answer_for(pack_schema: dict[str, Any]) -> dict[str, Any]:
    """A valid answer for every id of a pack schema, in the schema's order."""
    return {doc_id: item_for(s, doc_id) for doc_id, s in pack_schema["properties"].items()}
