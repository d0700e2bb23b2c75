"""Progress of a run: counters, and one log line every progress_interval_s and at the end."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int
    ok: int = 0
    failed: int = 0
    calls: int = 0
    retried_calls: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def items_per_min(self) -> float:
        return 60.0 * self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def output_tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (self.total - self.done) / rate if rate > 0 else None

    def line(self) -> str:
        eta = self.eta_s()
        eta_text = "?" if eta is None else f"{eta:.0f}s"
        return (
            f"extraction: {self.done}/{self.total} items done "
            f"({self.ok} ok, {self.failed} failed), "
            f"{self.items_per_min:.1f} items/min, {self.output_tokens_per_s:.1f} output tok/s, "
            f"{self.in_flight} calls in flight, ETA {eta_text}"
        )


async def report_periodically(progress: Progress, log: logging.Logger, interval_s: float) -> None:
    """Log a progress line every interval_s until cancelled."""
    while True:
        await asyncio.sleep(max(interval_s, 0.1))
        log.info(progress.line())
