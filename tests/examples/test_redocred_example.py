"""Why: examples/redocred is a user project: it must use only the public surface (the tasks
and evaluation facades and the command line), and it must run end to end (convert the shared
Re-DocRED dev set, extract through the Dagster job on the real server, score the relation F1)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extraction_assets.evaluation.gold import data_dir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redocred"
PUBLIC = {"extraction_assets.tasks", "extraction_assets.evaluation"}


def test_example_uses_only_the_public_surface() -> None:
    for path in EXAMPLE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("extraction_assets", "resources")
            ):
                assert node.module in PUBLIC, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("extraction_assets", "resources")), path


def test_spec_validates() -> None:
    from extraction_assets.tasks import load_task

    task = load_task(str(EXAMPLE / "relations.yaml"))
    assert task.name == "redocred_relations" and len(task.examples) == 1
    relation = task.item_schema()["properties"]["relations"]["items"]["properties"]["relation"]
    assert len(relation["enum"]) == 96


@pytest.mark.vllm
@pytest.mark.slow
def test_redocred_example_runs_on_three_documents(
    tmp_path: Path, vllm_url: str, vllm_model: str
) -> None:
    data = data_dir() / "redocred"
    if not (data / "dev_revised.json").is_file():
        pytest.fail(f"Re-DocRED missing: {data} (the shared data beside the repository)")
    project = tmp_path / "redocred"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data"))
    env = {
        **os.environ,
        "LLM_BACKEND": "vllm",
        "LLM_BASE_URL": vllm_url,
        "LLM_MODEL": vllm_model,
        "EXTRACTION_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(EXAMPLE.parents[1]),
    }
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(project / "run.py"),
            "--limit",
            "3",
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["documents"] == 3 and figures["gold_triples"] > 0
    assert 0.0 <= (figures["f1"] or 0.0) <= 1.0
    assert "3 rows in view redocred_relations_extractions" in proc.stdout
