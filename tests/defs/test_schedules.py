"""The nightly batch on a real (temporary) Dagster instance: missing and stale partitions, batched runs."""

from collections.abc import Iterator

import dagster as dg
import pytest

from mycloset_assets.defs.partitions import garment_images, pair_key, pairs, person_images
from mycloset_assets.defs.schedules import RANGE_END_TAG, RANGE_START_TAG, build_nightly_schedule, nightly_batch

SINGLE_RUN = dg.BackfillPolicy.single_run()


@dg.asset
def pose_model() -> None:
    """Stands for a model asset: unpartitioned, upstream of every photo."""


@dg.asset(partitions_def=person_images, backfill_policy=SINGLE_RUN)
def person_image() -> None:
    """Stands for the photo asset (single-run backfills: a batch loads nothing twice)."""


@dg.asset(partitions_def=person_images, backfill_policy=SINGLE_RUN, deps=[person_image, pose_model])
def pose() -> None:
    """Stands for a per-photo model step."""


@dg.asset(partitions_def=garment_images)
def garment_image() -> None:
    """Stands for a per-photo asset without a single-run policy."""


@dg.asset(
    partitions_def=pairs,
    deps=[
        dg.AssetDep(pose, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(garment_image, partition_mapping=dg.AllPartitionMapping()),
    ],
)
def tryon_result() -> None:
    """Stands for the pair asset."""


ASSETS = [pose_model, person_image, pose, garment_image, tryon_result]
DEFS = dg.Definitions(assets=ASSETS, schedules=[nightly_batch])
PERSONS = ["p1", "p2", "p3", "p4"]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("person_images", PERSONS)
        instance.add_dynamic_partitions("garment_images", ["g1"])
        instance.add_dynamic_partitions("pairs", [pair_key("p1", "g1")])
        yield instance


def evaluate(instance: dg.DagsterInstance, schedule: dg.ScheduleDefinition = nightly_batch):
    context = dg.build_schedule_context(instance=instance, repository_def=DEFS.get_repository_def())
    return schedule(context)


def describe(requests: list[dg.RunRequest]) -> set[tuple[str, str, tuple[str, ...]]]:
    """(first partition, last partition, assets) of each request."""
    rows = set()
    for request in requests:
        first = request.partition_key or request.tags[RANGE_START_TAG]
        last = request.partition_key or request.tags[RANGE_END_TAG]
        rows.add((first, last, tuple(key.to_user_string() for key in request.asset_selection)))
    return rows


def run(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """Execute a request the way the daemon launches it."""
    result = dg.materialize(
        ASSETS,
        instance=instance,
        selection=request.asset_selection,
        partition_key=request.partition_key,
        tags=request.tags,
    )
    assert result.success


def test_definitions_with_the_schedule_load():
    dg.Definitions.validate_loadable(DEFS)
    assert DEFS.get_schedule_def("nightly_batch").cron_schedule == "0 2 * * *"


def test_missing_partitions_are_requested_in_batches_and_pairs_wait(instance):
    assert dg.materialize([pose_model], instance=instance).success
    assert dg.materialize(
        [person_image, pose, pose_model], selection=[person_image, pose], partition_key="p2", instance=instance
    ).success
    requests = evaluate(instance)
    assert describe(requests) == {
        ("p1", "p1", ("person_image", "pose")),
        ("p3", "p4", ("person_image", "pose")),
        ("g1", "g1", ("garment_image",)),
    }

    for request in requests:
        run(instance, request)
    assert instance.get_materialized_partitions(dg.AssetKey("pose")) == set(PERSONS)
    (tryon,) = evaluate(instance)
    assert tryon.partition_key == "p1|g1" and tryon.asset_selection == [dg.AssetKey("tryon_result")]
    run(instance, tryon)
    assert evaluate(instance).skip_message.startswith("every partition is up to date")


def settle(instance: dg.DagsterInstance) -> int:
    """Run nightly batches until nothing is left; returns how many nights it took."""
    for night in range(1, 5):
        requests = evaluate(instance)
        if not isinstance(requests, list):
            return night
        for request in requests:
            run(instance, request)
    raise AssertionError("the batch did not settle in 4 nights")


def test_partitions_older_than_their_upstream_are_stale(instance):
    assert dg.materialize([pose_model], instance=instance).success
    assert settle(instance) == 3

    assert dg.materialize([pose_model], instance=instance).success
    (request,) = evaluate(instance)
    assert describe([request]) == {("p1", "p4", ("pose",))}
    run(instance, request)
    (request,) = evaluate(instance)
    assert describe([request]) == {("p1|g1", "p1|g1", ("tryon_result",))}


def test_steps_whose_model_was_never_materialised_wait(instance):
    requests = evaluate(instance)
    assert describe(requests) == {("p1", "p4", ("person_image",)), ("g1", "g1", ("garment_image",))}


def test_selection_narrows_the_batch(instance):
    schedule = build_nightly_schedule(dg.AssetSelection.assets(garment_image), name="garments_only")
    assert describe(evaluate(instance, schedule)) == {("g1", "g1", ("garment_image",))}


def test_a_tick_with_several_requests_gives_each_a_distinct_run_key(instance):
    assert dg.materialize([pose_model], instance=instance).success
    context = dg.build_schedule_context(instance=instance, repository_def=DEFS.get_repository_def())
    result = nightly_batch.evaluate_tick(context)
    keys = [request.run_key for request in result.run_requests]
    assert len(keys) == 2 and len(set(keys)) == 2 and None not in keys
    assert "person_images:p1..p4:person_image+pose" in keys
