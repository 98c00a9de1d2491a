"""The project's definitions with the Celery executor: steps go to Celery workers through the broker, network
steps to the ``gpu`` queue (their ``dagster-celery/queue`` op tag), the rest to the default queue."""

import os

import dagster as dg
from dagster_celery import celery_executor

from mycloset_assets.definitions import defs as project

CELERY = {
    "broker": os.environ.get("MYCLOSET_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
    "backend": os.environ.get("MYCLOSET_CELERY_BACKEND", "redis://127.0.0.1:6379/1"),
    "config_source": {"worker_prefetch_multiplier": 1, "task_acks_late": True, "task_reject_on_worker_lost": True},
}

defs = dg.Definitions.merge(project, dg.Definitions(executor=celery_executor.configured(CELERY)))
