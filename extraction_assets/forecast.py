"""A forecast before a run: what extracting a corpus's pending documents will take and cost.

Documents pending (the store's rule, over the documents as last synced), input tokens (the
server's tokenizer where it has one, else the engine's estimate), output tokens, calls (the packs
the engine would make), minutes at the rate stored from earlier runs of this backend, model, task
and pack size, and for OpenAI the cost
from a price table (USD per million tokens; `EXTRACTION_PRICES` adds or overrides models, as
JSON `{"model": [input, output]}` or the path of such a file). No LLM call is made.

Retries (answers cut short or invalid, asked again alone with a larger budget) come on top of the
first pass. Where earlier runs are stored, the forecast scales calls and input tokens by what
retries added in them, and takes output tokens from what they generated per document; without
such runs it gives the first pass and the answer budget (which bounds each call, not the run).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction_assets.engine import EngineSettings
from extraction_assets.engine.autotune import PACKED, max_pack_by_context
from extraction_assets.engine.packing import PackPlanner, counted_planner
from extraction_assets.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from extraction_assets.engine import RunSummary
    from extraction_assets.tasks.base import ExtractionTask
    from extraction_assets.types import Document
    from resources.backends.base import LLMClient
    from resources.store import DuckDBStore

# OpenAI list prices (standard tier), USD per million tokens (input, output), as published in
# PRICES_AS_OF: prices change, check https://openai.com/api/pricing before relying on a cost.
PRICES_AS_OF = "2025-08"
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def price_table(raw: str | None = None) -> dict[str, tuple[float, float]]:
    """DEFAULT_PRICES with `raw` (default: $EXTRACTION_PRICES; JSON or a JSON file) applied."""
    raw = Settings.from_env().prices if raw is None else raw
    table = dict(DEFAULT_PRICES)
    if raw:
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text(encoding="utf-8")
        try:
            table.update({m: (float(p[0]), float(p[1])) for m, p in json.loads(text).items()})
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(
                'EXTRACTION_PRICES: expected {"model": [input, output]} in USD per million '
                f"tokens ({type(exc).__name__}: {exc})"
            ) from None
    return table


def price_for(model: str, table: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The model's price: its own entry, else the longest name it starts with (a dated snapshot,
    gpt-4o-mini-2024-07-18, costs what gpt-4o-mini costs)."""
    if model in table:
        return table[model]
    names = [name for name in table if model.startswith(name)]
    return table[max(names, key=len)] if names else None


@dataclass
class Forecast:
    corpus: str
    task: str
    backend: str
    model: str
    items_per_call: int
    pending: int
    too_long: int  # pending documents that cannot fit the context even alone (no call)
    calls: int
    input_tokens: int
    output_tokens: int  # measured per document in earlier runs, else the answer budget
    items_per_min: float | None  # stored from earlier runs; None when there are none
    rate_runs: int
    minutes: float | None
    cost_usd: float | None  # OpenAI only, from the price table
    first_pass_calls: int = 0  # the packs alone, before retries
    retry_factor: float | None = None  # calls per first-pass call in earlier runs
    output_budget: int = 0  # the first pass's answer budget: what each call may generate

    def as_metadata(self) -> dict[str, Any]:
        meta = {
            f"forecast/{k}": (round(v, 4) if isinstance(v, float) else v)
            for k, v in asdict(self).items()
            if k not in ("corpus", "task", "backend", "model") and v is not None
        }
        meta["forecast/rate"] = self.rate_note
        return meta

    @property
    def rate_note(self) -> str:
        if self.items_per_min is None:
            return (
                "no measured rate yet (no earlier run of this backend, model, task and "
                f"{self.items_per_call} items per call in the store)"
            )
        return (
            f"{self.items_per_min:.1f} items/min over the last {self.rate_runs} run(s) of "
            f"this backend, model, task and {self.items_per_call} items per call"
        )

    @property
    def retry_note(self) -> str:
        if self.retry_factor is None:
            return " (first pass; retries not foreseen: no earlier run stored)"
        return f" ({self.first_pass_calls} + retries at x{self.retry_factor:.2f} of earlier runs)"

    def summary(self) -> str:
        """The forecast as one log line."""
        minutes = (
            f"minutes: {self.rate_note}"
            if self.minutes is None
            else f"~{self.minutes:.1f} min at {self.rate_note}"
        )
        cost = "" if self.cost_usd is None else f", ~{self.cost_usd:.4f} USD"
        return (
            f"forecast for corpus {self.corpus!r}, task {self.task}: {self.pending} documents "
            f"pending ({self.too_long} too long), {self.calls} calls of "
            f"{self.items_per_call}{self.retry_note}, {self.input_tokens} input tokens, "
            f"{self.output_tokens} output tokens, {minutes}{cost}"
        )


def _error_pct(forecast: float, actual: float) -> float | None:
    return None if actual == 0 else round(100.0 * (forecast - actual) / actual, 1)


def compare(forecast: Forecast, summary: RunSummary) -> dict[str, Any]:
    """The forecast against what the run did, as `forecast_vs_actual/*` metadata: each figure's
    forecast, actual and error in % of the actual ((forecast - actual) / actual: positive =
    over-estimated; None when it cannot be said: no measured rate, or an actual of 0). Minutes
    are the engine's extraction time (the calls), as the stored rate measures them."""
    pairs: dict[str, tuple[float | None, float]] = {
        "calls": (forecast.calls, summary.calls),
        "input_tokens": (forecast.input_tokens, summary.prompt_tokens),
        "output_tokens": (forecast.output_tokens, summary.completion_tokens),
        "minutes": (forecast.minutes, summary.elapsed_s / 60),
    }
    meta: dict[str, Any] = {}
    for name, (predicted, actual) in pairs.items():
        meta[f"forecast_vs_actual/{name}_forecast"] = (
            None if predicted is None else round(predicted, 2)
        )
        meta[f"forecast_vs_actual/{name}_actual"] = round(actual, 2)
        meta[f"forecast_vs_actual/{name}_error_pct"] = (
            None if predicted is None else _error_pct(predicted, actual)
        )
    return meta


async def forecast_corpus(
    store: DuckDBStore,
    client: LLMClient,
    task: ExtractionTask,
    corpus: str,
    *,
    items_per_call: int | str = "auto",
    max_model_len: int = 8192,
    retry_limit: int = 3,
    prices: dict[str, tuple[float, float]] | None = None,
    source: Sequence[Document] | None = None,
) -> Forecast:
    """`source`: the corpus folder's documents as they are now (`plan`); the pending rule then
    applies as if they were synced (new and changed texts are pending; nothing is written)."""
    version = task.version(client.model, client.generation_params())
    pending = await asyncio.to_thread(
        store.pending_documents, corpus, task.name, version, retry_limit, max_model_len
    )
    if source is not None:
        stored = await asyncio.to_thread(store.document_hashes, corpus)
        still = {d.doc_id for d in pending}
        pending = [d for d in source if stored.get(d.doc_id) != d.content_hash or d.doc_id in still]
    settings = EngineSettings(max_model_len=max_model_len)
    planner = await counted_planner(task, settings, client, pending)
    if isinstance(items_per_call, int):
        n = items_per_call
    elif client.backend in PACKED:  # the auto rule without its probe (a probe makes calls)
        n = max_pack_by_context(task, pending[:64], settings, PACKED[client.backend][0], planner)
    else:
        n = 1
    planner = PackPlanner(task, replace(settings, items_per_call=n), planner.counter)
    packs, too_long = planner.plan(pending)
    input_tokens = sum(
        planner.static_tokens + sum(planner.input_tokens(d) for d in p.docs) for p in packs
    )
    budget = sum(planner.output_tokens(d) for p in packs for d in p.docs)
    measured = await asyncio.to_thread(
        store.measured_runs, client.backend, client.model, task.name, n
    )
    to_call = len(pending) - len(too_long)
    calls, output_tokens = len(packs), budget
    if measured is not None:
        calls = round(len(packs) * measured.calls_per_first_call)
        input_tokens = round(input_tokens * measured.prompt_per_first_prompt)
        output_tokens = round(to_call * measured.completion_per_item)
    cost = None
    price = price_for(client.model, prices if prices is not None else price_table())
    if client.backend == "openai" and price is not None:
        cost = (input_tokens * price[0] + output_tokens * price[1]) / 1e6
    return Forecast(
        corpus=corpus,
        task=task.name,
        backend=client.backend,
        model=client.model,
        items_per_call=n,
        pending=len(pending),
        too_long=len(too_long),
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        items_per_min=measured.items_per_min if measured else None,
        rate_runs=measured.runs if measured else 0,
        minutes=(
            to_call / measured.items_per_min if measured and measured.items_per_min > 0 else None
        ),
        cost_usd=cost,
        first_pass_calls=len(packs),
        retry_factor=round(measured.calls_per_first_call, 3) if measured else None,
        output_budget=budget,
    )


def format_forecasts(forecasts: list[Forecast]) -> str:
    head = (
        "corpus",
        "task",
        "pending",
        "calls",
        "per call",
        "input tok",
        "output tok",
        "minutes",
        "cost USD",
    )
    rows = [head]
    for f in forecasts:
        minutes = (
            f"{f.minutes:.1f} ({f.items_per_min:.1f}/min, {f.rate_runs} runs)"
            if f.minutes is not None and f.items_per_min is not None
            else "no stored rate"
        )
        rows.append(
            (
                f.corpus,
                f.task,
                f"{f.pending}" + (f" ({f.too_long} too long)" if f.too_long else ""),
                str(f.calls),
                str(f.items_per_call),
                str(f.input_tokens),
                str(f.output_tokens),
                minutes,
                f"{f.cost_usd:.4f}" if f.cost_usd is not None else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
