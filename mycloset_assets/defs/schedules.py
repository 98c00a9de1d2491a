"""The nightly batch: materialise every per-image and per-pair partition that is missing or stale.

A partition of an asset is *missing* when it was never materialised, and *stale* when one of its parents was
materialised after it (a new model version, a re-run of an upstream step) or is itself being re-run by this
batch in the same partition. A parent's partition is the same key for the same partition set, the person or
the garment half of a ``pairs`` key for a photo asset, and the only one for an unpartitioned model asset.
Work whose parent in another partition set is still to be done (or was never materialised) waits for the next
night instead of failing now.

Runs are grouped: consecutive partitions needing the same assets become one ranged run when every one of
those assets runs a backfill as a single run (``BackfillPolicy.single_run()``), so that each model is loaded
once per batch; otherwise each partition gets its own run.

The schedule launches its runs through Dagster's implicit asset job (``__ASSET_JOB``, the job the UI uses to
materialise any selection): an asset job of its own may not span three partition sets.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import dagster as dg

from .partitions import garment_images, pairs, person_images, split_pair_key

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph, BaseAssetNode

PARTITION_SETS = (person_images.name, garment_images.name, pairs.name)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
_HALF = {person_images.name: 0, garment_images.name: 1}


@dataclass
class BatchPlan:
    """What a batch does: per partition set, the assets to materialise for each partition key (in ``order``,
    the set's order); and why other work waits."""

    order: dict[str, list[str]] = field(default_factory=dict)
    todo: dict[str, dict[str, list[dg.AssetKey]]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)


class _Latest:
    """Storage ids of the latest materialisations, per asset and partition, read once per evaluation."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._partitioned: dict[dg.AssetKey, Mapping[str, int]] = {}
        self._unpartitioned: dict[dg.AssetKey, int | None] = {}

    def get(self, key: dg.AssetKey, partition: str | None) -> int | None:
        if partition is None:
            if key not in self._unpartitioned:
                records = self._instance.fetch_materializations(key, limit=1).records
                self._unpartitioned[key] = records[0].storage_id if records else None
            return self._unpartitioned[key]
        if key not in self._partitioned:
            self._partitioned[key] = self._instance.get_latest_storage_id_by_partition(
                key, dg.DagsterEventType.ASSET_MATERIALIZATION
            )
        return self._partitioned[key].get(partition)


def _partition_set(node: "BaseAssetNode") -> str | None:
    partitions_def = node.partitions_def
    return partitions_def.name if isinstance(partitions_def, dg.DynamicPartitionsDefinition) else None


def _parent_partition(child_set: str, key: str, parent_set: str | None) -> tuple[bool, str | None]:
    """``(mapped, parent partition)``: the parent partition a child partition reads, if the sets relate."""
    if parent_set is None:
        return True, None
    if parent_set == child_set:
        return True, key
    if child_set == pairs.name and parent_set in _HALF:
        return True, split_pair_key(key)[_HALF[parent_set]]
    return False, None


def plan_batch(
    instance: dg.DagsterInstance,
    asset_graph: "BaseAssetGraph",
    selected: set[dg.AssetKey],
    partition_sets: Sequence[str] = PARTITION_SETS,
) -> BatchPlan:
    """Which partitions of the ``selected`` assets (partitioned by ``partition_sets``) are missing or stale."""
    latest = _Latest(instance)
    keys_by_set = {name: list(instance.get_dynamic_partitions(name)) for name in partition_sets}
    pending: dict[dg.AssetKey, set[str]] = {}
    blocked: dict[dg.AssetKey, set[str]] = {}
    plan = BatchPlan(order=keys_by_set, todo={name: {} for name in partition_sets})
    for asset_key in asset_graph.toposorted_asset_keys:
        node = asset_graph.get(asset_key)
        set_name = _partition_set(node)
        if asset_key not in selected or set_name not in keys_by_set or not node.is_materializable:
            continue
        pending[asset_key], blocked[asset_key] = set(), set()
        for key in keys_by_set[set_name]:
            verdict = _judge(asset_graph, latest, pending, blocked, asset_key, set_name, key)
            if verdict is None:
                continue
            if verdict[0] == "wait":
                blocked[asset_key].add(key)
                plan.waiting.append(f"{asset_key.to_user_string()}[{key}] {verdict[1]}")
                continue
            pending[asset_key].add(key)
            plan.todo[set_name].setdefault(key, []).append(asset_key)
    for set_name, todo in plan.todo.items():
        plan.todo[set_name] = {key: todo[key] for key in keys_by_set[set_name] if key in todo}
    return plan


def _judge(
    asset_graph: "BaseAssetGraph",
    latest: _Latest,
    pending: Mapping[dg.AssetKey, set[str]],
    blocked: Mapping[dg.AssetKey, set[str]],
    asset_key: dg.AssetKey,
    set_name: str,
    key: str,
) -> tuple[Literal["todo", "wait"], str] | None:
    """``None`` when the partition is fresh, ``("todo", why)`` when it is missing or stale, and
    ``("wait", why)`` when a parent must be done first."""
    own = latest.get(asset_key, key)
    verdict: tuple[Literal["todo", "wait"], str] | None = None if own is not None else ("todo", "missing")
    for parent_key in sorted(asset_graph.get(asset_key).parent_keys):
        parent = asset_graph.get(parent_key)
        parent_set = _partition_set(parent)
        mapped, parent_partition = _parent_partition(set_name, key, parent_set)
        if not mapped or not parent.is_materializable:
            continue
        shown = f"{parent_key.to_user_string()}" + (f"[{parent_partition}]" if parent_partition else "")
        if parent_partition in blocked.get(parent_key, ()):
            return "wait", f"waits for {shown}"
        if parent_partition in pending.get(parent_key, ()):
            if parent_set != set_name:
                return "wait", f"waits for {shown}, which this batch materialises first"
            verdict = verdict or ("todo", f"stale: {shown} is re-materialised")
            continue
        parent_latest = latest.get(parent_key, parent_partition)
        if parent_latest is None:
            return "wait", f"waits for {shown}, never materialised"
        if own is not None and parent_latest > own:
            verdict = verdict or ("todo", f"stale: {shown} is newer")
    return verdict


def _single_run(asset_graph: "BaseAssetGraph", asset_keys: Sequence[dg.AssetKey]) -> bool:
    for key in asset_keys:
        policy = asset_graph.get(key).backfill_policy
        if policy is None or policy.max_partitions_per_run is not None:
            return False
    return True


def batch_run_requests(plan: BatchPlan, asset_graph: "BaseAssetGraph") -> list[dg.RunRequest]:
    """Run requests for a plan: ranged runs over consecutive partitions needing the same single-run assets."""
    requests = []
    for set_name, todo in plan.todo.items():
        position = {key: index for index, key in enumerate(plan.order[set_name])}
        blocks: list[list[str]] = []
        for key, assets in todo.items():
            previous = blocks[-1][-1] if blocks else None
            if (
                previous is not None
                and position[key] == position[previous] + 1
                and todo[previous] == assets
                and _single_run(asset_graph, assets)
            ):
                blocks[-1].append(key)
            else:
                blocks.append([key])
        for block in blocks:
            first, last = block[0], block[-1]
            assets = "+".join(sorted(key.to_user_string() for key in todo[first]))
            run_key = f"{set_name}:{first}..{last}:{assets}"
            if first == last:
                requests.append(dg.RunRequest(run_key=run_key, partition_key=first, asset_selection=todo[first]))
            else:
                tags = {RANGE_START_TAG: first, RANGE_END_TAG: last}
                requests.append(dg.RunRequest(run_key=run_key, tags=tags, asset_selection=todo[first]))
    return requests


def build_nightly_schedule(
    selection: dg.AssetSelection | None = None,
    *,
    partition_sets: Sequence[str] = PARTITION_SETS,
    cron_schedule: str = "0 2 * * *",
    execution_timezone: str = "UTC",
    name: str = "nightly_batch",
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule materialising the missing and stale partitions of ``selection`` (default: every asset
    partitioned by ``partition_sets``) each night."""
    target = selection or dg.AssetSelection.all()

    @dg.schedule(
        job_name=IMPLICIT_ASSET_JOB,
        name=name,
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Materialises every missing or stale photo and pair partition, batched per partition set.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        asset_graph = context.repository_def.asset_graph
        selected = set(target.resolve(asset_graph))
        plan = plan_batch(context.instance, asset_graph, selected, partition_sets)
        for line in plan.waiting:
            context.log.info(line)
        requests = batch_run_requests(plan, asset_graph)
        if not requests:
            return dg.SkipReason(f"every partition is up to date; {len(plan.waiting)} waiting on upstream work")
        return requests

    return _schedule


nightly_batch = build_nightly_schedule()
