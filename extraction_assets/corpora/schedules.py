"""The catch-up schedule: every corpus partition whose folder exists, periodically.

`build_schedule_from_partitioned_job` rejects dynamic partitions, so the schedule lists them itself. Each
run extracts only what is pending (new, changed, or failed under the retry limit), so an up-to-date corpus
costs no LLM calls. A partition whose folder was removed gets no run (the source sensor deletes it).
"""

from typing import Any

import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.corpora.sources import list_corpora
from extraction_assets.settings import Settings


def build_catch_up_schedule(
    target: Any,  # the job made by dg.define_asset_job (its class is not public)
    settings: Settings,
    default_status: dg.DefaultScheduleStatus,
    *,
    name: str = "catch_up_schedule",
    partitions_def: dg.DynamicPartitionsDefinition = corpus_partitions,
) -> dg.ScheduleDefinition:
    partitions_name = partitions_def.name
    if partitions_name is None:
        raise ValueError("the corpus partitions need a name")

    @dg.schedule(
        name=name,
        target=target,
        cron_schedule=settings.schedule_cron,
        default_status=default_status,
        description=(
            f"Requests every corpus partition whose folder exists ({settings.schedule_cron}); "
            "the periodic backfill."
        ),
    )
    def catch_up_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        partitions = set(context.instance.get_dynamic_partitions(partitions_name))
        corpora = sorted(partitions & set(list_corpora(settings.source_root)))
        if not corpora:
            return dg.SkipReason("no corpus partition with a folder (the source sensor adds them)")
        gone = sorted(partitions - set(corpora))
        if gone:
            context.log.info(f"no run for partitions whose folder is gone: {gone}")
        tick = (
            context.scheduled_execution_time.isoformat()
            if context.scheduled_execution_time
            else "manual"
        )
        return [
            dg.RunRequest(partition_key=c, run_key=f"{c}:{tick}", tags={"trigger": "schedule"})
            for c in corpora
        ]

    return catch_up_schedule
