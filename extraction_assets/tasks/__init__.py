"""Extraction tasks: what a user defines (the public surface for tasks).

A task is an ExtractionTask: a pydantic model of one item, instructions, an output budget and
optional few-shot examples. Define one in Python (`ExtractionTask(...)` in your own module,
referenced as `my_pkg.tasks:INVOICE`) or in a YAML/JSON spec file (`task_from_spec`), and name
it in EXTRACTION_TASKS; `load_task` resolves any of these references.
"""

from __future__ import annotations

from extraction_assets.tasks.base import (
    PROMPT_FORMAT_VERSION,
    ExtractionTask,
    FewShotExample,
    strict_schema,
)
from extraction_assets.tasks.loading import (
    BUILTIN_TASKS,
    TASKS,
    list_task_refs,
    load_task,
    load_tasks,
    register_task,
)
from extraction_assets.tasks.spec import read_spec, task_from_dict, task_from_spec

# The old name of load_task.
get_task = load_task

__all__ = [
    "BUILTIN_TASKS",
    "PROMPT_FORMAT_VERSION",
    "TASKS",
    "ExtractionTask",
    "FewShotExample",
    "get_task",
    "list_task_refs",
    "load_task",
    "load_tasks",
    "read_spec",
    "register_task",
    "strict_schema",
    "task_from_dict",
    "task_from_spec",
]
