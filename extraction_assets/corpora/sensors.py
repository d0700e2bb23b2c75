"""A sensor on the source root: new corpus folders become partitions, changed corpora get a run.

Change detection uses a content fingerprint per corpus kept in the sensor cursor, so the sensor never
opens DuckDB (which a running extraction may be writing).
"""


import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import corpus_fingerprint, list_corpora
from extraction_assets.settings import Settings


def build_source_sensor(
    job: dg.JobDefinition | UnresolvedAssetJobDefinition, settings: Settings, default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    @dg.sensor(
        name="corpus_source_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=default_status,
        description=(
            "Watches the source root: adds a partition for each new corpus folder and requests a run for "
            "each corpus whose files changed (run key = corpus + fingerprint + tick, so each change runs once)."
        ),
    )
    def corpus_source_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        root = settings.source_root
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        corpora = list_corpora(root)
        known = set(context.instance.get_dynamic_partitions(corpus_partitions.name))
        new_partitions = [c for c in corpora if c not in known]
        fingerprints = {c: corpus_fingerprint(root, c) for c in corpora}
        changed = [c for c, fp in fingerprints.items() if previous.get(c) != fp]
        if changed:
            context.log.info(f"corpora changed or new: {changed}")
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
            dynamic_partitions_requests=(
                [corpus_partitions.build_add_request(new_partitions)] if new_partitions else []
            ),
            cursor=json.dumps(fingerprints, sort_keys=True),
        )

    return corpus_source_sensor
