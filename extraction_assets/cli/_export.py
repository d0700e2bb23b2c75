"""`extraction export TASK`: a task's typed table as CSV, JSONL or Parquet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from extraction_assets.settings import Settings

FORMATS = ("csv", "jsonl", "parquet")


def cmd_export(args: argparse.Namespace) -> int:
    from extraction_assets.errors import TaskSpecError
    from extraction_assets.tasks import load_task
    from resources.store import DuckDBStore

    settings = Settings.from_env()
    try:
        task = load_task(args.task)
    except (TaskSpecError, KeyError) as exc:
        print(f"error: {str(exc).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
    if not settings.lake_catalog and not settings.store_path.exists():
        print(
            f"error: no store at {settings.store_path} (EXTRACTION_DB): run an extraction first",
            file=sys.stderr,
        )
        return 2
    fmt = args.format or _format_of(args.out) or "csv"
    out = args.out or Path(f"{task.name}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore.from_settings(settings)
    # The view follows the task's current fields (the extraction assets create it the same way).
    store.ensure_task_view(task.name, task.item_model)
    rows = store.export(task.name, str(out), fmt, corpus=args.corpus)
    where = f" of corpus {args.corpus!r}" if args.corpus else ""
    print(f"{rows} rows{where} of task {task.name} -> {out} ({fmt})")
    return 0


def _format_of(path: Path | None) -> str | None:
    suffix = path.suffix.lstrip(".").lower() if path else ""
    return suffix if suffix in FORMATS else None


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a task's typed table as CSV, JSONL or Parquet",
        description="Write the typed table of a task (the view <task>_extractions: one row per "
        "current document with an ok extraction, one column per field) from the store "
        "(EXTRACTION_DB) to a file. Rows are ordered by corpus and document id.",
    )
    p.add_argument("task", help="built-in name, module:ATTRIBUTE or spec file")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output file (default ./<task>.<format>; its extension sets the format)",
    )
    p.add_argument(
        "-f", "--format", choices=FORMATS, default=None, help="default: from --out, else csv"
    )
    p.add_argument("--corpus", default=None, help="only this corpus (default: all)")
    p.set_defaults(func=cmd_export)
