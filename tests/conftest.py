"""Shared fixtures. The LLM server: one real vLLM server per test session (or an existing one)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings as hypothesis_settings

from extraction_assets import serve
from extraction_assets.errors import ServerError

# The gold_sample check extracts its gold documents (10 by default) in every fresh store: the
# tests that are not about it keep it off; tests/pipeline/test_gold_check.py turns it on.
os.environ.setdefault("EXTRACTION_GOLD_SAMPLE", "none")

# Property tests: hypothesis's 100 examples each unless a test names fewer (those that run the
# job per example); `pytest --hypothesis-profile=thorough` runs the others ten times as far.
hypothesis_settings.register_profile("thorough", max_examples=1000)

# --- markers ----------------------------------------------------------------------------------
# Tiers (pyproject's markers; `make test-fast` = not vllm, not dagster_daemon, not browser). A test
# whose fixtures reach the session's vLLM server is marked `vllm` here, so none can forget it.
VLLM_FIXTURE = "_vllm_server"


# tryfirst: xdist's own hook turns `xdist_group` marks into node ids; ours must add them before.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if VLLM_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.vllm)
        # Under xdist (-n with --dist loadgroup) the tests of the one PostgreSQL server, and so the
        # cluster module's tests of one cluster, go to one worker, which starts it once.
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.xdist_group("postgres"))
    # The long tests first: workers that start them early finish together (a long test handed
    # out last would run alone at the end). A stable sort keeps the file order within each part.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --- the vLLM server --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _vllm_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(base URL, served model name): $EXTRACTION_TEST_LLM_URL if set, else a fresh server on a
    free port with its own state dir. Under xdist the workers share one server: the first to need
    it starts it, and the controller stops it at session end (pytest_sessionfinish)."""
    url = os.environ.get("EXTRACTION_TEST_LLM_URL")
    if url:
        url = url.rstrip("/")
        models = serve.list_models(url, timeout=10)
        if not models:
            pytest.fail(f"EXTRACTION_TEST_LLM_URL={url} does not answer GET /models")
        yield url, os.environ.get("EXTRACTION_TEST_LLM_MODEL", models[0])
        return
    if hasattr(request.config, "workerinput"):  # an xdist worker
        yield _shared_server(_shared_server_dir(tmp_path_factory.getbasetemp().parent))
        return
    state_dir = tmp_path_factory.mktemp("vllm-server")
    try:
        handle = _start_server(state_dir)
    except ServerError as exc:
        pytest.fail(f"could not start the test vLLM server: {exc}", pytrace=False)
    try:
        yield handle.url, handle.model
    finally:
        serve.stop_server(state_dir)


def _start_server(state_dir: Path) -> serve.ServerHandle:
    # A generous timeout: on 2 busy cores the worker start alone has taken over 3 minutes.
    config = serve.ServerConfig(
        port=serve.free_port(), state_dir=state_dir, gpu=False, ready_timeout=600
    )
    return serve.start_server(config)


def _shared_server_dir(controller_basetemp: Path) -> Path:
    return controller_basetemp / "vllm-server"


def _shared_server(folder: Path) -> tuple[str, str]:
    """The workers' one server; a failed start is recorded so that the others fail at once."""
    folder.mkdir(exist_ok=True)
    record = folder / "server.json"
    with FileLock(folder / "lock"):
        if not record.exists():
            try:
                handle = _start_server(folder / "state")
                record.write_text(json.dumps({"url": handle.url, "model": handle.model}))
            except ServerError as exc:
                record.write_text(json.dumps({"error": str(exc)}))
        shared = json.loads(record.read_text())
    if "error" in shared:
        pytest.fail(f"could not start the test vLLM server: {shared['error']}", pytrace=False)
    return shared["url"], shared["model"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker; the controller, which outlives them all, stops the server
    # The controller's base temp dir (pytest's own factory): the workers' are its subfolders.
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        folder = _shared_server_dir(factory.getbasetemp())
        if (folder / "state").exists():
            serve.stop_server(folder / "state")


@pytest.fixture(scope="session")
def vllm_url(_vllm_server: tuple[str, str]) -> str:
    """Base URL of a real vLLM server, e.g. "http://127.0.0.1:PORT/v1"."""
    return _vllm_server[0]


@pytest.fixture(scope="session")
def vllm_model(_vllm_server: tuple[str, str]) -> str:
    """The served model name to put in requests."""
    return _vllm_server[1]


# --- PostgreSQL (the DuckLake catalog) --------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """Conninfo of a real PostgreSQL server for this test session (scripts/postgres), or of
    $EXTRACTION_TEST_PG."""
    from tests.postgres import postgres_server

    with postgres_server() as conninfo:
        yield conninfo
