"""End to end through the real webserver and daemon: launch materialisations over GraphQL (the checkpoint side,
and the whole try-on graph on the bundled photos shrunk to tiny size), wait for the runs, read their asset checks
back over GraphQL; and the daemon running the person inbox sensor once it is started over GraphQL.

Synthesized weights find nobody in a photo, so content checks may fail with severity WARN; no ERROR check may
fail, and every check must have run in the step's run with its metadata."""

import time
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from mycloset_assets.checkpoints.convert import file_sha256
from mycloset_assets.defs.checks import KEY_MATCH_CHECK
from mycloset_assets.defs.partitions import image_partition_key, pair_key

from .conftest import TARGETS, TERMINAL, Stack, bundled_pair, photo_key

SENSOR_S = 300.0
TRYON_FIGURES = {"seconds", "cpu_seconds", "peak_rss_mb", "model_sha256", "key_match_rate"}
SENSOR_RUNS = """
query ($sensor: String!) { runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
  __typename ... on Runs { results { runId status tags { key value } } } } }
"""


def assert_checks_ran(stack: Stack, asset: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Every check ``asset`` declares ran in ``run_id`` with metadata, and none failed with severity ERROR."""
    executions = stack.check_executions(asset, run_id)
    assert executions, f"{asset} declares no asset checks"
    for name, execution in executions.items():
        assert execution is not None, f"{asset}/{name} did not run in {run_id}"
        evaluation = execution["evaluation"]
        passed = execution["status"] == "SUCCEEDED" and evaluation["success"]
        warned = execution["status"] == "FAILED" and evaluation["severity"] == "WARN"
        assert passed or warned, (asset, name, execution)
        assert evaluation["metadataEntries"], f"{asset}/{name} carries no metadata"
    return executions


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_materialise_over_graphql_and_read_the_checks_back(dagster_stack: Stack, target: str):
    runs = dagster_stack.materialise_target(target)
    for run in runs:
        assert run.status == "SUCCESS", f"{run}\n{dagster_stack.run_errors(run.run_id)}"
        for asset in run.step.assets:
            assert_checks_ran(dagster_stack, asset, run.run_id)
    assert list(dict.fromkeys(run.step.assets for run in runs)) == [step.assets for step in TARGETS[target]]


@pytest.mark.slow
def test_the_try_on_result_checks_name_the_model_and_its_key_match(dagster_stack: Stack):
    *_, last = dagster_stack.materialise_target("tryon")
    assert last.status == "SUCCESS" and "tryon_result" in last.step.assets
    executions = assert_checks_ran(dagster_stack, "tryon_result", last.run_id)
    for name, execution in executions.items():
        labels = {entry["label"] for entry in execution["evaluation"]["metadataEntries"]}
        assert labels >= TRYON_FIGURES, (name, labels)
    assert executions[KEY_MATCH_CHECK]["status"] == "SUCCEEDED", "the TOM checkpoint matched every key"


@pytest.mark.slow
def test_the_daemon_runs_the_inbox_sensor_on_a_new_photo_once(dagster_stack: Stack):
    """Started over GraphQL, the sensor makes a newly dropped photo a partition and exactly one run keyed by its
    sha256, and launches nothing for the bundled photo whose bytes are a partition already (its run's outcome
    is not asserted: it runs the person chain with the default settings on whatever models exist)."""
    folder = dagster_stack.layout.inbox / "person"
    photo = folder / "visitor.png"
    with Image.open(folder / "astronaut.png") as bundled:
        bundled.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    expected = {"dagster/partition": image_partition_key(photo), "dagster/run_key": file_sha256(photo)}
    dagster_stack.start_sensor("person_inbox_sensor")
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


STALENESS = """
query ($key: AssetKeyInput!, $partitions: [String!]) { assetNodes(assetKeys: [$key]) {
  staleStatusByPartition(partitions: $partitions) } }
"""


@pytest.mark.slow
def test_a_new_photo_marks_no_other_pair_stale_in_the_ui(dagster_stack: Stack):
    """Dagster's own staleness, as the UI reads it: after a new person photo and its steps, the bundled pair's
    result is still fresh, and the new person's pair with the garment is missing (nobody asked for it)."""
    runs = dagster_stack.materialise_target("tryon")
    assert all(run.status == "SUCCESS" for run in runs)
    (pair,) = bundled_pair(dagster_stack.layout)

    def status(asset: str, partition: str) -> str:
        variables = {"key": {"path": [asset]}, "partitions": [partition]}
        (node,) = dagster_stack.graphql(STALENESS, variables)["assetNodes"]
        (value,) = node["staleStatusByPartition"]
        return value

    assert status("tryon_result", pair) == "FRESH"
    folder = dagster_stack.layout.inbox / "person"
    newcomer = folder / "newcomer.png"
    with Image.open(folder / "astronaut.png") as bundled:
        bundled.rotate(90).save(newcomer)
    key = image_partition_key(newcomer)
    (person_step,) = [step for step in TARGETS["tryon"] if "pose" in step.assets]
    new_runs = dagster_stack.materialise(replace(person_step, partitions=(key,)))
    assert all(run.status == "SUCCESS" for run in new_runs), dagster_stack.run_errors(new_runs[0].run_id)
    assert status("pose", key) == "FRESH"
    assert status("tryon_result", pair) == "FRESH", "a new photo must not mark another pair stale"
    assert status("tryon_result", str(pair_key(key, photo_key(dagster_stack.layout, "garment")))) == "MISSING"
