"""`items_per_call` / `max_concurrency` accept a number or "auto" in the launchpad; "auto" probes only
when there is enough pending work to be worth it, and a fixed knob stays fixed during the probe."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError

from extraction_assets.engine import EngineSettings
from extraction_assets.extractions import run as run_module
from extraction_assets.extractions.assets import ExtractionConfig
from extraction_assets.extractions.run import AUTO_MIN_DOCUMENTS, resolve_recipe
from extraction_assets.tasks import get_task
from extraction_assets.types import Document

LOG = logging.getLogger("test")


@pytest.mark.parametrize("value", [0, -3, "x", 2.5, True])
def test_bad_values_are_rejected(value):
    with pytest.raises(ValidationError, match="positive integer or"):
        ExtractionConfig(items_per_call=value)


def test_numbers_are_kept_without_probing():
    config = ExtractionConfig(items_per_call=7, max_concurrency=3)
    assert asyncio.run(
        resolve_recipe(config.recipe(), get_task("biography"), [], None, EngineSettings(), LOG)
    ) == (7, 3)


def test_auto_with_little_pending_work_uses_defaults():
    docs = [Document.make("c", f"d{i}", f"text {i}") for i in range(AUTO_MIN_DOCUMENTS - 1)]
    config = ExtractionConfig(items_per_call="auto", max_concurrency=4)
    n, c = asyncio.run(
        resolve_recipe(config.recipe(), get_task("biography"), docs, None, EngineSettings(), LOG)
    )
    assert (n, c) == (ExtractionConfig().items_per_call, 4)


def test_auto_probes_only_the_free_knob(monkeypatch):
    seen = {}

    async def record(task, sample, client, settings, log, *, pack_sizes, concurrencies):
        seen.update(
            sample=len(sample), pack_sizes=tuple(pack_sizes), concurrencies=tuple(concurrencies)
        )
        return 5, concurrencies[0], None

    import extraction_assets.engine.autotune as autotune

    monkeypatch.setattr(autotune, "choose_recipe", record)
    docs = [Document.make("c", f"d{i}", f"text {i}") for i in range(AUTO_MIN_DOCUMENTS)]
    config = ExtractionConfig(items_per_call="auto", max_concurrency=6)
    n, c = asyncio.run(
        resolve_recipe(config.recipe(), get_task("biography"), docs, None, EngineSettings(), LOG)
    )
    assert (n, c) == (5, 6)
    assert seen["concurrencies"] == (6,) and len(seen["pack_sizes"]) > 1
    assert seen["sample"] == AUTO_MIN_DOCUMENTS
    assert run_module.AUTO_PROBE_SAMPLE >= AUTO_MIN_DOCUMENTS
