"""`items_per_call: auto` / `max_concurrency: auto` (the default): the recipe of a run.

`resolve_recipe` decides. On vLLM (continuous batching) one item per call with many requests in
flight is the fastest and most accurate recipe measured (benchmarks/results/throughput.md:
2.8x the items/min of 20 per call x 10 in flight, better scores, no re-runs alone), so auto
takes it at once, with requests in flight bounded by the KV cache and the pending documents;
only a run with many pending documents (>= PROBE_MIN_DOCUMENTS, where the probe costs a small
share of the run) probes the server. Packing pays only where requests themselves cost:
Ollama (one or few sequences at a time by default, no continuous batching) and the OpenAI API
(per-request rate limits and the prompt's static part billed per request); there auto packs as
many items as fit the context, up to 20.

The probe (`choose_recipe`):

Which recipe is fastest depends on the server, not on a rule of thumb: a continuous-batching
server decodes many sequences at once, so more requests in flight help until its batch (or
its compute) is full, while a pack of N items is decoded as one sequence, N answers one after
the other. Packing saves the per-request costs (prompt header, scheduling, grammar set-up);
a one-slot server (Ollama-like) gains only from packing. So the probe measures instead of
assuming: it runs the real engine on slices of sample documents, first raising the requests
in flight with one item per call until items/min stops improving (two steps in a row without
a clear gain: one slow probe is noise, not a peak), then, for each larger pack
size, raising its requests in flight from the same number of items in flight. It keeps the
point with the most valid items per minute and logs every measurement.

Limits: a pack never exceeds what fits the context (the engine's own PackPlanner), and the
items in flight never exceed what the server's KV cache holds (vLLM's `cache_config_info`
metric, when the server exposes it). A probe point needs `n x c` sample documents (one full
wave); points the sample cannot fill are not measured.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from extraction_assets.engine.packing import ANSWER_OVERHEAD_TOKENS, PackPlanner, counted_planner
from extraction_assets.engine.runner import EngineSettings, extract
from extraction_assets.types import CallOutcome, Document

if TYPE_CHECKING:
    from extraction_assets.tasks.base import ExtractionTask
    from resources.backends.base import LLMClient

PACK_SIZES = (1, 5, 10, 20)
# The rule without a probe, per backend: (largest pack, requests in flight).
LONE_IN_FLIGHT = 64  # vLLM: one item per call; the server batches the requests
PACKED = {"ollama": (20, 2), "openai": (20, 8)}
# A probe runs about a thousand items' worth of calls whose answers are discarded: worth it
# only when the run is much larger than that.
PROBE_MIN_DOCUMENTS = 2000
PROBE_SAMPLE = 400
CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64)
MIN_GAIN = 0.10  # a step must add >= 10% items/min to count as better (probe noise)


@dataclass(frozen=True)
class ProbePoint:
    items_per_call: int
    max_concurrency: int
    items: int
    ok_items: int
    elapsed_s: float

    @property
    def items_per_min(self) -> float:
        return 60.0 * self.items / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok_items_per_min(self) -> float:
        """What the search maximises: valid items per minute (failures are not throughput)."""
        return 60.0 * self.ok_items / self.elapsed_s if self.elapsed_s > 0 else 0.0


Measure = Callable[[int, int], Awaitable[ProbePoint]]


@dataclass
class RecipeReport:
    items_per_call: int
    max_concurrency: int
    reason: str
    probes: list[ProbePoint] = field(default_factory=list)
    max_pack_by_context: int = 0
    max_in_flight_by_memory: int | None = None
    probe_s: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"chose items_per_call={self.items_per_call}, max_concurrency="
            f"{self.max_concurrency}: {self.reason}"
        ]
        out += [
            f"  probe n={p.items_per_call:>2} c={p.max_concurrency:>2}: {p.items} items, "
            f"{p.ok_items} ok, {p.elapsed_s:.1f}s, {p.ok_items_per_min:.1f} ok items/min"
            for p in self.probes
        ]
        return out


def _better(candidate: ProbePoint, best: ProbePoint | None, min_gain: float) -> bool:
    return best is None or candidate.ok_items_per_min > best.ok_items_per_min * (1 + min_gain)


async def search(
    measure: Measure,
    *,
    sample_size: int,
    pack_sizes: Sequence[int] = PACK_SIZES,
    concurrencies: Sequence[int] = CONCURRENCIES,
    max_items_in_flight: int | None = None,
    min_gain: float = MIN_GAIN,
    log: logging.Logger | None = None,
) -> tuple[ProbePoint, list[ProbePoint], str]:
    """Greedy coordinate search over (pack size, requests in flight): (best, probes, why).

    Pure logic: `measure(n, c)` is the only contact with a server (tests pass a fake)."""
    log = log or logging.getLogger(__name__)
    limit = min(sample_size, max_items_in_flight or sample_size)
    probes: list[ProbePoint] = []
    best: ProbePoint | None = None
    best_of_pack: dict[int, ProbePoint] = {}

    async def probe(n: int, c: int) -> ProbePoint:
        point = await measure(n, c)
        probes.append(point)
        log.info(
            "autotune probe: %d per call, %d in flight -> %.1f ok items/min (%d/%d ok)",
            n,
            c,
            point.ok_items_per_min,
            point.ok_items,
            point.items,
        )
        return point

    packs = sorted({n for n in pack_sizes if 1 <= n <= limit})
    concs = sorted({c for c in concurrencies if c >= 1})
    for n in packs:
        # Start from the items in flight the previous pack size needed (fewer requests, same
        # items), so a pack is compared at the load where one-item calls peaked.
        prev = best_of_pack.get(packs[packs.index(n) - 1]) if n != packs[0] else None
        start = max(1, (prev.items_per_call * prev.max_concurrency) // n) if prev else 1
        feasible = [c for c in concs if n * c <= limit]
        # From `start` up; when the sample cannot reach `start`, the largest feasible point.
        ladder = [c for c in feasible if c >= start] or feasible[-1:]
        pack_best: ProbePoint | None = None
        flat = 0
        for c in ladder:
            point = await probe(n, c)
            if _better(point, pack_best, min_gain):
                pack_best, flat = point, 0
                continue
            assert pack_best is not None
            if point.ok_items_per_min > pack_best.ok_items_per_min:
                pack_best = point  # no clear gain: the curve is flat, keep the faster
            flat += 1
            # Stop after two steps in a row without a clear gain. One slow probe is not a peak:
            # on a busy machine a single short wave can measure half its rate (seen: 1 x 16 at
            # 189 items/min between 1 x 8 at 306 and 1 x 64 at 505), and stopping there cost 18%.
            if flat >= 2:
                break
        if pack_best is None:
            continue
        best_of_pack[n] = pack_best
        if best is None or pack_best.ok_items_per_min > best.ok_items_per_min:
            best = pack_best
        elif pack_best.ok_items_per_min < best.ok_items_per_min / (1 + min_gain):
            break  # larger packs got clearly slower: stop (saves probe time)
    if best is None:
        point = await probe(1, 1)
        return point, probes, "the sample was too small to compare recipes; one item per call"
    # One probe can be lucky (a short wave on a busy machine): measure the two fastest
    # points once more and decide on the mean of both measurements.
    ranked = sorted(probes, key=lambda p: p.ok_items_per_min, reverse=True)
    top: list[ProbePoint] = []
    for p in ranked:
        if all(
            (p.items_per_call, p.max_concurrency) != (t.items_per_call, t.max_concurrency)
            for t in top
        ):
            top.append(p)
    top = top[:2]
    scores = {}
    for p in top:
        again = await probe(p.items_per_call, p.max_concurrency)
        scores[(p.items_per_call, p.max_concurrency)] = (
            p.ok_items_per_min + again.ok_items_per_min
        ) / 2
    (n, c), score = max(scores.items(), key=lambda kv: kv[1])
    best = max(
        (p for p in probes if (p.items_per_call, p.max_concurrency) == (n, c)),
        key=lambda p: p.ok_items_per_min,
    )
    why = f"fastest on re-measurement: {score:.1f} ok items/min (mean of 2 probes)"
    others = [
        f"{k[0]} per call x {k[1]} in flight {v:.1f}" for k, v in scores.items() if k != (n, c)
    ]
    if others:
        why += f", vs {others[0]}"
    return best, probes, why


# -- limits -------------------------------------------------------------------------------------


def max_pack_by_context(
    task: ExtractionTask,
    sample: Sequence[Document],
    settings: EngineSettings,
    largest: int,
    planner: PackPlanner | None = None,
) -> int:
    """The largest pack of typical (median-length) sample documents that fits the context."""
    if not sample:
        return 1
    planner = planner or PackPlanner(task, settings)
    typical = sorted(sample, key=lambda d: len(d.text))[len(sample) // 2]
    n = 1
    while n < largest and planner.fits([typical] * (n + 1)):
        n += 1
    return n


def _kv_cache_tokens(metrics_text: str) -> int | None:
    line = next(
        (ln for ln in metrics_text.splitlines() if ln.startswith("vllm:cache_config_info")), None
    )
    if line is None:
        return None
    blocks = re.search(r'num_gpu_blocks="(\d+)"', line)
    size = re.search(r'block_size="(\d+)"', line)
    return int(blocks.group(1)) * int(size.group(1)) if blocks and size else None


async def kv_cache_tokens(client: LLMClient) -> int | None:
    """Tokens the server's KV cache holds (vLLM /metrics), None when unknown."""
    urls = getattr(client, "base_urls", None)
    if client.backend != "vllm" or not urls:
        return None
    total = 0
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        for url in urls:
            root = url.rstrip("/").removesuffix("/v1")
            try:
                response = await http.get(f"{root}/metrics")
                tokens = _kv_cache_tokens(response.text)
            except httpx.HTTPError:
                return None
            if tokens is None:
                return None
            total += tokens
    return total


# -- the probe against a real server ------------------------------------------------------------


async def _nothing(_: CallOutcome) -> None:
    return None


async def choose_recipe(
    task: ExtractionTask,
    sample_documents: Sequence[Document],
    client: LLMClient,
    settings: EngineSettings,
    log: logging.Logger | Any,
    *,
    pack_sizes: Sequence[int] = PACK_SIZES,
    concurrencies: Sequence[int] = CONCURRENCIES,
    min_gain: float = MIN_GAIN,
) -> tuple[int, int, RecipeReport]:
    """Probe `client` with the real engine on `sample_documents`; returns (items_per_call,
    max_concurrency, report). The probe's answers are discarded (the run extracts for real).

    Each probe point uses the next unused slice of the sample (wrapping around when the
    sample runs out), so later points are not flattered by earlier ones' cached prompts."""
    t0 = time.monotonic()
    docs = list(sample_documents)
    planner = await counted_planner(task, settings, client, docs)
    largest = max_pack_by_context(task, docs, settings, max(pack_sizes), planner)
    in_flight_cap = _in_flight_cap(planner, docs, await kv_cache_tokens(client))
    cursor = 0

    async def measure(n: int, c: int) -> ProbePoint:
        nonlocal cursor
        # Two full waves of c packs (at least 4 packs): a point is not one lucky request.
        k = min(len(docs), max(2 * n * c, 4 * n))
        chunk = [docs[(cursor + i) % len(docs)] for i in range(k)]
        cursor = (cursor + k) % max(1, len(docs))
        probe_settings = replace(
            settings,
            items_per_call=n,
            max_concurrency=c,
            progress_interval_s=max(settings.progress_interval_s, 3600),
        )
        quiet = logging.getLogger(f"{__name__}.probe")
        started = time.monotonic()
        summary = await extract(task, chunk, client, probe_settings, _nothing, quiet)
        return ProbePoint(
            n,
            c,
            summary.items_ok + summary.items_failed,
            summary.items_ok,
            time.monotonic() - started,
        )

    best, probes, why = await search(
        measure,
        sample_size=len(docs),
        pack_sizes=[n for n in pack_sizes if n <= largest],
        concurrencies=concurrencies,
        max_items_in_flight=in_flight_cap,
        min_gain=min_gain,
        log=log,
    )
    report = RecipeReport(
        best.items_per_call,
        best.max_concurrency,
        why,
        probes,
        largest,
        in_flight_cap,
        time.monotonic() - t0,
    )
    for line in report.lines():
        log.info("autotune: %s", line)
    log.info(
        "autotune: context allows packs of up to %d; KV cache allows %s items in flight; "
        "probe took %.0fs",
        largest,
        in_flight_cap or "unknown",
        report.probe_s,
    )
    return best.items_per_call, best.max_concurrency, report


# -- the recipe of a run ------------------------------------------------------------------------


async def resolve_recipe(
    items_per_call: int | str,
    max_concurrency: int | str,
    task: ExtractionTask,
    pending: Sequence[Document],
    client: LLMClient,
    settings: EngineSettings,
    log: logging.Logger | Any,
    share: int = 1,
) -> tuple[int, int]:
    """The (items_per_call, max_concurrency) of a run: numbers as configured; "auto" by the
    backend's rule, or by a probe on vLLM when many documents are pending. A fixed knob stays
    fixed whatever auto chooses for the other.

    `share`: how many runs may use the server at once (its Dagster pool's limit,
    extractions/capacity.py); an auto in-flight count is 1/share of what one run would take,
    so together they put no more requests on the server than one run alone."""
    share = max(1, share)
    fixed_n = items_per_call if isinstance(items_per_call, int) else None
    fixed_c = max_concurrency if isinstance(max_concurrency, int) else None
    if fixed_n is not None and fixed_c is not None:
        return fixed_n, fixed_c
    backend = getattr(client, "backend", "vllm")
    if backend == "vllm" and len(pending) >= PROBE_MIN_DOCUMENTS:
        n, c, _ = await choose_recipe(
            task,
            list(pending[:PROBE_SAMPLE]),
            client,
            settings,
            log,
            pack_sizes=(fixed_n,) if fixed_n else PACK_SIZES,
            concurrencies=(fixed_c,)
            if fixed_c
            else tuple(c for c in CONCURRENCIES if c * share <= LONE_IN_FLIGHT) or (1,),
        )
        log.info(f"auto recipe (probed): items_per_call={n}, max_concurrency={c}")
        return n, c
    sample = list(pending[:PROBE_SAMPLE])
    planner = await counted_planner(task, settings, client, sample)
    if backend in PACKED:
        largest, in_flight = PACKED[backend]
        n = fixed_n or max_pack_by_context(task, sample, settings, largest, planner)
        c = fixed_c or max(1, in_flight // share)
        why = (
            f"{backend} gains from packing (requests cost: no continuous batching or "
            "per-request limits)"
        )
    else:
        n = fixed_n or 1
        kv = await kv_cache_tokens(client)
        cap = _in_flight_cap(planner, sample, kv)
        budget = min(LONE_IN_FLIGHT, cap or LONE_IN_FLIGHT) // share
        c = fixed_c or max(1, min(budget, math.ceil(len(pending) / n) or 1))
        why = (
            "a continuous-batching server decodes single requests side by side (KV cache "
            f"holds {cap if cap else 'unknown'} items)"
        )
    if share > 1 and fixed_c is None:
        why += (
            f"; 1/{share} of the server's requests in flight (its pool lets {share} runs share it)"
        )
    log.info(
        f"auto recipe: items_per_call={n}, max_concurrency={c} for {len(pending)} pending "
        f"documents on {backend}: {why}"
    )
    return n, c


def _in_flight_cap(planner: PackPlanner, docs: Sequence[Document], kv: int | None) -> int | None:
    """Items the KV cache holds at once. Every sequence also holds the instructions; they count
    once per item (the worst case: one item per call), so the limit is safe at any pack size."""
    if not kv or not docs:
        return None
    per_item = statistics.median(planner.input_tokens(d) + planner.output_tokens(d) for d in docs)
    return max(1, int(kv // (per_item + planner.static_tokens + ANSWER_OVERHEAD_TOKENS)))
