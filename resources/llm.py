"""The LLM resource: which server, which model, how to talk to it.

`get_client()` returns an `LLMClient` for the configured backend. base_url may list several
replicas of one model, comma-separated; each request goes to the least-busy one.
The API key is a secret: it is never logged, never part of repr/str, never in errors.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from resources.backends.base import (
    Completion,
    ContextLengthError,
    LLMClient,
    RequestRejectedError,
    TransportError,
    split_base_urls,
)

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


def api_key_env_var(backend: str) -> str | None:
    """The environment variable holding this backend's key, or None: LLM_API_KEY for any backend,
    OPENAI_API_KEY only for openai (an OpenAI key must never reach a vLLM or Ollama server)."""
    if os.environ.get("LLM_API_KEY"):
        return "LLM_API_KEY"
    if backend == "openai" and os.environ.get("OPENAI_API_KEY"):
        return "OPENAI_API_KEY"
    return None


class LLMResource(dg.ConfigurableResource):
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
    max_retries: int = 4
    temperature: float = 0.0
    seed: int | None = 0
    max_model_len: int = Field(
        default=8192, description="context of the served model (ollama: becomes num_ctx)"
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
    def from_env(cls) -> LLMResource:
        """Configuration from LLM_BACKEND, LLM_BASE_URL, LLM_MODEL, the key (`api_key_env_var`),
        LLM_TIMEOUT_S, LLM_MAX_MODEL_LEN, LLM_TEMPERATURE, LLM_SEED;
        per-backend defaults."""
        backend = os.environ.get("LLM_BACKEND", "vllm").strip().lower() or "vllm"
        if backend not in BACKENDS:
            raise ValueError(f"LLM_BACKEND={backend!r}; expected one of {BACKENDS}")
        key_var = api_key_env_var(backend)
        kwargs: dict = {
            "backend": backend,
            "base_url": os.environ.get("LLM_BASE_URL") or DEFAULT_BASE_URL[backend],
            "model": os.environ.get("LLM_MODEL") or DEFAULT_MODEL[backend],
            "api_key": os.environ[key_var] if key_var else None,
        }
        if os.environ.get("LLM_TIMEOUT_S"):
            kwargs["timeout_s"] = float(os.environ["LLM_TIMEOUT_S"])
        if os.environ.get("LLM_MAX_MODEL_LEN"):
            kwargs["max_model_len"] = int(os.environ["LLM_MAX_MODEL_LEN"])
        if os.environ.get("LLM_TEMPERATURE"):
            kwargs["temperature"] = float(os.environ["LLM_TEMPERATURE"])
        if os.environ.get("LLM_SEED"):
            kwargs["seed"] = int(os.environ["LLM_SEED"])
        return cls(**kwargs)


__all__ = [
    "BACKENDS",
    "Completion",
    "ContextLengthError",
    "LLMClient",
    "LLMResource",
    "RequestRejectedError",
    "TransportError",
    "api_key_env_var",
]
