"""What every LLM backend shares: the Completion, the errors, and replica routing with retries.

A backend implements one request to one base URL (`_request_once`) and classifies failures;
`ReplicatedClient.complete` sends each request to the least-busy replica and retries
transient failures with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from extraction_assets.errors import TransportError

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    base_url: str


class Retryable(Exception):
    """Raised by `_request_once` for a failure worth retrying; carries a safe description."""


@runtime_checkable
class LLMClient(Protocol):
    backend: str
    model: str

    async def complete(
        self, messages: list[dict[str, str]], schema: dict, schema_name: str, max_tokens: int
    ) -> Completion: ...

    def generation_params(self) -> dict[str, Any]: ...

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None: ...

    async def aclose(self) -> None: ...


def looks_like_context_overflow(message: str) -> bool:
    m = message.lower()
    return "context length" in m or "context window" in m or "maximum context" in m or (
        "too long" in m and "token" in m
    )


def split_base_urls(base_url: str) -> list[str]:
    urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
    if not urls:
        raise ValueError("no base URL given")
    return urls


class ReplicatedClient:
    """Replica routing (least in-flight requests) and transient-failure retries."""

    backend = "base"

    def __init__(
        self,
        base_urls: list[str],
        model: str,
        *,
        timeout_s: float,
        max_retries: int,
        temperature: float,
        seed: int | None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.base_urls = base_urls
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.temperature = temperature
        self.seed = seed
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.in_flight: dict[str, int] = dict.fromkeys(base_urls, 0)
        self._rr = 0

    def __repr__(self) -> str:  # never shows credentials
        return f"{type(self).__name__}(model={self.model!r}, base_urls={self.base_urls!r})"

    def generation_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "seed": self.seed}

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Each text's tokens by the served model's tokenizer; None when the backend offers
        none (the caller estimates)."""
        return None

    def _pick_url(self) -> str:
        least = min(self.in_flight.values())
        candidates = [u for u in self.base_urls if self.in_flight[u] == least]
        # Rotate among equally idle replicas so the first one is not always preferred.
        self._rr += 1
        return candidates[self._rr % len(candidates)]

    async def _request_once(
        self,
        base_url: str,
        messages: list[dict[str, str]],
        schema: dict,
        schema_name: str,
        max_tokens: int,
    ) -> Completion:
        raise NotImplementedError

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return delay * random.uniform(0.5, 1.5)

    async def complete(
        self, messages: list[dict[str, str]], schema: dict, schema_name: str, max_tokens: int
    ) -> Completion:
        last_url, last_error = self.base_urls[0], "no attempt made"
        for attempt in range(self.max_retries + 1):
            url = self._pick_url()
            self.in_flight[url] += 1
            started = time.monotonic()
            try:
                completion = await self._request_once(
                    url, messages, schema, schema_name, max_tokens
                )
                if not completion.latency_s:
                    completion.latency_s = time.monotonic() - started
                return completion
            except Retryable as exc:
                last_url, last_error = url, str(exc)
            finally:
                self.in_flight[url] -= 1
            if attempt < self.max_retries:
                delay = self._backoff(attempt)
                log.warning(
                    "LLM request to %s failed (%s); retry %d/%d in %.1fs",
                    last_url, last_error, attempt + 1, self.max_retries, delay,
                )
                await asyncio.sleep(delay)
        raise TransportError(
            last_url, f"{last_error} (after {self.max_retries + 1} attempts)"
        )

    async def aclose(self) -> None:
        return None
