"""`python -m extraction_assets`: the `extraction` command (extraction_assets.cli)."""

import sys

from extraction_assets.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
