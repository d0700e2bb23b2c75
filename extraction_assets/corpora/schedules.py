"""The catch-up schedule: every corpus partition, periodically.

`build_schedule_from_partitioned_job` rejects dynamic partitions, so the schedule lists them itself. Each
run extracts only what is pending (new, changed, or failed under the retry limit), so an up-to-date corpus
costs no LLM calls.
"""


import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.settings import Settings


def build_catch_up_schedule(
    job: dg.JobDefinition | UnresolvedAssetJobDefinition,
    settings: Settings,
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="catch_up_schedule",
        job=job,
        cron_schedule=settings.schedule_cron,
        default_status=default_status,
        description=f"Requests every corpus partition ({settings.schedule_cron}); the periodic backfill.",
    )
    def catch_up_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        corpora = sorted(context.instance.get_dynamic_partitions(corpus_partitions.name))
        if not corpora:
            return dg.SkipReason("no corpus partitions yet (the source sensor adds them)")
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
