"""`items_per_call` / `max_concurrency` accept a number or "auto" (the default) in the launchpad;
"auto" follows the backend (one item per call on vLLM, packs where requests cost), probes only
when there is enough pending work to be worth it, and a fixed knob stays fixed."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import ValidationError

import extraction_assets.engine.autotune as autotune
from extraction_assets.__main__ import build_parser
from extraction_assets.engine import EngineSettings
from extraction_assets.engine.autotune import resolve_recipe
from extraction_assets.extractions.assets import ExtractionConfig
from extraction_assets.tasks import get_task
from extraction_assets.types import Document

LOG = logging.getLogger("test")
TASK = get_task("biography")


class Backend:
    """Only what the recipe looks at: the backend's name (no server behind it)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend


def docs(n: int) -> list[Document]:
    return [Document.make("c", f"d{i}", f"text {i} " * 20) for i in range(n)]


def resolve(n, c, pending, backend="vllm"):
    return asyncio.run(resolve_recipe(n, c, TASK, pending, Backend(backend), EngineSettings(), LOG))


@pytest.mark.parametrize("value", [0, -3, "x", 2.5, True])
def test_bad_values_are_rejected(value):
    with pytest.raises(ValidationError, match="positive integer or"):
        ExtractionConfig(items_per_call=value)


def test_auto_is_the_default_in_the_launchpad_and_the_cli():
    config = ExtractionConfig()
    assert (config.items_per_call, config.max_concurrency) == ("auto", "auto")
    # The CLI leaves the knobs out of the run config unless given: the step's default applies.
    args = build_parser().parse_args(["run"])
    assert (args.items_per_call, args.max_concurrency) == (None, None)
    args = build_parser().parse_args(["run", "--items-per-call", "20", "--max-concurrency", "10"])
    assert (args.items_per_call, args.max_concurrency) == (20, 10)


def test_numbers_are_kept_without_probing():
    assert resolve(7, 3, []) == (7, 3)


def test_auto_on_vllm_is_one_per_call_with_many_in_flight():
    # The demo's corpus size: no probe, no packing, as many in flight as documents (up to 64).
    assert resolve("auto", "auto", docs(40)) == (1, 40)
    assert resolve("auto", "auto", docs(500)) == (1, autotune.LONE_IN_FLIGHT)
    assert resolve("auto", 6, docs(500)) == (1, 6)


def test_auto_in_flight_is_bounded_by_the_kv_cache(monkeypatch):
    async def small_cache(client):
        return 20_000  # tokens: a few sequences of instructions + one document

    monkeypatch.setattr(autotune, "kv_cache_tokens", small_cache)
    n, c = resolve("auto", "auto", docs(200))
    assert n == 1 and 1 <= c < 20


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_auto_packs_where_requests_cost(backend):
    fits = autotune.max_pack_by_context(TASK, docs(100), EngineSettings(), 20)
    n, c = resolve("auto", "auto", docs(100), backend)
    assert n == fits > 1 and c == autotune.PACKED[backend][1]
    assert resolve("auto", 3, docs(100), backend) == (fits, 3)
    assert resolve(5, "auto", docs(100), backend)[0] == 5


def test_auto_packs_only_what_fits_the_context():
    long_docs = [Document.make("c", f"d{i}", "word " * 1500) for i in range(30)]
    n, _ = resolve("auto", "auto", long_docs, "ollama")
    assert 1 <= n < autotune.max_pack_by_context(TASK, docs(100), EngineSettings(), 20)


def test_auto_probes_only_the_free_knob_of_a_large_vllm_run(monkeypatch):
    assert autotune.PROBE_SAMPLE < autotune.PROBE_MIN_DOCUMENTS
    seen = {}

    async def record(task, sample, client, settings, log, *, pack_sizes, concurrencies):
        seen.update(
            sample=len(sample), pack_sizes=tuple(pack_sizes), concurrencies=tuple(concurrencies)
        )
        return 5, concurrencies[0], None

    monkeypatch.setattr(autotune, "choose_recipe", record)
    monkeypatch.setattr(autotune, "PROBE_MIN_DOCUMENTS", 50)
    assert resolve("auto", "auto", docs(49)) == (1, 49)  # below the threshold: no probe
    assert not seen
    assert resolve("auto", 6, docs(60)) == (5, 6)
    assert seen["concurrencies"] == (6,) and len(seen["pack_sizes"]) > 1
    assert seen["sample"] == 60
    seen.clear()
    assert resolve("auto", "auto", docs(60), "ollama")[0] > 1  # Ollama: packs, never probed
    assert not seen


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_pack_audit_share_is_a_share(value):
    with pytest.raises(ValidationError, match="between 0 and 1"):
        ExtractionConfig(pack_audit_share=value)
    assert ExtractionConfig().pack_audit_share == 0.02
    assert ExtractionConfig(pack_audit_share=0).pack_audit_share == 0
