"""One server's capacity shared by concurrent runs (extractions/capacity.py): the steps that call
the LLM declare the pool of its endpoint, named from the settings; EXTRACTION_LLM_POOL overrides
it or turns it off; a step's auto in-flight count is its share of the server; slots held by a dead
`extraction run` process are freed. Two runs kept apart by the pool: tests/pipeline/
test_capacity_pool.py."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from pydantic import ValidationError

import extraction_assets.engine.autotune as autotune
from extraction_assets.cli._run import (
    HOST_TAG,
    PROCESS_TAG,
    keeping_pools,
    release_dead_runs,
    run_tags,
)
from extraction_assets.engine import EngineSettings
from extraction_assets.extractions.assets import build_task_assets
from extraction_assets.extractions.capacity import (
    assign_stranded_steps,
    build_pool_keeper,
    endpoint_pool,
    pool_limit,
)
from extraction_assets.project import build_definitions
from extraction_assets.settings import Settings
from extraction_assets.tasks import get_task
from extraction_assets.types import Document
from resources.llm import LLMResource

TASK = get_task("biography")


@pytest.mark.parametrize(
    ("base_url", "pool"),
    [
        ("http://127.0.0.1:8000/v1", "llm_127_0_0_1_8000"),
        ("http://127.0.0.1:8000", "llm_127_0_0_1_8000"),  # the same server, another path
        ("https://api.openai.com/v1", "llm_api_openai_com_443"),
        ("http://gpu-B:8001/v1,http://gpu-a:8000/v1", "llm_gpu_a_8000__gpu_b_8001"),
        ("http://gpu-a:8000/v1, http://gpu-B:8001/v1", "llm_gpu_a_8000__gpu_b_8001"),
        ("localhost:11434", "llm_localhost_11434"),
    ],
)
def test_a_pool_per_endpoint(base_url: str, pool: str) -> None:
    assert endpoint_pool(base_url) == pool


def test_the_pool_can_be_named_or_turned_off() -> None:
    assert endpoint_pool("http://127.0.0.1:8000/v1", "gpu_farm") == "gpu_farm"
    assert endpoint_pool("http://127.0.0.1:8000/v1", "none") is None
    assert endpoint_pool("http://127.0.0.1:8000/v1", "NONE") is None


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXTRACTION_LLM_POOL", raising=False)
    assert Settings.from_env().llm_pool is None
    monkeypatch.setenv("EXTRACTION_LLM_POOL", "")  # empty counts as unset
    assert Settings.from_env().llm_pool is None
    monkeypatch.setenv("EXTRACTION_LLM_POOL", " llm_shared ")
    assert Settings.from_env().llm_pool == "llm_shared"
    monkeypatch.setenv("EXTRACTION_LLM_POOL", "none")
    assert Settings.from_env().llm_pool == "none"
    monkeypatch.setenv("EXTRACTION_LLM_POOL", "two words")
    with pytest.raises(ValidationError, match="EXTRACTION_LLM_POOL"):
        Settings.from_env()


def _defs(monkeypatch: pytest.MonkeyPatch, tmp_path, **env: str) -> dg.Definitions:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path))
    monkeypatch.setenv("EXTRACTION_GOLD_SAMPLE", "sample")  # the gold check calls the LLM too
    monkeypatch.setenv("LLM_BACKEND", "vllm")
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.delenv("EXTRACTION_LLM_POOL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return build_definitions(Settings.from_env())


def _pools(defs: dg.Definitions) -> dict[str, str | None]:
    extractions = defs.resolve_assets_def(dg.AssetKey("biography_extractions"))
    gold = next(
        c
        for c in defs.resolve_asset_graph().assets_defs
        if any(k.name == "gold_sample" for k in c.check_keys) and not c.keys
    )
    documents = defs.resolve_assets_def(dg.AssetKey("corpus_documents"))
    return {
        "extractions": extractions.op.pool,
        "gold_sample": gold.op.pool,
        "corpus_documents": documents.op.pool,
    }


def test_the_steps_calling_the_llm_declare_its_endpoint_pool(monkeypatch, tmp_path) -> None:
    assert _pools(_defs(monkeypatch, tmp_path)) == {
        "extractions": "llm_127_0_0_1_8000",
        "gold_sample": "llm_127_0_0_1_8000",
        "corpus_documents": "duckdb_document_sync",  # unchanged
    }
    other = _defs(monkeypatch, tmp_path, LLM_BASE_URL="http://10.0.0.7:9000/v1")
    assert _pools(other)["extractions"] == "llm_10_0_0_7_9000"
    off = _defs(monkeypatch, tmp_path, EXTRACTION_LLM_POOL="none")
    assert _pools(off)["extractions"] is None and _pools(off)["gold_sample"] is None


def test_an_extraction_with_its_own_server_has_its_pool(monkeypatch, tmp_path) -> None:
    """A component's extraction passes its own LLM resource: its endpoint names the pool."""
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path))
    monkeypatch.delenv("EXTRACTION_LLM_POOL", raising=False)
    llm = LLMResource(backend="vllm", base_url="http://gpu1:8000/v1,http://gpu2:8000/v1")
    built = build_task_assets(TASK, llm, Settings.from_env(), key_prefix=["notes"])
    extractions = next(a for a in built if isinstance(a, dg.AssetsDefinition) and a.op.pool)
    assert extractions.op.pool == "llm_gpu1_8000__gpu2_8000"


def test_the_pool_limit_read_from_the_instance(tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert pool_limit(instance, "llm_x") is None  # no limit anywhere: not limited
        assert pool_limit(instance, None) is None
        instance.event_log_storage.set_concurrency_slots("llm_x", 3)
        assert pool_limit(instance, "llm_x") == 3
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    (tmp_path / "d").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "d"), overrides=overrides) as instance:
        assert pool_limit(instance, "llm_x") == 1  # dagster.yaml's default_limit


def _resolve(c, pending, backend="vllm", share=1):  # type: ignore[no-untyped-def]
    class Backend:
        def __init__(self) -> None:
            self.backend = backend

    log = logging.getLogger("test")
    return asyncio.run(
        autotune.resolve_recipe("auto", c, TASK, pending, Backend(), EngineSettings(), log, share)
    )


def _docs(n: int) -> list[Document]:
    return [Document.make("c", f"d{i}", f"text {i} " * 20) for i in range(n)]


def test_a_run_takes_its_share_of_the_server() -> None:
    full = autotune.LONE_IN_FLIGHT
    assert _resolve("auto", _docs(500)) == (1, full)  # limit 1: one run, unchanged
    assert _resolve("auto", _docs(500), share=4) == (1, full // 4)
    assert _resolve("auto", _docs(10), share=4) == (1, 10)  # fewer pending than its share
    assert _resolve(40, _docs(500), share=4) == (1, 40)  # a fixed number stays fixed
    packed = autotune.PACKED["openai"][1]
    assert _resolve("auto", _docs(100), "openai", share=2)[1] == packed // 2
    assert _resolve("auto", _docs(100), "ollama", share=8)[1] == 1


def test_slots_of_a_dead_cli_run_are_freed(tmp_path) -> None:
    """An in-process run killed with its slot would block every later extraction on the server
    (no run monitoring frees it): the next `extraction run` frees it; a live run keeps its own."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead_tags = {**run_tags(), PROCESS_TAG: f"{gone.stdout.strip()}:1"}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("llm_x", 3)
        dead = create_run_for_test(instance, job_name="extract_corpus", tags=dead_tags)
        alive = create_run_for_test(instance, job_name="extract_corpus", tags=run_tags())
        other_host = create_run_for_test(
            instance, job_name="extract_corpus", tags={**dead_tags, HOST_TAG: "elsewhere"}
        )
        for run in (dead, alive, other_host):
            assert storage.claim_concurrency_slot("llm_x", run.run_id, "extract", 0).is_claimed
        assert release_dead_runs(instance) == [dead.run_id]
        holders = {s.run_id for s in storage.get_concurrency_info("llm_x").claimed_slots}
        assert holders == {alive.run_id, other_host.run_id}
        assert release_dead_runs(instance) == []


def _strand(storage, pool: str) -> None:  # type: ignore[no-untyped-def]
    """Dagster's claim of run B's step interleaved with run A's release as it happened in CI:
    B reads "no free slot", A frees its slot (nobody is queued to get it), B queues unassigned."""
    assert storage.claim_concurrency_slot(pool, "run_a", "sync", 0).is_claimed
    free = storage.has_unassigned_slots(pool)
    storage.free_concurrency_slot_for_step("run_a", "sync")
    storage.add_pending_step(pool, "run_b", "sync", 0, should_assign=free)


def test_a_step_stranded_by_a_release_during_its_claim_gets_the_free_slot(tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb_document_sync", 1)
        storage.set_concurrency_slots("busy", 1)
        _strand(storage, "duckdb_document_sync")
        # Without help it would wait for good: its claim is refused though the slot is free.
        assert not storage.claim_concurrency_slot(
            "duckdb_document_sync", "run_b", "sync", 0
        ).is_claimed
        # A pool whose slot is held, with a step rightly waiting, is left alone.
        assert storage.claim_concurrency_slot("busy", "run_c", "x", 0).is_claimed
        assert not storage.claim_concurrency_slot("busy", "run_d", "x", 0).is_claimed
        assert assign_stranded_steps(instance) == ["duckdb_document_sync"]
        assert storage.claim_concurrency_slot("duckdb_document_sync", "run_b", "sync", 0).is_claimed
        assert not storage.claim_concurrency_slot("busy", "run_d", "x", 0).is_claimed
        assert assign_stranded_steps(instance) == []


def test_an_extraction_run_keeps_the_pools_while_it_runs(tmp_path, monkeypatch) -> None:
    """`extraction run` hands a stranded step its slot while it runs, whoever's step it is."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb_document_sync", 1)
        _strand(storage, "duckdb_document_sync")
        with keeping_pools(instance, interval_s=0.05):
            deadline = time.monotonic() + 30
            while not storage.check_concurrency_claim(
                "duckdb_document_sync", "run_b", "sync"
            ).is_assigned:
                assert time.monotonic() < deadline, "the stranded step was never assigned"
                time.sleep(0.05)
        assert storage.claim_concurrency_slot("duckdb_document_sync", "run_b", "sync", 0).is_claimed


def test_the_daemon_keeps_the_pools_with_a_sensor(tmp_path) -> None:
    keeper = build_pool_keeper()
    assert keeper.default_status == dg.DefaultSensorStatus.RUNNING and not keeper.targets
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots("duckdb_document_sync", 1)
        _strand(instance.event_log_storage, "duckdb_document_sync")
        keeper(dg.build_sensor_context(instance=instance))
        assert instance.event_log_storage.check_concurrency_claim(
            "duckdb_document_sync", "run_b", "sync"
        ).is_assigned
    names = {s.name for s in build_definitions().sensors}
    assert "pool_keeper" in names
