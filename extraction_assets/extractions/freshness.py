"""How long a corpus's last source change has waited for an extraction (no Dagster here).

A corpus is fresh when its newest extraction is newer than the last change of its source files, or
when the change is younger than the allowed lag. The source sensor evaluates this every tick from file
times and the latest materialisation (no store access); the `source_freshness` check in a run also
compares the store's texts with the source's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from extraction_assets.corpora.sources import corpus_dir

# How long a source change may wait for its extraction before the check fails: the catch-up
# schedule runs daily, so a corpus the sensor missed is caught within a day.
DEFAULT_MAX_LAG = timedelta(hours=24)


def source_changed_at(root: Path, corpus: str) -> float | None:
    """The newest modification time (epoch seconds) of the corpus folder and its entries; None when
    the folder is gone. Hidden entries (temp files of an atomic write) do not count."""
    try:
        folder = corpus_dir(root, corpus)
        times = [folder.stat().st_mtime]
        times += [p.stat().st_mtime for p in folder.iterdir() if not p.name.startswith(".")]
    except (OSError, ValueError):
        return None
    return max(times)


@dataclass(frozen=True)
class Freshness:
    corpus: str
    source_changed_at: float | None  # epoch seconds; None: the folder is gone
    extracted_at: float | None  # the newest extraction (materialisation) of the corpus
    checked_at: float
    max_lag_s: float

    @property
    def waiting_s(self) -> float:
        """How long the source's last change has waited for an extraction (0: none waiting)."""
        if self.source_changed_at is None:
            return 0.0
        if self.extracted_at is not None and self.extracted_at >= self.source_changed_at:
            return 0.0
        return max(0.0, self.checked_at - self.source_changed_at)

    @property
    def fresh(self) -> bool:
        return self.waiting_s <= self.max_lag_s

    def metadata(self) -> dict[str, str | float]:
        def when(ts: float | None) -> str:
            return (
                "-" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
            )

        return {
            "source_changed_at": when(self.source_changed_at),
            "newest_extraction_at": when(self.extracted_at),
            "waiting_minutes": round(self.waiting_s / 60, 1),
            "allowed_minutes": round(self.max_lag_s / 60, 1),
        }


def evaluate_freshness(
    root: Path,
    corpus: str,
    extracted_at: float | None,
    max_lag: timedelta = DEFAULT_MAX_LAG,
    now: float | None = None,
) -> Freshness:
    return Freshness(
        corpus=corpus,
        source_changed_at=source_changed_at(root, corpus),
        extracted_at=extracted_at,
        checked_at=time.time() if now is None else now,
        max_lag_s=max_lag.total_seconds(),
    )
