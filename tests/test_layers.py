"""The import layers: a ground floor that imports nothing from the project, an engine that never
imports the evaluation (which scores with the engine), and resources that reach into
extraction_assets only for the ground floor and the domain types."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUND_FLOOR = (
    "extraction_assets/settings.py",
    "extraction_assets/text.py",
    "extraction_assets/errors.py",
)
PROJECT = ("extraction_assets", "resources")


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level
    }
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {n for n in names if n.split(".")[0] in PROJECT}


@pytest.mark.parametrize("module", GROUND_FLOOR)
def test_the_ground_floor_imports_nothing_from_the_project(module: str) -> None:
    assert project_imports(ROOT / module) == set()


def test_the_engine_does_not_import_the_evaluation() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in project_imports(path) if m.startswith("extraction_assets.evaluation")
        )
        for path in (ROOT / "extraction_assets" / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    "first", ["extraction_assets.evaluation", "extraction_assets.engine.contamination"]
)
def test_engine_and_evaluation_import_in_either_order(first: str) -> None:
    other = {"extraction_assets.evaluation": "extraction_assets.engine"}.get(
        first, "extraction_assets.evaluation"
    )
    code = f"import {first}, {other}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
