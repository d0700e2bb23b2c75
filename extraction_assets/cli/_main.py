"""The `extraction` command: parser and dispatch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from extraction_assets.cli import _export, _plan, _run, _serve

DESCRIPTION = """\
Turn corpora of documents into typed, validated DuckDB tables with an LLM, incrementally.

Typical use:
  extraction serve start                 start the local vLLM server (embedded model on CPU)
  extraction tasks validate my_task.yaml check a task before any LLM call
  extraction run                         extract every corpus under EXTRACTION_SOURCE_ROOT
  extraction export my_task -o out.csv   the typed table as CSV, JSONL or Parquet
  extraction eval --task my_task.yaml    score against the task's gold file

Configuration comes from the environment (LLM_BACKEND, LLM_BASE_URL, LLM_MODEL,
EXTRACTION_SOURCE_ROOT, EXTRACTION_TASKS, EXTRACTION_HOME, ...): see README.md.
`python -m extraction_assets` is the same command."""


def _eval_main(argv: Sequence[str]) -> int:
    from extraction_assets.evaluation.__main__ import main

    return main(list(argv))


def _tasks_main(argv: Sequence[str]) -> int:
    from extraction_assets.tasks.commands import main

    return main(list(argv))


# Commands with their own parser: everything after the command name is theirs (also --help).
DELEGATED: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "tasks": (_tasks_main, "list tasks, validate a task, show its schema or version"),
    "eval": (_eval_main, "score extraction quality against a gold set"),
}


def _cmd_demo(args: argparse.Namespace) -> int:
    from extraction_assets import demo  # lazy: the demo pulls in the whole engine

    return int(demo.main(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extraction",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run.add_command(sub)
    _serve.add_commands(sub)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    _export.add_command(sub)
    _plan.add_command(sub)
    sub.add_parser(
        "demo", help="start the embedded server and extract the bundled sample (make demo)"
    ).set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        return DELEGATED[args_list[0]][0](args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    return int(args.func(args))
