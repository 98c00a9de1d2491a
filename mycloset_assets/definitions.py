"""The Dagster entry point (``workspace.yaml`` names ``defs``). Loading it loads no weights.

Environment: ``MYCLOSET_CHECKPOINTS`` (checkpoint folder, default ``zoo``; a local path), ``MYCLOSET_INBOX``
(photo inbox, default ``inbox``), ``MYCLOSET_STORAGE`` (where assets are stored, default
``$DAGSTER_HOME/storage``) and ``MYCLOSET_HOME`` (the model manager's store). The inbox and the storage may be
fsspec URLs (``s3://bucket/inbox`` with ``s3fs`` installed).
"""

import os

import dagster as dg

from .defs.automation import automation_sensor, nightly_pair_condition, nightly_photo_condition
from .defs.checkpoints import canonical_checkpoint, checkpoint_analysis, checkpoint_folder_sensor
from .defs.images import garment_image, person_image
from .defs.io_managers import OpenFormatIOManager
from .defs.models import MODEL_ASSETS
from .defs.partitions import InboxResource
from .defs.quality import quality_report
from .defs.refinement import clothing_mask, refined_garment_mask
from .defs.resources import ModelFactoryResource, ModelManagerResource
from .defs.restoration import restored_result
from .defs.sensors import garment_inbox_sensor, pairs_sensor, person_inbox_sensor
from .defs.tryon import TRYON_ASSETS


def automated(asset: dg.AssetsDefinition, condition: dg.AutomationCondition) -> dg.AssetsDefinition:
    """``asset`` with ``condition`` as its automation condition."""
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition))


PHOTO_ASSETS = [person_image, garment_image, *TRYON_ASSETS[:4], refined_garment_mask, clothing_mask]
PAIR_ASSETS = [*TRYON_ASSETS[4:], restored_result, quality_report]

defs = dg.Definitions(
    assets=[
        checkpoint_analysis,
        canonical_checkpoint,
        *MODEL_ASSETS.values(),
        *(automated(asset, nightly_photo_condition()) for asset in PHOTO_ASSETS),
        *(automated(asset, nightly_pair_condition()) for asset in PAIR_ASSETS),
    ],
    sensors=[checkpoint_folder_sensor, person_inbox_sensor, garment_inbox_sensor, pairs_sensor, automation_sensor],
    resources={
        "model_factory": ModelFactoryResource(checkpoint_folder=os.environ.get("MYCLOSET_CHECKPOINTS", "zoo")),
        "model_manager": ModelManagerResource(),
        "inbox": InboxResource(root=os.environ.get("MYCLOSET_INBOX", "inbox")),
        "io_manager": OpenFormatIOManager(base_dir=os.environ.get("MYCLOSET_STORAGE") or None),
    },
)
