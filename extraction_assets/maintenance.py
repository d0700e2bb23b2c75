"""Lake maintenance as a Dagster job: compaction and snapshot expiry on a schedule.

Only a DuckLake store needs it (every commit writes small files and a snapshot); a DuckDB file
store gets no such job.
"""

import dagster as dg

from resources.store import DuckDBStore

MAINTENANCE_CRON = "30 3 * * 0"  # weekly, after the nightly catch-up
KEEP_SNAPSHOTS_S = 7 * 86400  # time travel kept for a week


class MaintenanceConfig(dg.Config):
    keep_snapshots_s: float = KEEP_SNAPSHOTS_S


@dg.op(
    description="Flush inlined rows, compact small files, expire old snapshots and delete "
    "unreferenced files of the DuckLake store; file counts before and after."
)
def maintain_lake(
    context: dg.OpExecutionContext, config: MaintenanceConfig, store: DuckDBStore
) -> dg.Output[dict[str, int]]:
    report = store.maintain(older_than_s=config.keep_snapshots_s)
    context.log.info(f"lake maintenance: {report}")
    return dg.Output(report, metadata=dict(report))


@dg.job(description="Compact and expire the shared DuckLake store.")
def lake_maintenance() -> None:
    maintain_lake()


def lake_maintenance_schedule(default_status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        job=lake_maintenance, cron_schedule=MAINTENANCE_CRON, default_status=default_status
    )
