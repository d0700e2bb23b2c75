"""Dagster resources: the LLM server and the DuckDB store."""

from resources.llm import (
    Completion,
    ContextLengthError,
    LLMClient,
    LLMResource,
    RequestRejectedError,
    TransportError,
)

__all__ = [
    "Completion",
    "ContextLengthError",
    "LLMClient",
    "LLMResource",
    "RequestRejectedError",
    "TransportError",
]
