"""The `tasks` commands as plain functions: list, validate, schema, version.

`python -m extraction_assets.tasks list|validate REF|schema REF|version REF` (or the project's
console script). The version is computed for the configured model and generation settings
(LLM_* variables): it is the one the extraction assets use.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from extraction_assets.errors import TaskSpecError
from extraction_assets.tasks.base import ExtractionTask
from extraction_assets.tasks.loading import BUILTIN_TASKS, list_task_refs, load_task


def configured_refs() -> list[str]:
    """EXTRACTION_TASKS as a list of references (default biography)."""
    from extraction_assets.settings import Settings

    return list(Settings.from_env().tasks)


def model_identity() -> tuple[str, dict[str, Any]]:
    """(model, generation parameters) of the configured LLM: what the version is computed for."""
    from resources.llm import LLMResource

    llm = LLMResource.from_env()
    client = llm.get_client()
    return llm.model, client.generation_params()


def task_version(ref: str | ExtractionTask) -> str:
    """The task version for the configured model (what the extraction assets store)."""
    model, generation = model_identity()
    return load_task(ref).version(model, generation)


def task_schema(ref: str | ExtractionTask) -> dict[str, Any]:
    """The JSON schema of one answer, as sent to the server."""
    return load_task(ref).item_schema()


def describe_task(task: ExtractionTask, ref: str, version: str | None = None) -> dict[str, Any]:
    return {
        "name": task.name,
        "ref": ref,
        "description": task.description,
        "fields": list(task.item_model.model_fields),
        "examples": len(task.examples),
        "output_tokens_per_item": task.output_tokens_per_item,
        "gold": str(task.gold) if task.gold else None,
        **({"version": version} if version else {}),
    }


def list_tasks(refs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The built-in tasks and the configured ones (EXTRACTION_TASKS): one row each; a
    reference that does not load has its error instead of a name."""
    model, generation = model_identity()
    configured = set(configured_refs())
    rows = []
    for ref in list_task_refs(tuple(refs if refs is not None else configured_refs())):
        try:
            task = load_task(ref)
        except (TaskSpecError, KeyError) as exc:
            rows.append({"ref": ref, "error": str(exc).strip("'\"")})
            continue
        row = describe_task(task, ref, task.version(model, generation))
        row["configured"] = ref in configured
        row["builtin"] = ref in BUILTIN_TASKS
        rows.append(row)
    return rows


def validate_task(ref: str) -> ExtractionTask:
    """Load (and so compile and check) a task; raises TaskSpecError or KeyError when bad."""
    return load_task(ref)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="extraction tasks",
        description="Extraction tasks: list them, validate a spec, show a task's schema or version. "
        "A task reference is a built-in name, module:ATTRIBUTE, or a .yaml/.yml/.json spec file.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="built-in and configured (EXTRACTION_TASKS) tasks")
    p_list.add_argument("refs", nargs="*", help="references to list (default: EXTRACTION_TASKS)")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    for name, text in (
        ("validate", "check a task loads (spec errors name file and field)"),
        ("schema", "the JSON schema of one answer"),
        ("version", "the task version for the configured model (LLM_*)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("ref", help="built-in name, module:ATTRIBUTE or spec file")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            rows = list_tasks(args.refs or None)
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=1))
            for row in [] if args.json else rows:
                if "error" in row:
                    print(f"{row['ref']}: ERROR {row['error']}")
                    continue
                tags = ", ".join(t for t in ("builtin", "configured") if row[t])
                print(
                    f"{row['name']}  version {row['version']}  {len(row['fields'])} fields"
                    f"{'  ' + tags if tags else ''}  ({row['ref']})"
                )
            return 1 if any("error" in r for r in rows) else 0
        if args.command == "validate":
            task = validate_task(args.ref)
            print(
                f"ok: task {task.name}: {len(task.item_model.model_fields)} fields "
                f"({', '.join(task.item_model.model_fields)}), {len(task.examples)} examples"
                + (
                    f", gold {task.gold}" + ("" if task.gold.is_file() else " (MISSING)")
                    if task.gold
                    else ""
                )
            )
            return 0
        if args.command == "schema":
            print(json.dumps(task_schema(args.ref), ensure_ascii=False, indent=1))
            return 0
        print(task_version(args.ref))
        return 0
    except (TaskSpecError, KeyError) as exc:
        print(f"error: {str(exc).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
