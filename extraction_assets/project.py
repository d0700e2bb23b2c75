"""The project's Dagster definitions, built from settings: corpus documents -> per-task extractions ->
typed tables, with automation. `extraction_assets.definitions` is the code location made of them;
`extraction run` builds them here without also building that module's.

Which backend, model, store and tasks are used is read from the environment (see README), never from code.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from extraction_assets.cluster import cluster_executor
from extraction_assets.corpora.assets import corpus_documents
from extraction_assets.corpora.schedules import build_catch_up_schedule
from extraction_assets.corpora.sensors import build_source_sensor
from extraction_assets.extractions.assets import build_task_assets, extraction_retry_policy
from extraction_assets.extractions.capacity import build_pool_keeper
from extraction_assets.maintenance import lake_maintenance, lake_maintenance_schedule
from extraction_assets.settings import Settings
from extraction_assets.tasks import load_tasks
from resources.llm import LLMResource, api_key_env_var
from resources.store import DuckDBStore


def llm_resource_from_env(settings: Settings | None = None) -> LLMResource:
    """The LLM resource for this environment; an API key is passed as an EnvVar reference so its value
    never appears in the UI's resource configuration or in run config."""
    settings = settings or Settings.from_env()
    llm = LLMResource.from_env(settings.llm)
    key_var = api_key_env_var(llm.backend, settings.llm)
    if key_var is None:
        return llm
    fields = {name: getattr(llm, name) for name in LLMResource.model_fields if name != "api_key"}
    return LLMResource(**fields, api_key=dg.EnvVar(key_var))


def build_definitions(
    settings: Settings | None = None, retry_policy: dg.RetryPolicy | None = None
) -> dg.Definitions:
    settings = settings or Settings.from_env()
    retry_policy = retry_policy or extraction_retry_policy(settings.server_retries)
    llm = LLMResource.from_env(settings.llm)
    tasks = load_tasks(settings.tasks)
    built = [
        d for t in tasks for d in build_task_assets(t, llm, settings, retry_policy=retry_policy)
    ]
    checks = [d for d in built if isinstance(d, dg.AssetChecksDefinition)]
    task_assets = [d for d in built if not isinstance(d, dg.AssetChecksDefinition)]
    # Selecting the assets selects their checks too.
    job = dg.define_asset_job(
        "extract_corpus",
        selection=dg.AssetSelection.assets(corpus_documents, *task_assets),
        description="Sync a corpus from its source folder, extract what is pending, check it, "
        "refresh typed tables.",
    )
    running = settings.automation_running
    # A shared DuckLake store gets its compaction job; a DuckDB file needs none.
    lake = [lake_maintenance] if settings.lake_catalog else []
    lake_schedules = (
        [lake_maintenance_schedule(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        )]
        if settings.lake_catalog
        else []
    )  # fmt: skip
    return dg.Definitions(
        assets=[corpus_documents, *task_assets],
        asset_checks=checks,
        jobs=[job, *lake],
        sensors=[
            build_source_sensor(
                job,
                settings,
                dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
                freshness_keys=[dg.AssetKey(f"{t.name}_extractions") for t in tasks],
            ),
            build_pool_keeper(),
        ],
        schedules=[
            build_catch_up_schedule(
                job,
                settings,
                dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
            ),
            *lake_schedules,
        ],
        resources={
            "llm": llm_resource_from_env(settings),
            "store": store_resource(settings),
            "settings": settings,
        },
        # EXTRACTION_CELERY_BROKER set: steps on the cluster's Celery workers; else local processes.
        executor=cluster_executor(settings),
    )


def store_resource(settings: Settings) -> DuckDBStore:
    """The store resource; a DuckLake catalog is passed as an EnvVar reference, so its connection
    string never shows in the UI's resource configuration."""
    if settings.lake_catalog:
        return DuckDBStore(path=dg.EnvVar("EXTRACTION_STORE"), data_path=settings.lake_data_path)
    return DuckDBStore(path=str(settings.store_path))


def defs_folder() -> dg.Definitions:
    """What the defs folder holds (component instances); nothing when installed as a package (no
    project configuration beside it)."""
    here = Path(__file__).resolve().parent
    if not (here.parent / "pyproject.toml").exists():
        return dg.Definitions()
    return dg.load_from_defs_folder(path_within_project=here)
