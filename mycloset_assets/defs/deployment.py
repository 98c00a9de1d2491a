"""Where the steps that run a network go: their Dagster pool and the tags that route them on a cluster.

One place for all of it, so that the pool, the Celery queue and the Kubernetes pod of a network step never
disagree. ``GPU_POOL`` limits how many network steps run at once across runs (the instance's pool limits,
``deploy/postgres/dagster.yaml``); ``GPU_OP_TAGS`` sends them to the ``gpu`` queue of ``dagster-celery``
(``deploy/celery/``) and, under ``dagster-k8s``, into a pod that asks for one GPU on a GPU node
(``deploy/k8s/``). The tags must sit on the assets themselves: run tags do not reach step pods. Without a
cluster they are inert labels.
"""

from typing import Any

GPU_POOL = "gpu"
"""The pool of the steps that run a network (one slot: one network step at a time on the device)."""
GPU_QUEUE = "gpu"
"""The Celery queue the network steps are sent to; every other step goes to Celery's default queue."""
CELERY_QUEUE_TAG = "dagster-celery/queue"
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
"""The label NVIDIA's GPU feature discovery puts on GPU nodes."""
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def gpu_op_tags(gpus: int = 1, memory: str = "16Gi") -> dict[str, Any]:
    """The op tags of a network step: the Celery ``gpu`` queue, and a pod with ``gpus`` GPUs and ``memory``
    of RAM, on a node carrying ``GPU_NODE_SELECTOR`` that tolerates the GPU taint."""
    return {
        CELERY_QUEUE_TAG: GPU_QUEUE,
        K8S_CONFIG_TAG: {
            "container_config": {
                "resources": {
                    "requests": {"memory": memory},
                    "limits": {"nvidia.com/gpu": str(gpus), "memory": memory},
                }
            },
            "pod_spec_config": {"node_selector": dict(GPU_NODE_SELECTOR), "tolerations": list(GPU_TOLERATIONS)},
        },
    }


GPU_OP_TAGS = gpu_op_tags()
"""The op tags every network asset carries."""
