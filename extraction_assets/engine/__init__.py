"""The extraction engine: documents -> packs -> LLM calls -> validated items, call by call."""

from extraction_assets.engine.packing import Pack, PackPlanner, TokenCounter, estimate_tokens
from extraction_assets.engine.parsing import ParsedAnswer, parse_answer
from extraction_assets.engine.prompts import build_messages, system_message
from extraction_assets.engine.runner import TOO_LONG, EngineSettings, RunSummary, extract
from extraction_assets.engine.schema import pack_schema, schema_name

__all__ = [
    "TOO_LONG",
    "EngineSettings",
    "Pack",
    "PackPlanner",
    "ParsedAnswer",
    "RunSummary",
    "TokenCounter",
    "build_messages",
    "estimate_tokens",
    "extract",
    "pack_schema",
    "parse_answer",
    "schema_name",
    "system_message",
]
