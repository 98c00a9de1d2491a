"""The project's definitions with the Celery executor: steps go to Celery workers through the broker, network
steps to the ``gpu`` queue (their ``dagster-celery/queue`` op tag), the rest to the default queue. The broker and
the result backend are read when a run starts: ``MYCLOSET_CELERY_BROKER``, ``MYCLOSET_CELERY_BACKEND``."""

import dagster as dg
from dagster_celery import celery_executor

from mycloset_assets.definitions import defs as project

CELERY = {
    "broker": {"env": "MYCLOSET_CELERY_BROKER"},
    "backend": {"env": "MYCLOSET_CELERY_BACKEND"},
    "config_source": {"worker_prefetch_multiplier": 1, "task_acks_late": True, "task_reject_on_worker_lost": True},
}

defs = dg.Definitions.merge(project, dg.Definitions(executor=celery_executor.configured(CELERY)))
