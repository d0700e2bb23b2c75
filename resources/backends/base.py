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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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
    """Raised by `_request_once` for a failure worth retrying; carries a safe description.

    replica_down: the replica could not be reached (refused, reset): take it out of rotation.
    retry_after: the server asked to wait this many seconds (a 429's Retry-After).
    """

    def __init__(
        self, message: str, *, replica_down: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.replica_down = replica_down
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's delay in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@runtime_checkable
class LLMClient(Protocol):
    backend: str
    model: str

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
    ) -> Completion: ...

    def generation_params(self) -> dict[str, Any]: ...

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None: ...

    async def aclose(self) -> None: ...


def looks_like_context_overflow(message: str) -> bool:
    m = message.lower()
    return (
        "context length" in m
        or "context window" in m
        or "maximum context" in m
        or ("too long" in m and "token" in m)
    )


def split_base_urls(base_url: str) -> list[str]:
    urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
    if not urls:
        raise ValueError("no base URL given")
    return urls


@dataclass
class _Replica:
    url: str
    in_flight: int = 0
    down: bool = False  # out of rotation until a probe (or a request) finds it answering
    rest_until: float = 0.0  # monotonic time a 429's Retry-After asked to wait for
    probe: asyncio.Task[None] | None = field(default=None, repr=False)


class ReplicatedClient:
    """Replica routing and retries.

    Each request goes to the least busy replica in rotation. A replica that cannot be reached is
    taken out of rotation, its request sent at once to another (that does not use up a retry),
    and a background probe (`_probe`, with exponential backoff) puts it back when it answers.
    Only when every replica is out are requests retried against all of them with backoff, as
    with one server, so a run fails with TransportError only when all are unreachable. A 429's
    Retry-After (capped at retry_after_max_s) rests that replica: the retry waits that long
    unless another replica is ready.
    """

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
        retry_after_max_s: float = 120.0,
        probe_base_s: float = 1.0,
        probe_max_s: float = 30.0,
        probe_timeout_s: float = 5.0,
    ) -> None:
        self.base_urls = base_urls
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.temperature = temperature
        self.seed = seed
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.probe_base_s = probe_base_s
        self.probe_max_s = probe_max_s
        self.probe_timeout_s = probe_timeout_s
        self.replicas = {url: _Replica(url) for url in base_urls}
        # (monotonic time, url, "out" | "back"): when replicas left and rejoined the rotation.
        self.rotation_events: list[tuple[float, str, str]] = []
        self._rr = 0

    def __repr__(self) -> str:  # never shows credentials
        return f"{type(self).__name__}(model={self.model!r}, base_urls={self.base_urls!r})"

    def generation_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "seed": self.seed}

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Each text's tokens by the served model's tokenizer; None when the backend offers
        none (the caller estimates)."""
        return None

    @property
    def in_flight(self) -> dict[str, int]:
        return {url: r.in_flight for url, r in self.replicas.items()}

    def in_rotation(self) -> list[str]:
        return [url for url, r in self.replicas.items() if not r.down]

    def _live(self) -> list[_Replica]:
        # With every replica out, all are tried (each request doubles as a probe).
        return [r for r in self.replicas.values() if not r.down] or list(self.replicas.values())

    def _pick_url(self) -> str:
        now = time.monotonic()
        live = self._live()
        ready = [r for r in live if r.rest_until <= now] or live
        least = min(r.in_flight for r in ready)
        candidates = [r.url for r in ready if r.in_flight == least]
        # Rotate among equally idle replicas so the first one is not always preferred.
        self._rr += 1
        return candidates[self._rr % len(candidates)]

    def _rest_left(self) -> float:
        """Seconds until some live replica may be asked again (0 when one is ready)."""
        now = time.monotonic()
        return max(0.0, min(r.rest_until for r in self._live()) - now)

    # -- rotation ---------------------------------------------------------------------------
    def _take_out(self, url: str, reason: str) -> None:
        replica = self.replicas[url]
        if replica.down:
            return
        replica.down = True
        self.rotation_events.append((time.monotonic(), url, "out"))
        log.warning("LLM replica %s unreachable (%s): out of rotation, probing it", url, reason)
        if replica.probe is None or replica.probe.done():
            replica.probe = asyncio.ensure_future(self._probe_until_back(url))

    def _bring_back(self, url: str) -> None:
        replica = self.replicas[url]
        if not replica.down:
            return
        replica.down = False
        self.rotation_events.append((time.monotonic(), url, "back"))
        log.warning("LLM replica %s answers again: back in rotation", url)

    async def _probe_until_back(self, url: str) -> None:
        delay = self.probe_base_s
        while self.replicas[url].down:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                answered = await asyncio.wait_for(self._probe(url), self.probe_timeout_s)
            except Exception:
                answered = False
            if answered:
                self._bring_back(url)
                return
            delay = min(self.probe_max_s, delay * 2)

    async def _probe(self, base_url: str) -> bool:
        """True when the replica answers a cheap request (its model list)."""
        raise NotImplementedError

    # -- requests ---------------------------------------------------------------------------
    async def _request_once(
        self,
        base_url: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
    ) -> Completion:
        raise NotImplementedError

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2.0**attempt)
        return delay * random.uniform(0.5, 1.5)

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
    ) -> Completion:
        last_url, last_error = self.base_urls[0], "no attempt made"
        attempt = failovers = 0
        while True:
            rest = self._rest_left()
            if rest > 0:
                await asyncio.sleep(rest)
            url = self._pick_url()
            replica = self.replicas[url]
            replica.in_flight += 1
            started = time.monotonic()
            try:
                completion = await self._request_once(
                    url, messages, schema, schema_name, max_tokens
                )
                if not completion.latency_s:
                    completion.latency_s = time.monotonic() - started
                self._bring_back(url)
                return completion
            except Retryable as exc:
                last_url, last_error, failure = url, str(exc), exc
            finally:
                replica.in_flight -= 1
            if failure.replica_down:
                self._take_out(url, last_error)
                # Another replica in rotation takes the request now; bounded, as replicas
                # probed back may fail again.
                if self.in_rotation() and failovers < 2 * len(self.replicas):
                    failovers += 1
                    continue
            if failure.retry_after is not None:
                replica.rest_until = time.monotonic() + min(
                    failure.retry_after, self.retry_after_max_s
                )
            if attempt >= self.max_retries:
                break
            # A rested replica waits for its Retry-After (at the top of the loop), not backoff.
            delay = 0.0 if failure.retry_after is not None else self._backoff(attempt)
            attempt += 1
            log.warning(
                "LLM request to %s failed (%s); retry %d/%d in %.1fs",
                last_url,
                last_error,
                attempt,
                self.max_retries,
                delay or self._rest_left(),
            )
            await asyncio.sleep(delay)
        raise TransportError(last_url, f"{last_error} (after {attempt + 1} attempts)")

    async def aclose(self) -> None:
        for replica in self.replicas.values():
            if replica.probe is not None and not replica.probe.done():
                replica.probe.cancel()
