"""Dagster resources: the LLM server and the DuckDB store.

Names load on first use, so that the engine can import `resources.backends` without Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resources.llm import Completion, LLMClient, LLMResource

__all__ = [
    "Completion",
    "LLMClient",
    "LLMResource",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("resources.llm"), name)
    raise AttributeError(f"module 'resources' has no attribute {name!r}")
