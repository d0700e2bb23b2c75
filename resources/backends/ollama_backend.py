"""Ollama through the official `ollama.AsyncClient` and its native /api/chat.

format=schema constrains the answer; num_ctx is the served context (max_model_len) and
num_predict the call's output budget. done_reason "length" maps to finish_reason "length".

Ollama does not refuse a prompt longer than its context: it drops the older messages (the system
message too), keeps the last num_ctx tokens, and answers 200. `prompt_cut` compares the prompt
Ollama reports it evaluated with what the request must at least hold; a cut prompt is a
`ContextLengthError` (the engine splits the pack, or fails a lone document as too long).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import ollama

from extraction_assets.errors import ContextLengthError, RequestRejectedError
from resources.backends.base import (
    Completion,
    ReplicatedClient,
    Retryable,
    looks_like_context_overflow,
)

# No chat model's tokenizer averages more UTF-8 bytes per token than this over a whole prompt, so
# bytes / this is a floor on the tokens an intact prompt costs (the template adds more).
MAX_BYTES_PER_TOKEN = 8


def prompt_cut(
    messages: list[dict[str, str]], prompt_eval_count: int, num_predict: int, num_ctx: int
) -> str | None:
    """Why Ollama's count shows the prompt was not kept whole, or None.

    The engine plans each call so that its prompt and answer budget fit the context; a prompt
    that leaves less than the budget was cut (Ollama keeps at most num_ctx tokens, or drops the
    system message and keeps the rest), or would be shifted out of the context while the answer
    is written. A count below the request's floor means a large front part was dropped.
    """
    if prompt_eval_count + num_predict > num_ctx:
        return (
            f"Ollama evaluated {prompt_eval_count} prompt tokens, which leaves less than the "
            f"answer's {num_predict} in its context of {num_ctx}: the prompt was cut or "
            "would be"
        )
    floor = sum(len(m["content"].encode("utf-8")) for m in messages) // MAX_BYTES_PER_TOKEN
    if prompt_eval_count < floor:
        return (
            f"Ollama evaluated {prompt_eval_count} prompt tokens where the request holds at "
            f"least {floor}: it dropped the front of a prompt longer than its context"
        )
    return None


def native_host(base_url: str) -> str:
    """Ollama's native API lives at the root; accept an OpenAI-style .../v1 URL too."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OllamaClient(ReplicatedClient):
    backend = "ollama"

    def __init__(
        self,
        base_urls: list[str],
        model: str,
        *,
        api_key: str | None,
        max_model_len: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_urls, model, **kwargs)
        self.max_model_len = max_model_len
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._sdk = {
            url: ollama.AsyncClient(host=native_host(url), timeout=self.timeout_s, headers=headers)
            for url in base_urls
        }

    def generation_params(self) -> dict[str, Any]:
        return {**super().generation_params(), "num_ctx": self.max_model_len}

    def _options(self, max_tokens: int) -> dict[str, Any]:
        options: dict[str, Any] = {
            "temperature": self.temperature,
            "num_ctx": self.max_model_len,
            "num_predict": max_tokens,
        }
        if self.seed is not None:
            options["seed"] = self.seed
        return options

    async def _request_once(
        self,
        base_url: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
    ) -> Completion:
        started = time.monotonic()
        try:
            response = await self._sdk[base_url].chat(
                model=self.model,
                messages=messages,
                format=schema,
                options=self._options(max_tokens),
                stream=False,
            )
        except httpx.TimeoutException:
            raise Retryable(f"timeout after {self.timeout_s:.0f}s") from None
        except (ConnectionError, httpx.TransportError) as exc:
            raise Retryable(f"connection error: {type(exc).__name__}", replica_down=True) from None
        except ollama.ResponseError as exc:
            status, message = exc.status_code, str(exc.error)[:500]
            if status in (408, 429) or status >= 500 or status < 0:
                raise Retryable(f"HTTP {status}: {message[:200]}") from None
            if looks_like_context_overflow(message):
                raise ContextLengthError(base_url, message) from None
            raise RequestRejectedError(base_url, status, message) from None
        except ValueError as exc:  # a body that is not JSON / not a chat response
            raise Retryable(f"malformed response: {type(exc).__name__}") from None
        cut = prompt_cut(messages, response.prompt_eval_count or 0, max_tokens, self.max_model_len)
        if cut is not None:
            raise ContextLengthError(base_url, cut)
        done_reason = response.done_reason
        return Completion(
            text=(response.message.content if response.message else "") or "",
            finish_reason="length" if done_reason == "length" else (done_reason or "stop"),
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
            latency_s=time.monotonic() - started,
            base_url=base_url,
        )

    async def _probe(self, base_url: str) -> bool:
        await self._sdk[base_url].list()
        return True

    async def aclose(self) -> None:
        await super().aclose()
        for sdk in self._sdk.values():
            await sdk._client.aclose()
