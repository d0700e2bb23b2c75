"""The command line: `extraction run|serve|tasks|eval|export|demo|model` (also `python -m
extraction_assets`). Each command is a thin layer over library functions."""

from extraction_assets.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
