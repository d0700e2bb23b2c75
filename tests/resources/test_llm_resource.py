"""Why: the LLM resource is configured from the environment in deployments; defaults per backend
must be right, replicas must be parsed, and the API key must never leak through repr/str,
clients or errors."""

from __future__ import annotations

import dagster as dg
import pytest

from resources.backends.ollama_backend import OllamaClient
from resources.backends.openai_backend import OpenAIProtocolClient, openai_strict_schema
from resources.llm import LLMResource

ENV = (
    "LLM_BACKEND",
    "LLM_BASE_URL",
    "LLM_MODEL",
    "LLM_API_KEY",
    "OPENAI_API_KEY",
    "LLM_TIMEOUT_S",
    "LLM_MAX_RETRIES",
    "LLM_MAX_MODEL_LEN",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_per_backend(clean_env: pytest.MonkeyPatch) -> None:
    r = LLMResource.from_env()
    assert (r.backend, r.base_url, r.model) == (
        "vllm",
        "http://127.0.0.1:8000/v1",
        "smollm2-135m-instruct",
    )
    clean_env.setenv("LLM_BACKEND", "ollama")
    assert LLMResource.from_env().base_url == "http://127.0.0.1:11434"
    clean_env.setenv("LLM_BACKEND", "openai")
    clean_env.setenv("OPENAI_API_KEY", "sk-from-openai-env")
    r = LLMResource.from_env()
    assert (r.base_url, r.model, r.api_key) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "sk-from-openai-env",
    )
    clean_env.setenv("LLM_BACKEND", "nope")
    with pytest.raises(ValueError):
        LLMResource.from_env()


def test_env_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_BASE_URL", "http://a:1/v1, http://b:2/v1")
    clean_env.setenv("LLM_MODEL", "m")
    clean_env.setenv("LLM_TIMEOUT_S", "12.5")
    clean_env.setenv("LLM_MAX_MODEL_LEN", "2048")
    clean_env.setenv("LLM_MAX_RETRIES", "0")
    r = LLMResource.from_env()
    client = r.get_client()
    assert isinstance(client, OpenAIProtocolClient)
    assert client.base_urls == ["http://a:1/v1", "http://b:2/v1"]
    assert (client.model, client.timeout_s, r.max_model_len) == ("m", 12.5, 2048)
    assert client.max_retries == 0


def test_api_key_never_shown(clean_env: pytest.MonkeyPatch) -> None:
    secret = "sk-very-SECRET-value"
    for backend in ("vllm", "openai", "ollama"):
        r = LLMResource(backend=backend, api_key=secret)
        client = r.get_client()
        for text in (repr(r), str(r), repr(client), str(client), str(client.generation_params())):
            assert secret not in text


def test_ollama_generation_params_and_unknown_backend() -> None:
    client = LLMResource(backend="ollama", base_url="http://h:11434").get_client()
    assert isinstance(client, OllamaClient)
    assert client.generation_params() == {"temperature": 0.0, "seed": 0, "num_ctx": 8192}
    with pytest.raises(ValueError):
        LLMResource(backend="llamacpp").get_client()


def test_openai_request_uses_strict_schema_and_vllm_uses_structured_outputs() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 5}},
        "required": ["a"],
        "additionalProperties": False,
    }
    openai_client = LLMResource(backend="openai", api_key="k").get_client()
    args = openai_client._request_args(schema, "bio_pack", 100)  # type: ignore[attr-defined]
    rf = args["response_format"]["json_schema"]
    assert rf["strict"] is True and rf["name"] == "bio_pack"
    assert rf["schema"] == openai_strict_schema(schema) and "maxLength" not in str(rf["schema"])
    assert args["max_completion_tokens"] == 100 and args["seed"] == 0
    vllm_client = LLMResource().get_client()
    args = vllm_client._request_args(schema, "bio_pack", 100)  # type: ignore[attr-defined]
    assert args["extra_body"]["structured_outputs"] == {
        "json": schema,
        "disable_any_whitespace": True,
    }
    assert args["max_tokens"] == 100 and args["temperature"] == 0.0


def test_openai_schema_keeps_fields_named_like_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {"maximum": {"type": "integer", "maximum": 3}},
        "required": ["maximum"],
        "additionalProperties": False,
    }
    assert openai_strict_schema(schema)["properties"] == {"maximum": {"type": "integer"}}


@pytest.mark.parametrize(
    ("backend", "env", "expected"),
    [
        ("vllm", {"OPENAI_API_KEY": "sk-o"}, None),
        ("ollama", {"OPENAI_API_KEY": "sk-o"}, None),
        ("openai", {"OPENAI_API_KEY": "sk-o"}, "OPENAI_API_KEY"),
        ("vllm", {"LLM_API_KEY": "k", "OPENAI_API_KEY": "sk-o"}, "LLM_API_KEY"),
        ("openai", {"LLM_API_KEY": "k", "OPENAI_API_KEY": "sk-o"}, "LLM_API_KEY"),
        ("ollama", {"LLM_API_KEY": "k"}, "LLM_API_KEY"),
        ("openai", {}, None),
    ],
)
def test_api_key_rule_in_the_resource_and_the_definitions(
    clean_env: pytest.MonkeyPatch, backend: str, env: dict[str, str], expected: str | None
) -> None:
    """LLM_API_KEY for any backend, OPENAI_API_KEY only for openai: the same in from_env and in
    the Dagster definitions (which pass the key as an EnvVar reference)."""
    from extraction_assets.project import llm_resource_from_env

    clean_env.setenv("LLM_BACKEND", backend)
    for name, value in env.items():
        clean_env.setenv(name, value)
    want = env[expected] if expected else None
    assert LLMResource.from_env().api_key == want
    # The definitions hold an EnvVar reference (its str is the variable's name), never the value.
    llm = llm_resource_from_env()
    assert llm.api_key == expected
    with dg.build_resources({"llm": llm}) as built:
        assert built.llm.api_key == want
