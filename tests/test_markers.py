"""The tiers hold by rule: a test that reaches the vLLM server through the fixtures is marked `vllm`
whatever its author wrote, so `make test-fast` (-m "not vllm and ...") never needs a server."""

from __future__ import annotations

import os
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


# Two workers, the `postgres` tests and the server tests each recording which worker ran them.
# The stand-in below replaces the vLLM server's start and stop (a real one takes a minute to start;
# the server tier runs on the real one): it records each call, so that one start in all and one
# stop, by the controller, can be counted.
SHARED = """
import os
import pytest

def record(what):
    with open(os.environ["RECORD"], "a") as f:
        f.write(f"{what} {os.environ.get('PYTEST_XDIST_WORKER', 'controller')}\\n")

@pytest.mark.postgres
@pytest.mark.parametrize("n", range(4))
def test_on_the_catalog(n):
    record("postgres")

@pytest.mark.parametrize("n", range(4))
def test_on_the_server(n, vllm_url):
    record(f"server {vllm_url}")
"""

STAND_IN = """
import os
from extraction_assets import serve

def _start(config):
    config.state_dir.mkdir(parents=True)
    with open(os.environ["RECORD"], "a") as f:
        f.write(f"start {os.environ.get('PYTEST_XDIST_WORKER', 'controller')}\\n")
    return serve.ServerHandle("http://stand-in/v1", 0, config.state_dir / "log", "m", config.state_dir)

def _stop(state_dir):
    with open(os.environ["RECORD"], "a") as f:
        f.write(f"stop {os.environ.get('PYTEST_XDIST_WORKER', 'controller')}\\n")
    return True

serve.start_server = _start
serve.stop_server = _stop
"""


# What this run itself may have set (under xdist, or with a running server) must not reach the inner.
OUTER_RUN = ("EXTRACTION_TEST_LLM_URL", "PYTEST_XDIST")


def _inner_run(tmp_path: Path, *args: str) -> list[list[str]]:
    """Run the stand-in suite on two workers; return what each test and the server recorded."""
    record = tmp_path / "record.txt"
    record.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "stand_in_server",
         "-n", "2", *args, str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(OUTER_RUN)},
             "RECORD": str(record), "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.split() for line in record.read_text().splitlines()]


def test_workers_share_one_server_and_one_postgres_group(tmp_path: Path) -> None:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_shared.py").write_text(SHARED)
    (tmp_path / "stand_in_server.py").write_text(STAND_IN)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers\nmarkers =\n    vllm: server\n    postgres: pg\n"
    )

    # The four tests of the one PostgreSQL server run on one worker (--dist loadgroup).
    lines = _inner_run(tmp_path, "--dist", "loadgroup")
    assert sum(line[0] == "postgres" for line in lines) == 4
    assert len({line[-1] for line in lines if line[0] == "postgres"}) == 1

    # One server for both workers, started once, stopped once by the controller. `--dist each`
    # runs every server test on both workers, so both surely ask for it (under `load`, one worker
    # may take all four).
    lines = _inner_run(tmp_path, "--dist", "each", "-k", "on_the_server")
    assert [line for line in lines if line[0] in {"start", "stop"}].count(
        ["stop", "controller"]
    ) == 1
    assert sum(line[0] == "start" for line in lines) == 1
    servers = [line for line in lines if line[0] == "server"]
    assert len(servers) == 8 and {url for _, url, _ in servers} == {"http://stand-in/v1"}
    assert {worker for _, _, worker in servers} == {"gw0", "gw1"}
