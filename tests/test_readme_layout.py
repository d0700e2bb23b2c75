"""README's layout map matches the tree: every path it names exists, and every package and module
of extraction_assets/ and resources/ is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def named_paths() -> list[str]:
    """The first column of each line, with its parent folder for indented entries."""
    paths, parent = [], ""
    for line in layout_block().splitlines():
        match = re.match(r"^( *)(\S+(?:, \S+)*)\s{2,}", line + "  ")
        if not match or not match.group(2).strip():
            continue
        indent, names = match.groups()
        for name in names.split(", "):
            if not indent:
                parent = name if name.endswith("/") else ""
                paths.append(name)
            else:
                paths.append(parent + name)
    return paths


def test_every_path_on_the_map_exists() -> None:
    missing = [p for p in named_paths() if not (ROOT / p.rstrip("/")).exists()]
    assert missing == []


def test_every_module_is_on_the_map() -> None:
    named = set(named_paths())
    modules = [
        f"{pkg}/{p.name}/" if p.is_dir() else f"{pkg}/{p.name}"
        for pkg in ("extraction_assets", "resources")
        for p in sorted((ROOT / pkg).iterdir())
        if not p.name.startswith(("_", "."))
        and (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    ]
    assert [m for m in modules if m not in named] == []
