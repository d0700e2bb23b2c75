"""The tiers hold by rule: a test that reaches the vLLM server through the fixtures is marked `vllm`
whatever its author wrote, so `make test-fast` (-m "not vllm and ...") never needs a server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

UNMARKED = """
import pytest

@pytest.fixture
def client(vllm_url):
    return vllm_url

def test_url(vllm_url):
    pass

def test_model(vllm_model):
    pass

def test_through_another_fixture(client):
    pass

def test_no_server(tmp_path):
    pass
"""


def test_tests_using_the_server_fixtures_are_marked_vllm(tmp_path: Path) -> None:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_unmarked.py").write_text(UNMARKED)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers\nmarkers =\n    vllm: server\n"
    )

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "vllm",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    selected = sorted(line.split("::")[1] for line in done.stdout.splitlines() if "::" in line)
    assert selected == ["test_model", "test_through_another_fixture", "test_url"]
    assert "3/4 tests collected (1 deselected)" in done.stdout
