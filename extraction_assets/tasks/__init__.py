"""The registry of extraction tasks, by name."""

from __future__ import annotations

from extraction_assets.tasks.base import PROMPT_FORMAT_VERSION, ExtractionTask, strict_schema
from extraction_assets.tasks.biography import BIOGRAPHY
from extraction_assets.tasks.translation import TRANSLATION

TASKS: dict[str, ExtractionTask] = {task.name: task for task in (BIOGRAPHY, TRANSLATION)}


def get_task(name: str) -> ExtractionTask:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown extraction task {name!r}; known: {sorted(TASKS)}") from None


__all__ = ["PROMPT_FORMAT_VERSION", "TASKS", "ExtractionTask", "get_task", "strict_schema"]
