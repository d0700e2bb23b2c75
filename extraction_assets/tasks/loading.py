"""Finding a task from a reference: a built-in name, an import path, or a spec file.

`load_task("biography")`, `load_task("my_pkg.tasks:INVOICE")`, `load_task("tasks/invoice.yaml")`.
The built-in names are only short aliases of references a user could write: biography is a
Python module exporting an ExtractionTask, translation a YAML spec, loaded exactly like a user's.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path

from extraction_assets.errors import TaskSpecError
from extraction_assets.tasks.base import ExtractionTask
from extraction_assets.tasks.spec import SPEC_SUFFIXES, task_from_spec

BUILTIN_TASKS: dict[str, str] = {
    "biography": "extraction_assets.tasks.biography:BIOGRAPHY",
    "translation": str(Path(__file__).with_name("translation.yaml")),
}
# Tasks registered by name in this process (register_task); looked up before the built-ins.
TASKS: dict[str, ExtractionTask] = {}


def register_task(task: ExtractionTask) -> ExtractionTask:
    """Make `task` loadable by its name in this process (e.g. a benchmark's synthetic task)."""
    TASKS[task.name] = task
    return task


def is_spec_path(ref: str) -> bool:
    return ref.lower().endswith(SPEC_SUFFIXES) or os.sep in ref or ref.startswith(".")


def load_task(ref: str | Path | ExtractionTask) -> ExtractionTask:
    """The task a reference names: a built-in or registered name, `module:ATTRIBUTE`, or the
    path of a .yaml/.yml/.json spec (relative to the current directory)."""
    if isinstance(ref, ExtractionTask):
        return ref
    text = str(ref).strip()
    if isinstance(ref, Path) or is_spec_path(text):
        return task_from_spec(text)
    if text in TASKS:
        return TASKS[text]
    if text in BUILTIN_TASKS:
        return load_task(BUILTIN_TASKS[text])
    if ":" in text:
        return _import_task(text)
    raise KeyError(
        f"unknown extraction task {text!r}: give a built-in name ({', '.join(sorted(BUILTIN_TASKS))}), "
        "an import path module:ATTRIBUTE, or a .yaml/.yml/.json spec file"
    )


def load_tasks(refs: Iterable[str]) -> list[ExtractionTask]:
    """The tasks of several references (EXTRACTION_TASKS); two of one name are refused (they
    would make the same assets and share stored rows)."""
    tasks: list[ExtractionTask] = []
    seen: dict[str, str] = {}
    for ref in refs:
        task = load_task(ref)
        if task.name in seen:
            raise TaskSpecError(
                str(ref),
                "",
                f"{seen[task.name]} and {ref} both define task {task.name!r}: "
                "give one of them another name",
            )
        seen[task.name] = str(ref)
        tasks.append(task)
    return tasks


def _import_task(ref: str) -> ExtractionTask:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise TaskSpecError(
            ref, "", "an import path is module:ATTRIBUTE, e.g. my_pkg.tasks:INVOICE"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskSpecError(ref, "", f"cannot import {module_name}: {exc}") from exc
    try:
        task = getattr(module, attribute)
    except AttributeError:
        raise TaskSpecError(ref, "", f"module {module_name} has no attribute {attribute}") from None
    if not isinstance(task, ExtractionTask):
        raise TaskSpecError(
            ref, "", f"{attribute} is a {type(task).__name__}, not an ExtractionTask"
        )
    return task


def list_task_refs(configured: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The built-in names, then the configured references not already among them."""
    return list(dict.fromkeys([*BUILTIN_TASKS, *configured]))
