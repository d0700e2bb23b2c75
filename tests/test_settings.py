"""One home, one reader of the environment: every path derives from the home, errors name the
variable, and no module but settings.py reads os.environ."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from extraction_assets import serve
from extraction_assets.evaluation.gold import data_dir
from extraction_assets.model_cache import model_cache_dir
from extraction_assets.settings import Settings, home

ROOT = Path(__file__).resolve().parents[1]
PATH_VARS = (
    "EXTRACTION_HOME",
    "EXTRACTION_DB",
    "EXTRACTION_EXPORT_DIR",
    "DAGSTER_HOME",
    "EXTRACTION_MODEL_CACHE",
    "EXTRACTION_EVAL_DATA",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in PATH_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_every_project_path_derives_from_the_home(tmp_path: Path, clean_env) -> None:
    clean_env.setenv("EXTRACTION_HOME", str(tmp_path))
    s = Settings.from_env()
    assert s.home == tmp_path.resolve() == home()
    assert s.store_path == s.home / "store.duckdb"
    assert s.export_dir == s.home / "exports"
    assert s.dagster_home == s.home / "dagster_home"
    assert serve.ServerConfig(gpu=False).resolved().state_dir == s.home / "server"
    assert serve.default_state_dir() == s.home / "server"


def test_one_default_home_for_settings_and_the_server(clean_env) -> None:
    """Unset EXTRACTION_HOME: the store and the local server agree on one home (the server's state
    used to default to ~/.cache/extraction-assets while the store used .extraction/)."""
    s = Settings.from_env()
    assert s.home == ROOT / ".extraction"
    assert serve.ServerConfig(gpu=False).resolved().state_dir == s.home / "server"


def test_the_model_cache_is_per_user_not_per_home(tmp_path: Path, clean_env) -> None:
    """A fresh clone (a new home) finds the model converted by another checkout."""
    clean_env.setenv("EXTRACTION_HOME", str(tmp_path))
    assert model_cache_dir() == Path("~/.cache/extraction-assets/models").expanduser() / (
        "smollm2-135m-instruct"
    )
    clean_env.setenv("EXTRACTION_MODEL_CACHE", str(tmp_path / "m"))
    assert model_cache_dir() == tmp_path / "m"


def test_eval_data_defaults_beside_the_checkout(tmp_path: Path, clean_env) -> None:
    assert data_dir() == ROOT.parent / "shared" / "data"
    clean_env.setenv("EXTRACTION_EVAL_DATA", str(tmp_path))
    assert data_dir() == tmp_path


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("EXTRACTION_SENSOR_INTERVAL_S", "soon"),
        ("EXTRACTION_GOLD_THRESHOLD", "high"),
        ("EXTRACTION_MAX_FILE_BYTES", "0"),
        ("EXTRACTION_AUTOMATION_DEFAULT", "paused"),
        ("LLM_SEED", "x"),
        ("LLM_MAX_RETRIES", "-1"),
        ("LLM_MAX_MODEL_LEN", "8k"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=var):
        Settings.from_env()


def test_values_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTION_TASKS", " biography, translation ,")
    monkeypatch.setenv("EXTRACTION_AUTOMATION_DEFAULT", "Stopped")
    monkeypatch.setenv("EXTRACTION_VLLM_ARGS", "--seed 7 --enable-prefix-caching")
    monkeypatch.setenv("LLM_BASE_URL", "")  # empty = unset
    s = Settings.from_env()
    assert s.tasks == ("biography", "translation")
    assert s.automation_running is False
    assert s.vllm_args == ("--seed", "7", "--enable-prefix-caching")
    assert s.llm.base_url is None


_READ = re.compile(
    r"os\.environ\.get\(|os\.getenv\(|\bin os\.environ\b|os\.environ\[[^\]]+\](?!\s*=)"
)


def test_only_settings_reads_the_environment() -> None:
    """Writes (for Dagster, transformers) and the server's pass-through copy are not reads."""
    readers = []
    for path in sorted([*ROOT.glob("extraction_assets/**/*.py"), *ROOT.glob("resources/**/*.py")]):
        if path.name == "settings.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _READ.search(line):
                readers.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert readers == []
