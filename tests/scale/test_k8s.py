"""The pod of a network step, built offline by dagster-k8s from the asset's own op tags: one GPU, a GPU node,
the GPU taint tolerated; a photo step carries none of it."""

import pytest
from dagster_k8s import DagsterK8sJobConfig, construct_dagster_k8s_job
from dagster_k8s.job import get_user_defined_k8s_config

from mycloset_assets.defs.deployment import GPU_NODE_SELECTOR, GPU_POOL, GPU_QUEUE
from mycloset_assets.defs.images import person_image
from mycloset_assets.defs.tryon import pose

pytestmark = pytest.mark.scale


def step_pod(tags):
    config = DagsterK8sJobConfig(job_image="registry.example.com/mycloset-assets:0.1.0", dagster_home="/opt/dagster")
    job = construct_dagster_k8s_job(
        config,
        ["dagster", "api", "execute_step"],
        "dagster-step-pose",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
        component="step_worker",
    )
    return job.spec.template.spec


def test_the_pose_step_pod_asks_for_a_gpu_on_a_gpu_node():
    assert pose.op.pool == GPU_POOL and pose.op.tags["dagster-celery/queue"] == GPU_QUEUE
    pod = step_pod(pose.op.tags)
    (container,) = pod.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1", "memory": "16Gi"}
    assert container.resources.requests == {"memory": "16Gi"}
    assert pod.node_selector == GPU_NODE_SELECTOR == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert container.image == "registry.example.com/mycloset-assets:0.1.0"


def test_a_photo_step_pod_asks_for_no_gpu():
    assert "dagster-k8s/config" not in person_image.op.tags and person_image.op.pool is None
    pod = step_pod(person_image.op.tags)
    assert pod.node_selector is None and not pod.tolerations
    assert not (pod.containers[0].resources and pod.containers[0].resources.limits)
