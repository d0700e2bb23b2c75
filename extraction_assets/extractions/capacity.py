"""One LLM server's capacity shared by concurrent runs: a Dagster concurrency pool per endpoint.

Every step that sends requests to an endpoint (the extraction, the gold_sample check) declares the
same pool, named from the endpoint's host and port (`llm_127_0_0_1_8000`; replicas joined by `__`),
so at most the pool's limit of them run at once across all runs: the others wait in Dagster (the
UI shows them blocked on the pool) instead of piling their requests onto the server. Four runs at
64 in flight would otherwise put 256 requests on one server. The limit is the Dagster instance's
(`dagster instance concurrency set <pool> N`, or the UI's concurrency page); unset, dagster.yaml's
`pools: default_limit` (1) applies. A step that runs takes 1/limit of the server's requests in
flight (`engine.autotune.resolve_recipe`'s `share`), so the server sees one run's worth of
requests whatever the limit. Why and what it measured: benchmarks/results/concurrent_runs.md.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import dagster as dg

from resources.backends.base import split_base_urls

NO_POOL = "none"  # EXTRACTION_LLM_POOL=none: the steps declare no pool (runs never wait)


def endpoint_pool(base_url: str, override: str | None = None) -> str | None:
    """The pool of the steps calling `base_url` (comma-separated replicas): `override`
    (EXTRACTION_LLM_POOL) when given, None for "none", else `llm_<host>_<port>[__<host>_<port>]`.

    Host and port only: two spellings of one server's path share its pool; a list of replicas is
    one pool whatever its order."""
    if override:
        return None if override.strip().lower() == NO_POOL else override.strip()
    parts = set()
    for url in split_base_urls(base_url):
        parsed = urlsplit(url if "://" in url else f"http://{url}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        parts.add(re.sub(r"[^a-z0-9]+", "_", f"{parsed.hostname or ''}_{port}".lower()).strip("_"))
    return "llm_" + "__".join(sorted(parts))


def pool_limit(instance: dg.DagsterInstance, pool: str | None) -> int | None:
    """The pool's limit on this instance (None: no pool, no limit, or no pool support)."""
    storage = instance.event_log_storage
    if pool is None or not storage.supports_global_concurrency_limits:
        return None
    limits = {p.name: p.limit for p in storage.get_pool_limits()}
    if pool in limits:
        return limits[pool]
    return storage.get_pool_config().default_pool_limit


def assign_stranded_steps(instance: dg.DagsterInstance) -> list[str]:
    """Hands a free pool slot to a step left waiting for it: the pools it did so for.

    Dagster's claim reads "is a slot free?" and queues the step in two statements; when the
    slot's holder frees it between the two, it finds nobody queued to hand it to, and the step
    then waits, unassigned, for a release that never comes (seen: a second `extraction run` of a
    corpus blocked for good on `duckdb_document_sync`). A pool with more slots than steps
    assigned to them and a step still unassigned is in that state; this assigns it as the release
    would have."""
    storage = instance.event_log_storage
    # The SQL storages (SQLite, Postgres, MySQL) all have it; it is not on the abstract interface.
    assign = getattr(storage, "assign_pending_steps", None)
    if assign is None or not storage.supports_global_concurrency_limits:
        return []
    assigned = []
    for key, info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items():
        waiting = [step for step in info.pending_steps if step.assigned_timestamp is None]
        promised = len(info.pending_steps) - len(waiting)  # assigned: claimed or about to be
        for _ in range(min(len(waiting), info.slot_count - promised)):
            assign([key])  # the longest-waiting step of the highest priority, as a release does
            assigned.append(key)
    return assigned


def build_pool_keeper(interval_s: int = 30) -> dg.SensorDefinition:
    """The sensor that runs :func:`assign_stranded_steps` for runs launched by the daemon (it
    launches no run, so it runs whatever the automation default)."""

    @dg.sensor(
        name="pool_keeper",
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Hands a free concurrency-pool slot to a step Dagster left waiting for it (a slot "
            "freed while the step was being queued); launches no runs."
        ),
    )
    def pool_keeper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        assigned = assign_stranded_steps(context.instance)
        if assigned:
            context.log.warning(f"assigned free slots to stranded steps in pools {assigned}")
        return dg.SkipReason(f"stranded steps assigned: {len(assigned)}")

    return pool_keeper
