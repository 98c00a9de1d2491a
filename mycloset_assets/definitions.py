"""The Dagster entry point (``workspace.yaml`` names ``defs``). Loading it loads no weights.

Environment: ``MYCLOSET_CHECKPOINTS`` (checkpoint folder, default ``zoo``), ``MYCLOSET_INBOX`` (photo inbox,
default ``inbox``), ``MYCLOSET_STORAGE`` (where assets are stored, default ``$DAGSTER_HOME/storage``) and
``MYCLOSET_HOME`` (the model manager's store).
"""

import os

import dagster as dg

from .defs.checkpoints import canonical_checkpoint, checkpoint_analysis, checkpoint_folder_sensor
from .defs.images import garment_image, person_image
from .defs.io_managers import OpenFormatIOManager
from .defs.models import MODEL_ASSETS
from .defs.partitions import InboxResource
from .defs.quality import quality_report
from .defs.refinement import clothing_mask, refined_garment_mask
from .defs.resources import ModelFactoryResource, ModelManagerResource
from .defs.restoration import restored_result
from .defs.schedules import nightly_batch
from .defs.sensors import garment_inbox_sensor, pairs_sensor, person_inbox_sensor
from .defs.tryon import TRYON_ASSETS

defs = dg.Definitions(
    assets=[
        checkpoint_analysis,
        canonical_checkpoint,
        *MODEL_ASSETS.values(),
        person_image,
        garment_image,
        *TRYON_ASSETS,
        refined_garment_mask,
        clothing_mask,
        restored_result,
        quality_report,
    ],
    sensors=[checkpoint_folder_sensor, person_inbox_sensor, garment_inbox_sensor, pairs_sensor],
    schedules=[nightly_batch],
    resources={
        "model_factory": ModelFactoryResource(checkpoint_folder=os.environ.get("MYCLOSET_CHECKPOINTS", "zoo")),
        "model_manager": ModelManagerResource(),
        "inbox": InboxResource(root=os.environ.get("MYCLOSET_INBOX", "inbox")),
        "io_manager": OpenFormatIOManager(base_dir=os.environ.get("MYCLOSET_STORAGE") or None),
    },
)
