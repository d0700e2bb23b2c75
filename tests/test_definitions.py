"""The code location loads the way users load it: in Python, with `dg check defs`, and with
`dagster definitions validate` (the project in pyproject.toml); the asset graph has the shape the UI shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_asset_graph_shape(monkeypatch, tmp_path):
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path))
    monkeypatch.setenv("EXTRACTION_TASKS", "biography,translation")
    monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "sample")  # the default outside the tests
    from extraction_assets.project import build_definitions
    from extraction_assets.settings import Settings

    defs = build_definitions(Settings.from_env())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "corpus_documents",
        "biography_extractions",
        "biography_table",
        "translation_extractions",
        "translation_table",
    }
    node = graph.get(dg.AssetKey("biography_extractions"))
    assert node.parent_keys == {dg.AssetKey("corpus_documents")}
    assert node.code_version and node.partitions_def is not None

    def check_names(defs: dg.Definitions, asset: str) -> set[str]:
        keys = defs.resolve_asset_graph().asset_check_keys
        return {c.name for c in keys if c.asset_key == dg.AssetKey(asset)}

    assert check_names(defs, "biography_extractions") == {
        "coverage",
        "validity",
        "source_freshness",
        "pack_audit",
        "gold_sample",
    }
    # the bundled gold is written for the biography task only
    assert check_names(defs, "translation_extractions") == {
        "coverage",
        "validity",
        "source_freshness",
        "pack_audit",
    }
    # standalone checks, one evaluation per corpus; validity blocks the typed table
    validity = dg.AssetCheckKey(dg.AssetKey("biography_extractions"), "validity")
    spec = defs.resolve_asset_graph().get_check_spec(validity)
    assert spec.blocking and spec.partitions_def is not None
    # a lost server is retried with backoff
    policy = defs.resolve_assets_def("biography_extractions").op.retry_policy
    assert policy is not None and policy.max_retries >= 1 and policy.backoff is not None
    monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "none")
    defs = build_definitions(Settings.from_env())
    assert "gold_sample" not in check_names(defs, "biography_extractions")


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXTRACTION_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_dg_check_defs(tmp_path):
    dg_cli = Path(sys.executable).parent / "dg"
    result = _run([str(dg_cli), "check", "defs"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_dagster_definitions_validate_project(tmp_path):
    dagster_cli = Path(sys.executable).parent / "dagster"
    result = _run([str(dagster_cli), "definitions", "validate"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
