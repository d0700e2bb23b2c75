"""The code location: corpus documents -> per-task extractions -> typed tables, with automation.

Which backend, model, store and tasks are used is read from the environment (see README), never from code.
"""

from __future__ import annotations

import dagster as dg

from extraction_assets.corpora.assets import corpus_documents
from extraction_assets.corpora.schedules import build_catch_up_schedule
from extraction_assets.corpora.sensors import build_source_sensor
from extraction_assets.extractions.assets import build_task_assets
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


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    llm = LLMResource.from_env(settings.llm)
    task_assets = [a for task in load_tasks(settings.tasks) for a in build_task_assets(task, llm, settings)]
    job = dg.define_asset_job(
        "extract_corpus",
        selection=dg.AssetSelection.assets(corpus_documents, *task_assets),
        description="Sync a corpus from its source folder, extract what is pending, refresh typed tables.",
    )
    running = settings.automation_running
    return dg.Definitions(
        assets=[corpus_documents, *task_assets],
        jobs=[job],
        sensors=[
            build_source_sensor(
                job,
                settings,
                dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
            )
        ],
        schedules=[
            build_catch_up_schedule(
                job,
                settings,
                dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
            )
        ],
        resources={
            "llm": llm_resource_from_env(settings),
            "store": DuckDBStore(path=str(settings.store_path)),
            "settings": settings,
        },
    )


defs = build_definitions()
