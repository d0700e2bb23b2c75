"""Where things live and which tasks run: the one place that reads the environment.

Everything a user changes between machines (paths, backend, tasks) is an environment variable, never
code. `Settings.from_env()` reads them all once (pydantic-settings: a bad value is an error naming
its variable) and the result is passed down; nothing else reads `os.environ`.

Paths follow one rule: everything a project writes (store, exports, Dagster home, local server
state) lives under `home()`; the converted embedded model, the same for every checkout, lives in the
user cache (`~/.cache/extraction-assets/models/`) so a fresh clone does not convert it again.
Ground floor: imports nothing from this project, so any layer (resources/ included) may import it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_SOURCE_ROOT = Path(__file__).parent / "sample_data" / "corpora"
_CHECKOUT = Path(__file__).resolve().parents[1]

DEFAULT_MAX_MODEL_LEN = 8192  # the served context (LLM_MAX_MODEL_LEN, the local server's default)
DEFAULT_MAX_FILE_BYTES = 1 << 30  # a corpus file larger than this is refused (1 GiB)
APP_NAME = "extraction-assets"
DEFAULT_EVAL_DATA = _CHECKOUT.parent / "shared" / "data"  # the shared gold data beside the checkout


class _Blank(BaseSettings):
    """Empty values count as unset (`LLM_BASE_URL=` keeps the default, as a shell user expects)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)


class LLMEnvironment(_Blank):
    """LLM_* variables as given (None = unset); `resources.llm.LLMResource.from_env` applies the
    per-backend defaults and the API-key rule."""

    backend: str = Field(default="vllm", validation_alias="LLM_BACKEND")
    base_url: str | None = Field(default=None, validation_alias="LLM_BASE_URL")
    model: str | None = Field(default=None, validation_alias="LLM_MODEL")
    api_key: str | None = Field(default=None, repr=False, validation_alias="LLM_API_KEY")
    openai_api_key: str | None = Field(default=None, repr=False, validation_alias="OPENAI_API_KEY")
    timeout_s: float | None = Field(default=None, validation_alias="LLM_TIMEOUT_S")
    max_retries: int | None = Field(default=None, ge=0, validation_alias="LLM_MAX_RETRIES")
    max_model_len: int | None = Field(default=None, validation_alias="LLM_MAX_MODEL_LEN")
    temperature: float | None = Field(default=None, validation_alias="LLM_TEMPERATURE")
    seed: int | None = Field(default=None, validation_alias="LLM_SEED")


class _Environment(_Blank):
    """EXTRACTION_* (and DAGSTER_HOME) as given; `Settings.from_env` derives the defaults."""

    home: Path | None = Field(default=None, validation_alias="EXTRACTION_HOME")
    source_root: Path = Field(default=SAMPLE_SOURCE_ROOT, validation_alias="EXTRACTION_SOURCE_ROOT")
    db: Path | None = Field(default=None, validation_alias="EXTRACTION_DB")
    store: str | None = Field(default=None, repr=False, validation_alias="EXTRACTION_STORE")
    lake_data_path: str | None = Field(default=None, validation_alias="EXTRACTION_LAKE_DATA_PATH")
    server_retries: int = Field(default=3, ge=0, validation_alias="EXTRACTION_SERVER_RETRIES")
    llm_pool: str | None = Field(default=None, validation_alias="EXTRACTION_LLM_POOL")
    celery_broker: str | None = Field(
        default=None, repr=False, validation_alias="EXTRACTION_CELERY_BROKER"
    )
    celery_visibility_timeout_s: int = Field(
        default=6 * 3600, gt=0, validation_alias="EXTRACTION_CELERY_VISIBILITY_TIMEOUT_S"
    )
    export_dir: Path | None = Field(default=None, validation_alias="EXTRACTION_EXPORT_DIR")
    tasks: str = Field(default="biography", validation_alias="EXTRACTION_TASKS")
    schedule_cron: str = Field(default="0 2 * * *", validation_alias="EXTRACTION_SCHEDULE_CRON")
    sensor_interval_s: int = Field(default=30, validation_alias="EXTRACTION_SENSOR_INTERVAL_S")
    automation_default: Literal["running", "stopped"] = Field(
        default="running", validation_alias="EXTRACTION_AUTOMATION_DEFAULT"
    )
    gold_sample: str = Field(default="sample", validation_alias="EXTRACTION_GOLD_SAMPLE")
    gold_threshold: float = Field(default=0.5, validation_alias="EXTRACTION_GOLD_THRESHOLD")
    gold_seed: int = Field(default=0, validation_alias="EXTRACTION_GOLD_SEED")
    max_file_bytes: int = Field(
        default=DEFAULT_MAX_FILE_BYTES, gt=0, validation_alias="EXTRACTION_MAX_FILE_BYTES"
    )
    eval_data: Path | None = Field(default=None, validation_alias="EXTRACTION_EVAL_DATA")
    model_cache: Path | None = Field(default=None, validation_alias="EXTRACTION_MODEL_CACHE")
    vllm_model: str | None = Field(default=None, validation_alias="EXTRACTION_VLLM_MODEL")
    vllm_args: str = Field(default="", validation_alias="EXTRACTION_VLLM_ARGS")
    dagster_home: Path | None = Field(default=None, validation_alias="DAGSTER_HOME")
    prices: str | None = Field(default=None, validation_alias="EXTRACTION_PRICES")

    @field_validator("llm_pool")
    @classmethod
    def _pool_name(cls, value: str | None) -> str | None:
        # Dagster's rule for a pool name: no whitespace.
        if value is not None and (not value.strip() or any(c.isspace() for c in value.strip())):
            raise ValueError(f"a pool name has no spaces, got {value!r}")
        return value.strip() if value is not None else None

    @field_validator("automation_default", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


def _abs(path: Path) -> Path:
    return path.expanduser().resolve()


def home(env: _Environment | None = None) -> Path:
    """The project's home: $EXTRACTION_HOME; else `.extraction/` in the source checkout (absolute,
    so the webserver, daemon and CLI agree whatever their working directory); else the per-user data
    folder `~/.local/share/extraction-assets` (an installed package)."""
    env = env or _Environment()
    if env.home is not None:
        return _abs(env.home)
    if (_CHECKOUT / "pyproject.toml").exists():
        return _CHECKOUT / ".extraction"
    return Path("~/.local/share").expanduser() / APP_NAME


def user_cache_dir() -> Path:
    """What every checkout of this user shares (the converted model): ~/.cache/extraction-assets."""
    return Path("~/.cache").expanduser() / APP_NAME


@dataclass(frozen=True)
class Settings:
    home: Path  # EXTRACTION_HOME: store, exports, Dagster home, local server state
    source_root: Path  # EXTRACTION_SOURCE_ROOT: one sub-folder per corpus
    store_path: Path  # EXTRACTION_STORE (a path) or EXTRACTION_DB; $EXTRACTION_HOME/store.duckdb
    export_dir: Path  # EXTRACTION_EXPORT_DIR: Parquet exports, default $EXTRACTION_HOME/exports
    tasks: tuple[str, ...]  # EXTRACTION_TASKS: comma-separated task references (load_task)
    schedule_cron: str  # EXTRACTION_SCHEDULE_CRON
    sensor_interval_s: int  # EXTRACTION_SENSOR_INTERVAL_S
    # EXTRACTION_GOLD_SAMPLE: gold sets scored by the gold_sample check, "set[:size]" comma-separated
    # (sample = the bundled gold, taqrib / redocred from the shared data); "none" = no check.
    gold_sample: tuple[tuple[str, int | None], ...] = (("sample", None),)
    gold_threshold: float = 0.5  # EXTRACTION_GOLD_THRESHOLD: the check warns below this mean score
    gold_seed: int = 0  # EXTRACTION_GOLD_SEED: which documents a sized sample takes
    automation_running: bool = True  # EXTRACTION_AUTOMATION_DEFAULT: running | stopped
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # EXTRACTION_MAX_FILE_BYTES
    # EXTRACTION_EVAL_DATA: the shared evaluation data, default ../shared/data beside the checkout
    eval_data_dir: Path = DEFAULT_EVAL_DATA
    # EXTRACTION_MODEL_CACHE: the converted embedded model, default in the user cache
    model_cache: Path | None = None
    vllm_model: str | None = None  # EXTRACTION_VLLM_MODEL: what `serve start` serves
    vllm_args: tuple[str, ...] = ()  # EXTRACTION_VLLM_ARGS: more vLLM flags, shell-quoted
    dagster_home: Path | None = None  # DAGSTER_HOME, default $EXTRACTION_HOME/dagster_home
    # EXTRACTION_PRICES: OpenAI prices per million tokens, JSON or a JSON file (forecast.py)
    prices: str | None = None
    # EXTRACTION_STORE: the store when it is not the local file: `ducklake:postgres:<conninfo>`
    # (a DuckLake catalog several machines share; the password in PGPASSWORD, never here).
    lake_catalog: str | None = field(default=None, repr=False)
    # EXTRACTION_LAKE_DATA_PATH: the lake's data files (object storage on real machines),
    # default $EXTRACTION_HOME/lake-data
    lake_data_path: str = ""
    # EXTRACTION_SERVER_RETRIES: Dagster retries of an extraction step that lost its LLM server
    # (30 s, 60 s, 120 s apart); 0 fails the step at once
    server_retries: int = 3
    # EXTRACTION_LLM_POOL: the Dagster pool of the steps that call the LLM server (runs beyond
    # its limit wait for a slot); default llm_<host>_<port> from LLM_BASE_URL; "none": no pool
    llm_pool: str | None = None
    # EXTRACTION_CELERY_BROKER: a Celery broker URL (redis://host:port/db) runs every step on the
    # Celery workers listening to it (extraction_assets/cluster.py); unset = steps in local
    # processes, as on one machine. Its value reaches Dagster as an EnvVar, never shown.
    celery_broker: str | None = field(default=None, repr=False)
    # EXTRACTION_CELERY_VISIBILITY_TIMEOUT_S: a step taken by a worker that died is given to
    # another worker after this long; must exceed the longest step (a step still running then is
    # started a second time, which waits for the first on the corpus lock)
    celery_visibility_timeout_s: int = 6 * 3600
    llm: LLMEnvironment = field(default_factory=LLMEnvironment, repr=False)  # LLM_*

    @property
    def store_location(self) -> str:
        """What the store resource opens: the DuckLake catalog, else the DuckDB file."""
        return self.lake_catalog or str(self.store_path)

    @property
    def server_dir(self) -> Path:
        """State of the local vLLM server (pid, log, url)."""
        return self.home / "server"

    @classmethod
    def from_env(cls) -> Settings:
        env = _Environment()
        root = home(env)
        return cls(
            home=root,
            source_root=_abs(env.source_root),
            store_path=_abs(
                Path(env.store)
                if env.store and not _lake_catalog(env.store)
                else env.db or root / "store.duckdb"
            ),
            export_dir=_abs(env.export_dir or root / "exports"),
            tasks=tuple(t.strip() for t in env.tasks.split(",") if t.strip()),
            schedule_cron=env.schedule_cron,
            sensor_interval_s=env.sensor_interval_s,
            gold_sample=parse_gold_sample(env.gold_sample),
            gold_threshold=env.gold_threshold,
            gold_seed=env.gold_seed,
            automation_running=env.automation_default == "running",
            max_file_bytes=env.max_file_bytes,
            eval_data_dir=_abs(env.eval_data) if env.eval_data else DEFAULT_EVAL_DATA,
            model_cache=_abs(env.model_cache) if env.model_cache else None,
            vllm_model=env.vllm_model,
            vllm_args=tuple(shlex.split(env.vllm_args)),
            dagster_home=_abs(env.dagster_home or root / "dagster_home"),
            prices=env.prices,
            lake_catalog=_lake_catalog(env.store),
            lake_data_path=env.lake_data_path or str(root / "lake-data"),
            server_retries=env.server_retries,
            llm_pool=env.llm_pool,
            celery_broker=env.celery_broker,
            celery_visibility_timeout_s=env.celery_visibility_timeout_s,
            llm=LLMEnvironment(),
        )


def _lake_catalog(store: str | None) -> str | None:
    """EXTRACTION_STORE as a DuckLake catalog; None when unset or a file path (the local file)."""
    if store is not None and store.strip().startswith("ducklake:"):
        return store.strip()
    return None


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
