"""Steps on workers that share nothing local: Dagster's Celery executor over a Redis broker.

With ``EXTRACTION_CELERY_BROKER`` set, every step of every job is a Celery task taken by one of the
workers listening to the broker (``celery -A extraction_assets.celery_app worker``, started by
``scripts/cluster``); the run itself is only the coordinator that hands them out. A worker loads
the code location from the installed package and opens the instance the coordinator names (its
storage on PostgreSQL), so it needs no file of the head machine. Unset: the local multiprocess
executor, unchanged.

A step's outputs never pass through an IO manager: the assets return ``MaterializeResult`` (no
value), and what they produce is in the store.

A worker that dies mid-step (SIGKILL, a lost machine) leaves its task unacknowledged on the broker
(``task_acks_late``); the broker gives it to another worker after the visibility timeout, which
must therefore exceed the longest step. That worker extracts what is still pending: every call
the dead one finished is in the store.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from extraction_assets.settings import Settings

BROKER_ENV = "EXTRACTION_CELERY_BROKER"
QUEUE = "dagster"  # dagster_celery's default queue, the one its workers listen to
# How often a worker looks for tasks a dead worker left unacknowledged (kombu's async sweep runs
# every 10 s and scans Redis every `unacked_restore_throttle`-th time; 1: every sweep).
RESTORE_THROTTLE = 1


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery app settings the executor and the workers share (``config_source``)."""
    return {
        "task_acks_late": True,  # acknowledged when done: a dead worker's task is given again
        "task_reject_on_worker_lost": True,  # a killed pool process: requeued, not failed
        "worker_prefetch_multiplier": 1,  # a worker takes one task more than it runs, no more
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout_s,
            "unacked_restore_throttle": RESTORE_THROTTLE,
            # dagster_celery's defaults for publishing retries
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    }


def cluster_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The Celery executor when a broker is configured, else None (the local default)."""
    if not settings.celery_broker:
        return None
    from dagster_celery import celery_executor

    # The broker URL reaches Dagster as an environment reference: never shown in the UI.
    return celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": {"env": BROKER_ENV},
            "config_source": celery_config(settings),
        },
        name="celery",
    )
