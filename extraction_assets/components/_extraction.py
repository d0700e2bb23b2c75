"""The ``Extraction`` component: one task (or a few) over one source root, declared in a defs.yaml.

Everything an extraction defines is named after it, so several live in one code location:
assets ``<name>/corpus_documents``, ``<name>/<task>_extractions``, ``<name>/<task>_table``;
partitions ``<name>_corpora``; job ``<name>_extract_corpus``; sensor ``<name>_source_sensor``;
schedule ``<name>_catch_up``; resources ``<name>_llm`` and ``<name>_store``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic

from extraction_assets.corpora.assets import build_corpus_documents
from extraction_assets.corpora.schedules import build_catch_up_schedule
from extraction_assets.corpora.sensors import build_source_sensor
from extraction_assets.extractions.assets import ExtractionConfig, build_task_assets
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask, load_task
from resources.llm import BACKENDS, LLMResource, api_key_env_var
from resources.store import DuckDBStore

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class LLMSettings(dg.Model):
    """Which server and model; anything left out comes from the LLM_* environment variables."""

    backend: str | None = pydantic.Field(default=None, description=f"one of {', '.join(BACKENDS)}")
    base_url: str | None = pydantic.Field(
        default=None, description="comma-separated replicas of one model"
    )
    model: str | None = pydantic.Field(default=None, description="served model name")
    max_model_len: int | None = pydantic.Field(default=None, description="the served context")
    api_key_env: str | None = pydantic.Field(
        default=None,
        description="name of the environment variable holding the API key (never the key itself)",
    )


class ExtractionScaffolder(dg.Scaffolder[Any]):
    """`dg scaffold defs extraction_assets.components.Extraction PATH`: a defs.yaml to edit."""

    def scaffold(self, request: dg.ScaffoldRequest[Any]) -> None:
        from dagster.components.component_scaffolding import scaffold_component

        name = re.sub(r"[^a-z0-9_]", "_", request.target_path.name.lower()).strip("_") or "notes"
        if not name[0].isalpha():
            name = f"x_{name}"
        scaffold_component(
            request,
            {
                "name": name,
                "source_root": f"data/{name}",
                "task": "my_project.tasks:MY_TASK",
                "recipe": {"items_per_call": 1, "max_concurrency": 8},
                "sensor": True,
                "schedule": False,
            },
        )


@dg.scaffold_with(ExtractionScaffolder)
class Extraction(dg.Component, dg.Model, dg.Resolvable):
    """Extract typed fields from the documents of every corpus folder under a source root.

    Each sub-folder of ``source_root`` is a corpus (a partition): ``*.jsonl``, ``*.txt``/``*.md``
    (one document per file), ``*.csv`` or ``*.parquet``. Documents are stored in a DuckDB file
    and extracted by the task(s) with the LLM; only new or changed documents are extracted again.
    """

    name: str = pydantic.Field(
        description="prefix of everything this extraction defines (lower case, digits, _)"
    )
    source_root: str = pydantic.Field(
        description="folder with one sub-folder per corpus (relative: to the project root)"
    )
    task: str | list[str] = pydantic.Field(
        description="task reference(s): module:ATTRIBUTE, a .yaml/.json spec file (relative: to "
        "the project root) or a built-in name"
    )
    home: str = pydantic.Field(
        default=".extraction",
        description="where the store and exports go (relative: to the project root)",
    )
    store: str | None = pydantic.Field(
        default=None, description="DuckDB file (default <home>/<name>.duckdb)"
    )
    llm: LLMSettings = pydantic.Field(default_factory=LLMSettings)
    recipe: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="defaults of the extraction step's run config: items_per_call, "
        "max_concurrency (a number or auto), retry_limit, isolate_suspicious, ...",
    )
    sensor: bool = pydantic.Field(
        default=True,
        description="the source sensor starts running (else: stopped, start it in the UI)",
    )
    schedule: bool = pydantic.Field(
        default=True, description="the catch-up schedule starts running"
    )
    schedule_cron: str = "0 2 * * *"
    gold: str | None = pydantic.Field(
        default=None,
        description="gold.jsonl ({id, fields}) scored by the gold_sample check (default: the "
        "task's own gold file, if it names one; relative: to the project root)",
    )
    gold_threshold: float = 0.5

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_extraction_defs(self, context.project_root)


def _resolve(root: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else root / p).resolve()


def _task_ref(root: Path, ref: str) -> str:
    return str(_resolve(root, ref)) if ref.lower().endswith(_SPEC_SUFFIXES) else ref


def _llm(spec: LLMSettings, settings: Settings) -> tuple[LLMResource, LLMResource]:
    """(the LLM for the builders, without its key: they need the model and generation settings;
    the resource for Dagster, its key an EnvVar, so the value never reaches the UI or run config)."""
    base = LLMResource.from_env(settings.llm)
    fields = {name: getattr(base, name) for name in LLMResource.model_fields}
    for name in ("backend", "base_url", "model", "max_model_len"):
        value = getattr(spec, name)
        if value is not None:
            fields[name] = value
    key_var = spec.api_key_env or api_key_env_var(fields["backend"], settings.llm)
    plain = LLMResource(**{**fields, "api_key": None})
    return plain, LLMResource(**{**fields, "api_key": dg.EnvVar(key_var) if key_var else None})


def build_extraction_defs(spec: Extraction, project_root: Path) -> dg.Definitions:
    """The Definitions of one extraction (plain function: the component is its YAML face)."""
    name = spec.name
    if not _NAME.match(name):
        raise ValueError(
            f"extraction name {name!r}: use 1-41 lower-case letters, digits or _, starting with a letter"
        )
    source_root = _resolve(project_root, spec.source_root)
    if not source_root.is_dir():
        raise ValueError(f"extraction {name!r}: source_root {source_root} is not a folder")
    refs = [spec.task] if isinstance(spec.task, str) else list(spec.task)
    tasks: list[ExtractionTask] = []
    for ref in refs:
        task = load_task(_task_ref(project_root, ref))
        if spec.gold is not None:
            task = dataclasses.replace(task, gold=_resolve(project_root, spec.gold))
        tasks.append(task)
    recipe = ExtractionConfig(**spec.recipe)  # a bad recipe fails here, in `dg check defs`
    home = _resolve(project_root, spec.home)
    env = Settings.from_env()
    settings = dataclasses.replace(
        env,
        home=home,
        source_root=source_root,
        store_path=_resolve(project_root, spec.store) if spec.store else home / f"{name}.duckdb",
        export_dir=home / "exports" / name,
        tasks=tuple(_task_ref(project_root, r) for r in refs),
        schedule_cron=spec.schedule_cron,
        gold_sample=tuple((t.name, None) for t in tasks if t.gold is not None),
        gold_threshold=spec.gold_threshold,
    )
    llm, llm_resource = _llm(spec.llm, env)
    partitions = dg.DynamicPartitionsDefinition(name=f"{name}_corpora")
    keys = {"llm_key": f"{name}_llm", "store_key": f"{name}_store"}
    documents = build_corpus_documents(
        settings, partitions_def=partitions, key_prefix=[name], store_key=keys["store_key"]
    )
    built = [
        a
        for task in tasks
        for a in build_task_assets(
            task,
            llm,
            settings,
            key_prefix=[name],
            partitions_def=partitions,
            documents=documents,
            group_name=name,
            llm_key=keys["llm_key"],
            store_key=keys["store_key"],
        )
    ]
    checks = [d for d in built if isinstance(d, dg.AssetChecksDefinition)]
    task_assets = [d for d in built if not isinstance(d, dg.AssetChecksDefinition)]
    step_config = recipe.model_dump(exclude_unset=True)
    job = dg.define_asset_job(
        f"{name}_extract_corpus",
        selection=dg.AssetSelection.assets(documents, *task_assets),
        partitions_def=partitions,
        config={
            "ops": {
                dg.AssetKey([name, f"{t.name}_extractions"]).to_python_identifier(): {
                    "config": step_config
                }
                for t in tasks
            }
        }
        if step_config
        else None,
        description=f"Extraction {name}: sync a corpus of {source_root}, extract what is "
        "pending, refresh the typed tables.",
    )
    return dg.Definitions(
        assets=[documents, *task_assets],
        asset_checks=checks,
        jobs=[job],
        sensors=[
            build_source_sensor(
                job,
                settings,
                dg.DefaultSensorStatus.RUNNING if spec.sensor else dg.DefaultSensorStatus.STOPPED,
                freshness_keys=[dg.AssetKey([name, f"{t.name}_extractions"]) for t in tasks],
                name=f"{name}_source_sensor",
                partitions_def=partitions,
            )
        ],
        schedules=[
            build_catch_up_schedule(
                job,
                settings,
                dg.DefaultScheduleStatus.RUNNING
                if spec.schedule
                else dg.DefaultScheduleStatus.STOPPED,
                name=f"{name}_catch_up",
                partitions_def=partitions,
            )
        ],
        resources={
            keys["llm_key"]: llm_resource,
            keys["store_key"]: DuckDBStore(path=str(settings.store_path)),
        },
    )
