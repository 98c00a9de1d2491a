"""End to end through the real webserver and daemon: launch a materialisation over GraphQL, wait for the run,
read its asset checks back over GraphQL.

``TARGETS`` names what is launched: steps of assets (with the dynamic partition each step needs, added over
GraphQL first). Point a new entry at the try-on graph as it lands, e.g. the person and garment photo steps
then ``tryon_result`` for the pair of the bundled photos (``image_partition_key`` / ``pair_key`` of the files
in ``layout.inbox``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mycloset_assets.demo import LOCATION_NAME, DemoLayout

from .conftest import REPOSITORY, Stack

PartitionOf = Callable[[DemoLayout], str]


@dataclass(frozen=True)
class Step:
    """One run: ``assets`` materialised together, for ``partition`` of dynamic set ``partitions_def``."""

    assets: tuple[str, ...]
    partitions_def: str | None = None
    partition: str | PartitionOf | None = None

    def partition_key(self, layout: DemoLayout) -> str | None:
        return self.partition(layout) if callable(self.partition) else self.partition


TARGETS: dict[str, tuple[Step, ...]] = {
    "checkpoint_side": (
        Step(("checkpoint_analysis",), "checkpoint_files", "u2netp/u2netp.pth"),
        Step(("garment_mask_model",)),
    ),
}

ADD_PARTITION = """
mutation ($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename ... on Error { message } } }
"""
LAUNCH = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on Error { message } } }
"""
CHECKS = """
query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
  assetChecksOrError { __typename ... on AssetChecks { checks { name
    executionForLatestMaterialization { runId status partition
      evaluation { success severity description metadataEntries { label } } } } } } } }
"""


def add_partition(stack: Stack, partitions_def: str, key: str) -> None:
    variables = {
        "selector": {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY},
        "name": partitions_def,
        "key": key,
    }
    result = stack.graphql(ADD_PARTITION, variables)["addDynamicPartition"]
    assert result["__typename"] in {"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"}, result


def launch(stack: Stack, assets: tuple[str, ...], partition: str | None) -> str:
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    params = {
        "selector": {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": [name]} for name in assets],
        },
        "executionMetadata": {"tags": tags},
        "runConfigData": {},
    }
    result = stack.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def latest_checks(stack: Stack, asset: str) -> list[dict[str, Any]]:
    (node,) = stack.graphql(CHECKS, {"keys": [{"path": [asset]}]})["assetNodes"]
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", checks
    return checks["checks"]


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_materialise_over_graphql_and_read_the_checks_back(dagster_stack: Stack, target: str):
    for step in TARGETS[target]:
        partition = step.partition_key(dagster_stack.layout)
        if step.partitions_def and partition:
            add_partition(dagster_stack, step.partitions_def, partition)
        run_id = launch(dagster_stack, step.assets, partition)
        status = dagster_stack.wait_for_run(run_id)
        assert status == "SUCCESS", f"run {run_id} of {step.assets}: {status}\n{dagster_stack.run_errors(run_id)}"
        for asset in step.assets:
            checks = latest_checks(dagster_stack, asset)
            assert checks, f"{asset} declares no asset checks"
            for check in checks:
                execution = check["executionForLatestMaterialization"]
                assert execution is not None, f"{asset}/{check['name']} did not run with the materialisation"
                assert execution["runId"] == run_id and execution["status"] == "SUCCEEDED", (asset, check)
                evaluation = execution["evaluation"]
                assert evaluation["success"] and evaluation["metadataEntries"], (asset, check)
