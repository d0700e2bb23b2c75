"""The cluster's configuration without its services: which executor the environment selects, and
that the cluster dagster.yaml is a valid instance configuration with no local path of the head
machine in it. (That no step output passes through the filesystem IO manager is checked on the
running cluster: tests/cluster/test_cluster.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

from extraction_assets.cluster import BROKER_ENV, celery_config
from extraction_assets.project import build_definitions
from extraction_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "deploy" / "cluster" / "dagster.yaml"


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str | None) -> Settings:
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path / "home"))
    if broker is None:
        monkeypatch.delenv(BROKER_ENV, raising=False)
    else:
        monkeypatch.setenv(BROKER_ENV, broker)
    return Settings.from_env()


def test_one_machine_keeps_the_local_executor(tmp_path, monkeypatch) -> None:
    defs = build_definitions(_settings(tmp_path, monkeypatch, None))
    assert defs.resolve_job_def("extract_corpus").executor_def.name != "celery"


def test_a_broker_puts_every_step_on_celery_workers(tmp_path, monkeypatch) -> None:
    secret = "redis://:hunter2@10.0.0.9:6379/0"
    monkeypatch.setenv("EXTRACTION_CELERY_VISIBILITY_TIMEOUT_S", "120")
    settings = _settings(tmp_path, monkeypatch, secret)
    defs = build_definitions(settings)
    executor = defs.resolve_job_def("extract_corpus").executor_def
    assert executor.name == "celery"
    resolved = executor.config_schema.resolve_config({}).value["config"]  # type: ignore[index]
    assert resolved["broker"] == resolved["backend"] == secret  # at run time, from the environment
    configured = executor.config_schema._config_fn({})  # type: ignore[attr-defined]
    assert configured["config_source"]["task_acks_late"] is True
    assert configured["config_source"]["broker_transport_options"]["visibility_timeout"] == 120
    # The broker URL is an environment reference in the definitions, never its value.
    assert configured["broker"] == configured["backend"] == {"env": BROKER_ENV}
    assert celery_config(settings) == configured["config_source"]


def test_the_cluster_instance_config_is_valid_and_names_no_local_file(
    tmp_path, monkeypatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(CLUSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://postgres@127.0.0.1:1/dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config, _ = dagster_instance_config(str(home))
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert config["local_artifact_storage"]["config"] == {"base_dir": {"env": "DAGSTER_HOME"}}
    assert config["compute_logs"]["class"] == "NoOpComputeLogManager"
    # The same run queue rules as one machine: one run per corpus at a time.
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in limits
