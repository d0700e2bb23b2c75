"""Shared fixtures. The LLM server: one real vLLM server per test session (or an existing one)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if VLLM_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.vllm)
        # Under xdist (`make test-fast`, -n with --dist loadgroup) the tests of the one PostgreSQL
        # server go to one worker, which starts it once.
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.xdist_group("postgres"))
    # The long tests first: workers that start them early finish together (a long test handed
    # out last would run alone at the end). A stable sort keeps the file order within each part.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --- the vLLM server --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, served model name): $EXTRACTION_TEST_LLM_URL if set, else a fresh server on a
    free port with its own state dir, stopped at session end."""
    url = os.environ.get("EXTRACTION_TEST_LLM_URL")
    if url:
        url = url.rstrip("/")
        models = serve.list_models(url, timeout=10)
        if not models:
            pytest.fail(f"EXTRACTION_TEST_LLM_URL={url} does not answer GET /models")
        yield url, os.environ.get("EXTRACTION_TEST_LLM_MODEL", models[0])
        return
    state_dir = tmp_path_factory.mktemp("vllm-server")
    # A generous timeout: on 2 busy cores the worker start alone has taken over 3 minutes.
    config = serve.ServerConfig(
        port=serve.free_port(), state_dir=state_dir, gpu=False, ready_timeout=600
    )
    try:
        handle = serve.start_server(config)
    except ServerError as exc:
        pytest.fail(f"could not start the test vLLM server: {exc}", pytrace=False)
    try:
        yield handle.url, handle.model
    finally:
        serve.stop_server(state_dir)


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
