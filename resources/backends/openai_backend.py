"""vLLM and OpenAI through the OpenAI chat-completions protocol (`openai.AsyncOpenAI`).

One SDK client per base URL, SDK retries off (ReplicatedClient retries, across replicas).
vLLM gets its structured-outputs request (schema + compact JSON); OpenAI gets
response_format json_schema with strict=True.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from typing import Any

import httpx
import openai

from extraction_assets.errors import ContextLengthError, RequestRejectedError
from resources.backends.base import (
    Completion,
    ReplicatedClient,
    Retryable,
    looks_like_context_overflow,
    retry_after_seconds,
)

_RETRY_STATUSES = {408, 409, 425, 429}
_TOKENIZE_IN_FLIGHT = 16


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        msg = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(msg, str):
            return msg[:500]
    return str(exc.message)[:500]


# Keywords OpenAI strict mode has rejected (or not enforced) across model versions; the
# client-side pydantic validation enforces them anyway.
_OPENAI_UNSAFE_KEYWORDS = ("maxLength", "minLength", "minimum", "maximum")


def openai_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without keywords OpenAI strict mode may refuse."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key in ("properties", "$defs"):  # maps of names (a field may be called "maximum")
                out[key] = {name: walk(sub) for name, sub in value.items()}
            elif key not in _OPENAI_UNSAFE_KEYWORDS:
                out[key] = walk(value)
        return out

    strict: dict[str, Any] = walk(copy.deepcopy(schema))
    return strict


class OpenAIProtocolClient(ReplicatedClient):
    """Client for vLLM (backend="vllm") and the OpenAI API (backend="openai")."""

    def __init__(
        self, backend: str, base_urls: list[str], model: str, *, api_key: str | None, **kwargs: Any
    ) -> None:
        super().__init__(base_urls, model, **kwargs)
        if backend not in ("vllm", "openai"):
            raise ValueError(f"not an OpenAI-protocol backend: {backend!r}")
        self.backend = backend
        # vLLM ignores the key unless started with --api-key; the SDK insists on one.
        key = api_key or "EMPTY"
        self._sdk = {
            url: openai.AsyncOpenAI(
                base_url=url, api_key=key, timeout=self.timeout_s, max_retries=0
            )
            for url in base_urls
        }

    def _request_args(
        self, schema: dict[str, Any], schema_name: str, max_tokens: int
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"temperature": self.temperature}
        if self.seed is not None:
            args["seed"] = self.seed
        if self.backend == "vllm":
            args["max_tokens"] = max_tokens
            # disable_any_whitespace: compact JSON, fewer output tokens. vLLM 0.32 reads it from
            # the server's --structured-outputs-config; sent per request too for servers that
            # honour it there.
            args["extra_body"] = {
                "structured_outputs": {"json": schema, "disable_any_whitespace": True}
            }
        else:
            args["max_completion_tokens"] = max_tokens
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name,
                    "schema": openai_strict_schema(schema),
                    "strict": True,
                },
            }
        return args

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
            response = await self._sdk[base_url].chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                **self._request_args(schema, schema_name, max_tokens),
            )
        except openai.APITimeoutError:
            raise Retryable(f"timeout after {self.timeout_s:.0f}s") from None
        except openai.APIConnectionError as exc:
            raise Retryable(
                f"connection error: {type(exc.__cause__ or exc).__name__}", replica_down=True
            ) from None
        except openai.APIStatusError as exc:
            status, message = exc.status_code, _error_message(exc)
            if status in _RETRY_STATUSES or status >= 500:
                wait = retry_after_seconds(exc.response.headers.get("retry-after"))
                raise Retryable(f"HTTP {status}: {message[:200]}", retry_after=wait) from None
            if status in (400, 413, 422) and looks_like_context_overflow(message):
                raise ContextLengthError(base_url, message) from None
            raise RequestRejectedError(base_url, status, message) from None
        except openai.APIResponseValidationError as exc:
            raise Retryable(f"malformed response: {exc.message[:200]}") from None
        except ValueError as exc:  # e.g. a 200 whose body is not JSON
            raise Retryable(f"malformed response: {type(exc).__name__}") from None
        latency = time.monotonic() - started
        if not getattr(response, "choices", None):
            raise Retryable("response without choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=(usage.prompt_tokens if usage else 0) or 0,
            completion_tokens=(usage.completion_tokens if usage else 0) or 0,
            latency_s=latency,
            base_url=base_url,
        )

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """vLLM: its `POST /tokenize` (at the server root, not /v1), texts counted concurrently,
        without special tokens. OpenAI offers no tokenizer endpoint: None."""
        if self.backend != "vllm" or not texts:
            return None if self.backend != "vllm" else []
        url = (self.in_rotation() or self.base_urls)[0]  # a replica that answers
        root = url.removesuffix("/v1")
        key = self._sdk[url].api_key
        headers = {"Authorization": f"Bearer {key}"} if key and key != "EMPTY" else None
        limit = asyncio.Semaphore(_TOKENIZE_IN_FLIGHT)
        # Short: a server that cannot count quickly is estimated instead (the run goes on).
        async with httpx.AsyncClient(
            timeout=min(self.timeout_s, 30.0), headers=headers, trust_env=False
        ) as http:

            async def one(text: str) -> int:
                async with limit:
                    response = await http.post(
                        f"{root}/tokenize",
                        json={"model": self.model, "prompt": text, "add_special_tokens": False},
                    )
                    response.raise_for_status()
                    return int(response.json()["count"])

            try:
                return list(await asyncio.gather(*(one(t) for t in texts)))
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                return None

    async def _probe(self, base_url: str) -> bool:
        await self._sdk[base_url].with_options(timeout=self.probe_timeout_s).models.list()
        return True

    async def aclose(self) -> None:
        await super().aclose()
        for sdk in self._sdk.values():
            await sdk.close()
