"""The project's definitions with the Kubernetes job executor: each step in its own pod, network steps in a pod
with a GPU (their ``dagster-k8s/config`` op tag, ``mycloset_assets/defs/deployment.py``)."""

import dagster as dg
from dagster_k8s import k8s_job_executor

from mycloset_assets.definitions import defs as project

defs = dg.Definitions.merge(project, dg.Definitions(executor=k8s_job_executor.configured({"max_concurrent": 8})))
