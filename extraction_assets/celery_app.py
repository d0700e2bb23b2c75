"""The Celery app of a cluster worker: ``celery -A extraction_assets.celery_app worker -Q dagster``.

The same broker, result backend and settings as the executor (extraction_assets/cluster.py), and
dagster_celery's step task: it reads the step's job from the code location and its run from the
instance the coordinator named.
"""

from __future__ import annotations

from dagster._core.execution.retries import RetryMode
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from extraction_assets.cluster import celery_config
from extraction_assets.errors import ClusterError
from extraction_assets.settings import Settings

_settings = Settings.from_env()
if not _settings.celery_broker:
    raise ClusterError("a cluster worker needs EXTRACTION_CELERY_BROKER (redis://host:port/db)")

app = make_app(
    CeleryExecutor(
        retries=RetryMode(RetryMode.DISABLED),
        broker=_settings.celery_broker,
        backend=_settings.celery_broker,
        config_source=celery_config(_settings),
    ).app_args()
)
execute_plan = create_task(app)
