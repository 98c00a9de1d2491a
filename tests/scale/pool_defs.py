"""A project-shaped graph for the run-queue test: per partition, a photo step, then two network steps in the
project's ``gpu`` pool (with the project's op tags) that each hold the pool for a second."""

import time

import dagster as dg

from mycloset_assets.defs.deployment import GPU_OP_TAGS, GPU_POOL

NIGHTS = dg.StaticPartitionsDefinition(["n1", "n2", "n3", "n4"])
HOLD_SECONDS = 1.0


@dg.asset(partitions_def=NIGHTS)
def photo() -> None:
    """The CPU part: no pool."""
    time.sleep(0.2)


@dg.asset(partitions_def=NIGHTS, deps=[photo], pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def parsing() -> None:
    time.sleep(HOLD_SECONDS)


@dg.asset(partitions_def=NIGHTS, deps=[parsing], pool=GPU_POOL, op_tags=GPU_OP_TAGS)
def tryon() -> None:
    time.sleep(HOLD_SECONDS)


nightly = dg.define_asset_job("nightly", selection=[photo, parsing, tryon], executor_def=dg.in_process_executor)
defs = dg.Definitions(assets=[photo, parsing, tryon], jobs=[nightly])
