"""The LLM resource: which server, which model, how to talk to it.

`get_client()` returns an `LLMClient` for the configured backend. base_url may list several
replicas of one model, comma-separated; each request goes to the least-busy one.
The API key is a secret: it is never logged, never part of repr/str, never in errors.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from extraction_assets.settings import DEFAULT_MAX_MODEL_LEN, LLMEnvironment
from resources.backends.base import Completion, LLMClient, split_base_urls

BACKENDS = ("vllm", "ollama", "openai")
DEFAULT_BASE_URL = {
    "vllm": "http://127.0.0.1:8000/v1",
    "ollama": "http://127.0.0.1:11434",
    "openai": "https://api.openai.com/v1",
}
DEFAULT_MODEL = {
    "vllm": "smollm2-135m-instruct",
    "ollama": "smollm2:135m",
    "openai": "gpt-4o-mini",
}


def api_key_env_var(backend: str, env: LLMEnvironment | None = None) -> str | None:
    """The environment variable holding this backend's key, or None: LLM_API_KEY for any backend,
    OPENAI_API_KEY only for openai (an OpenAI key must never reach a vLLM or Ollama server)."""
    env = env or LLMEnvironment()
    if env.api_key:
        return "LLM_API_KEY"
    if backend == "openai" and env.openai_api_key:
        return "OPENAI_API_KEY"
    return None


class LLMResource(dg.ConfigurableResource):  # type: ignore[type-arg]  # used unparametrised
    """An LLM server (vLLM, Ollama or OpenAI) serving one model."""

    backend: str = Field(default="vllm", description='"vllm" | "ollama" | "openai"')
    base_url: str = Field(
        default=DEFAULT_BASE_URL["vllm"],
        description="server URL; a comma-separated list means replicas of one model",
    )
    model: str = Field(default=DEFAULT_MODEL["vllm"], description="served model name")
    api_key: str | None = Field(
        default=None, repr=False, description="secret; set from the environment via dg.EnvVar"
    )
    timeout_s: float = 600.0
    max_retries: int = Field(
        default=4, ge=0, description="retries of a failed request (backoff 1 s doubling to 30 s)"
    )
    temperature: float = 0.0
    seed: int | None = 0
    max_model_len: int = Field(
        default=DEFAULT_MAX_MODEL_LEN,
        description="context of the served model (ollama: becomes num_ctx)",
    )

    def __repr__(self) -> str:
        return (
            f"LLMResource(backend={self.backend!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, api_key={'<set>' if self.api_key else None})"
        )

    __str__ = __repr__

    def get_client(self) -> LLMClient:
        urls = split_base_urls(self.base_url)
        common = {
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        if self.backend in ("vllm", "openai"):
            from resources.backends.openai_backend import OpenAIProtocolClient

            return OpenAIProtocolClient(
                self.backend, urls, self.model, api_key=self.api_key, **common
            )
        if self.backend == "ollama":
            from resources.backends.ollama_backend import OllamaClient

            return OllamaClient(
                urls, self.model, api_key=self.api_key, max_model_len=self.max_model_len, **common
            )
        raise ValueError(f"unknown LLM backend {self.backend!r}; expected one of {BACKENDS}")

    @classmethod
    def from_env(cls, env: LLMEnvironment | None = None) -> LLMResource:
        """Configuration from LLM_BACKEND, LLM_BASE_URL, LLM_MODEL, the key (`api_key_env_var`),
        LLM_TIMEOUT_S, LLM_MAX_RETRIES, LLM_MAX_MODEL_LEN, LLM_TEMPERATURE, LLM_SEED (read by
        `extraction_assets.settings`; `env` defaults to the current environment);
        per-backend defaults."""
        env = env or LLMEnvironment()
        backend = env.backend.strip().lower() or "vllm"
        if backend not in BACKENDS:
            raise ValueError(f"LLM_BACKEND={backend!r}; expected one of {BACKENDS}")
        keys = {"LLM_API_KEY": env.api_key, "OPENAI_API_KEY": env.openai_api_key}
        key_var = api_key_env_var(backend, env)
        kwargs: dict[str, Any] = {
            "backend": backend,
            "base_url": env.base_url or DEFAULT_BASE_URL[backend],
            "model": env.model or DEFAULT_MODEL[backend],
            "api_key": keys[key_var] if key_var else None,
        }
        optional = {
            "timeout_s": env.timeout_s,
            "max_retries": env.max_retries,
            "max_model_len": env.max_model_len,
            "temperature": env.temperature,
            "seed": env.seed,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        return cls(**kwargs)


__all__ = [
    "BACKENDS",
    "Completion",
    "LLMClient",
    "LLMResource",
    "api_key_env_var",
]
