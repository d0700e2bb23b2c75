"""Why: an OpenAI key is meant for api.openai.com only. A user who has OPENAI_API_KEY exported and
points the project at a vLLM (or Ollama) server must not send that key, in plaintext, to that
server. The rule: LLM_API_KEY goes to any backend, OPENAI_API_KEY only to the openai backend.
A recording proxy in front of the server reads the Authorization header of every call."""

from __future__ import annotations

import secrets

import pytest

from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer
from tests.reliability.harness import RecordingProxy, cli_project, short_docs, write_corpus


def authorizations(proxy: RecordingProxy) -> list[str | None]:
    return [c.authorization for c in proxy.calls]


@pytest.mark.vllm
@pytest.mark.slow
def test_openai_key_never_reaches_a_vllm_server(tmp_path, vllm_url, vllm_model):
    openai_key = f"sk-openai-canary-{secrets.token_hex(8)}"
    with RecordingProxy(vllm_url) as proxy:
        cli = cli_project(tmp_path, proxy.url, vllm_model, OPENAI_API_KEY=openai_key)
        write_corpus(cli.source_root, "keys", short_docs(2))
        done = cli.run("keys", items_per_call=1)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        sent = authorizations(proxy)
    assert sent, "no call went through the proxy"
    assert not [a for a in sent if a and openai_key in a], "the OpenAI key went to vLLM"

    # LLM_API_KEY is the key for any backend: it does go to the vLLM server.
    llm_key = f"sk-llm-canary-{secrets.token_hex(8)}"
    with RecordingProxy(vllm_url) as proxy:
        cli.env.update(LLM_BASE_URL=proxy.url, LLM_API_KEY=llm_key)
        write_corpus(cli.source_root, "keys", short_docs(3))
        done = cli.run("keys", items_per_call=1)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        sent = authorizations(proxy)
    assert sent and all(a == f"Bearer {llm_key}" for a in sent), sent


@pytest.mark.slow
def test_openai_key_goes_to_the_openai_backend(tmp_path):
    """Control: with LLM_BACKEND=openai the same environment does send OPENAI_API_KEY (so the
    test above looks for a header that a leak would really carry)."""
    openai_key = f"sk-openai-canary-{secrets.token_hex(8)}"
    with FaultInjectingOpenAIServer() as fake, RecordingProxy(fake.url) as proxy:
        cli = cli_project(
            tmp_path, proxy.url, "fake", LLM_BACKEND="openai", OPENAI_API_KEY=openai_key
        )
        write_corpus(cli.source_root, "keys", short_docs(2))
        done = cli.run("keys", items_per_call=1)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        sent = authorizations(proxy)
    assert sent and all(a == f"Bearer {openai_key}" for a in sent), sent
