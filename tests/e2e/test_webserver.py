"""End to end through the real webserver and daemon: launch materialisations over GraphQL, wait for the runs,
read their asset checks back over GraphQL; and the daemon running the inbox sensor on the demo's photo."""

import time
from typing import Any

import pytest

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.defs.partitions import image_partition_key

from .conftest import TARGETS, TERMINAL, Stack

SENSOR_S = 300.0
SENSOR_RUNS = """
query ($sensor: String!) { runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
  __typename ... on Runs { results { runId status tags { key value } } } } }
"""


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_materialise_over_graphql_and_read_the_checks_back(dagster_stack: Stack, target: str):
    for step in TARGETS[target]:
        run_id, status = dagster_stack.materialise(step)
        assert status == "SUCCESS", f"run {run_id} of {step.assets}: {status}\n{dagster_stack.run_errors(run_id)}"
        for asset in step.assets:
            executions = dagster_stack.check_executions(asset, run_id)
            assert executions, f"{asset} declares no asset checks"
            for name, execution in executions.items():
                assert execution is not None, f"{asset}/{name} did not run in {run_id}"
                evaluation = execution["evaluation"]
                assert execution["status"] == "SUCCEEDED" and evaluation["success"], (asset, name, execution)
                assert evaluation["metadataEntries"], f"{asset}/{name} carries no metadata"


@pytest.mark.slow
def test_the_daemon_runs_the_inbox_sensor_on_the_bundled_photo(dagster_stack: Stack):
    """The photo becomes a partition and exactly one run keyed by its sha256 (the run's own outcome depends on
    the stack's zoo: with only ``ZOO``'s checkpoints, the pose step has no model)."""
    photo = dagster_stack.layout.inbox / "person" / "astronaut.png"
    expected = {"dagster/partition": image_partition_key(photo), "dagster/run_key": file_sha256(photo)}
    deadline = time.monotonic() + SENSOR_S
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = dagster_stack.graphql(SENSOR_RUNS, {"sensor": "person_inbox_sensor"})["runsOrError"]["results"]
        if any(run["status"] in TERMINAL for run in runs):
            break
        time.sleep(2.0)
    assert len(runs) == 1, f"person_inbox_sensor launched {len(runs)} runs\n{dagster_stack.log_tail()}"
    (run,) = runs
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert {key: tags.get(key) for key in expected} == expected
    assert run["status"] in TERMINAL, f"the sensor's run is still {run['status']}"
