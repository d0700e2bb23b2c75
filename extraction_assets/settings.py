"""Where things live and which tasks run, read from the environment once.

Everything a user changes between machines (paths, backend, tasks) is an environment variable, never code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SOURCE_ROOT = Path(__file__).parent / "sample_data" / "corpora"
_CHECKOUT = Path(__file__).resolve().parents[1]


def default_home() -> Path:
    """$EXTRACTION_HOME; else `.extraction` in the source checkout (absolute, so the webserver, daemon
    and CLI agree whatever their working directory); else a per-user data folder."""
    if "EXTRACTION_HOME" in os.environ:
        return Path(os.environ["EXTRACTION_HOME"]).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").exists():
        return _CHECKOUT / ".extraction"
    return Path("~/.local/share/extraction-assets").expanduser()


@dataclass(frozen=True)
class Settings:
    home: Path  # EXTRACTION_HOME: store, exports, server state
    source_root: Path  # EXTRACTION_SOURCE_ROOT: one sub-folder per corpus
    store_path: Path  # EXTRACTION_DB
    export_dir: Path  # EXTRACTION_EXPORT_DIR: Parquet exports of typed tables
    tasks: tuple[str, ...]  # EXTRACTION_TASKS: comma-separated task references (load_task)
    schedule_cron: str  # EXTRACTION_SCHEDULE_CRON
    sensor_interval_s: int  # EXTRACTION_SENSOR_INTERVAL_S
    # EXTRACTION_GOLD_SAMPLE: gold sets scored by the gold_sample check, "set[:size]" comma-separated
    # (sample = the bundled gold, taqrib / redocred from the shared data); "none" = no check.
    gold_sample: tuple[tuple[str, int | None], ...] = (("sample", None),)
    gold_threshold: float = 0.5  # EXTRACTION_GOLD_THRESHOLD: the check warns below this mean score
    gold_seed: int = 0  # EXTRACTION_GOLD_SEED: which documents a sized sample takes

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        home = default_home()
        return cls(
            home=home,
            source_root=Path(env.get("EXTRACTION_SOURCE_ROOT", SAMPLE_SOURCE_ROOT))
            .expanduser()
            .resolve(),
            store_path=Path(env.get("EXTRACTION_DB", home / "store.duckdb")).expanduser().resolve(),
            export_dir=Path(env.get("EXTRACTION_EXPORT_DIR", home / "exports"))
            .expanduser()
            .resolve(),
            tasks=tuple(
                t.strip() for t in env.get("EXTRACTION_TASKS", "biography").split(",") if t.strip()
            ),
            schedule_cron=env.get("EXTRACTION_SCHEDULE_CRON", "0 2 * * *"),
            sensor_interval_s=int(env.get("EXTRACTION_SENSOR_INTERVAL_S", "30")),
            gold_sample=parse_gold_sample(env.get("EXTRACTION_GOLD_SAMPLE", "sample")),
            gold_threshold=float(env.get("EXTRACTION_GOLD_THRESHOLD", "0.5")),
            gold_seed=int(env.get("EXTRACTION_GOLD_SEED", "0")),
        )


def parse_gold_sample(text: str) -> tuple[tuple[str, int | None], ...]:
    """ "taqrib:20,sample" -> (("taqrib", 20), ("sample", None)); "none" or "" -> ()."""
    out: list[tuple[str, int | None]] = []
    for part in text.split(","):
        name, _, size = part.strip().partition(":")
        name = name.strip()
        if not name or name.lower() == "none":
            continue
        try:
            count = int(size) if size.strip() else None
        except ValueError:
            raise ValueError(f"EXTRACTION_GOLD_SAMPLE: bad size in {part.strip()!r}") from None
        if count is not None and count < 1:
            raise ValueError(f"EXTRACTION_GOLD_SAMPLE: size must be >= 1 in {part.strip()!r}")
        out.append((name, count))
    return tuple(out)
