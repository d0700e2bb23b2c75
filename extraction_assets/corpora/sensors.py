"""A sensor on the source root: corpus folders are the partitions, changed corpora get a run.

A new folder becomes a partition and gets a run; a removed folder's partition is deleted (the store keeps
its rows and history, and Dagster its runs and materialisations: a folder that comes back is a partition
again, with its history). Change detection uses a content fingerprint per corpus kept in the sensor
cursor, so the sensor never opens DuckDB (which a running extraction may be writing).

Each tick also evaluates the `source_freshness` check of every corpus from file times and the latest
extraction (extractions/freshness.py) and reports it when it changes, so a change left waiting past
the allowed lag shows as a failed check in the UI without any run.
"""

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import corpus_fingerprint, list_corpora
from extraction_assets.extractions.freshness import DEFAULT_MAX_LAG, evaluate_freshness
from extraction_assets.settings import Settings

FRESHNESS_CHECK = "source_freshness"


def _read_cursor(cursor: str | None) -> tuple[dict[str, str], dict[str, bool]]:
    data = json.loads(cursor) if cursor else {}
    if "fingerprints" not in data:  # the cursor of earlier versions: fingerprints only
        return data, {}
    return data["fingerprints"], data.get("fresh", {})


def _freshness_events(
    instance: dg.DagsterInstance,
    root: Any,
    corpora: Sequence[str],
    keys: Sequence[dg.AssetKey],
    max_lag: timedelta,
    reported: dict[str, bool],
) -> tuple[list[dg.AssetCheckEvaluation], dict[str, bool]]:
    """A freshness evaluation per corpus and extraction asset whose state changed since the last
    report; the new report state."""
    events, state = [], {}
    for key in keys:
        for corpus in corpora:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[corpus]), limit=1
            ).records
            fresh = evaluate_freshness(
                root, corpus, records[0].timestamp if records else None, max_lag
            )
            slot = f"{key.to_user_string()}:{corpus}"
            state[slot] = fresh.fresh
            if reported.get(slot) != fresh.fresh:
                events.append(
                    dg.AssetCheckEvaluation(
                        asset_key=key,
                        check_name=FRESHNESS_CHECK,
                        passed=fresh.fresh,
                        severity=dg.AssetCheckSeverity.WARN,
                        partition=corpus,
                        metadata={**fresh.metadata(), "evaluated_by": "corpus_source_sensor"},
                    )
                )
    return events, state


def build_source_sensor(
    target: Any,  # the job made by dg.define_asset_job (its class is not public)
    settings: Settings,
    default_status: dg.DefaultSensorStatus,
    freshness_keys: Sequence[dg.AssetKey] = (),
    max_lag: timedelta = DEFAULT_MAX_LAG,
    *,
    name: str = "corpus_source_sensor",
    partitions_def: dg.DynamicPartitionsDefinition = corpus_partitions,
) -> dg.SensorDefinition:
    """The sensor; `freshness_keys`: the extraction assets whose `source_freshness` it reports."""
    root = settings.source_root
    partitions_name = partitions_def.name
    if partitions_name is None:
        raise ValueError("the corpus partitions need a name")

    @dg.sensor(
        name=name,
        target=target,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=default_status,
        description=(
            "Watches the source root: adds a partition for each new corpus folder and requests a run for "
            "each corpus whose files changed (run key = corpus + fingerprint + tick, so each change runs "
            "once); deletes the partition of a removed folder (its store rows and history are kept)."
        ),
    )
    def corpus_source_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous, reported = _read_cursor(context.cursor)
        corpora = list_corpora(root)
        known = set(context.instance.get_dynamic_partitions(partitions_name))
        new_partitions = [c for c in corpora if c not in known]
        removed = sorted(known - set(corpora))
        fingerprints = {c: corpus_fingerprint(root, c) for c in corpora}
        changed = [c for c, fp in fingerprints.items() if previous.get(c) != fp]
        if changed:
            context.log.info(f"corpora changed or new: {changed}")
        if removed:
            context.log.info(f"corpus folders removed, their partitions deleted: {removed}")
        # Corpora already known: a new one is not yet a partition its check could be reported on.
        events, state = _freshness_events(
            context.instance,
            root,
            [c for c in corpora if c in known],
            freshness_keys,
            max_lag,
            reported,
        )
        requests: list[Any] = []
        if new_partitions:
            requests.append(partitions_def.build_add_request(new_partitions))
        if removed:
            requests.append(partitions_def.build_delete_request(removed))
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    partition_key=c,
                    # Dagster never reuses a run key: the tick makes an undone correction (back to an
                    # earlier fingerprint) run again, while a retried tick still dedupes.
                    run_key=f"{c}:{fingerprints[c]}:{context.last_tick_completion_time}",
                    tags={"trigger": "source"},
                )
                for c in changed
            ],
            dynamic_partitions_requests=requests,
            asset_events=events,
            cursor=json.dumps({"fingerprints": fingerprints, "fresh": state}, sort_keys=True),
        )

    return corpus_source_sensor
