"""The Dagster entry point (``workspace.yaml`` names ``defs``). Loading it loads no weights."""

import os

import dagster as dg

from .defs.checkpoints import canonical_checkpoint, checkpoint_analysis, checkpoint_folder_sensor
from .defs.io_managers import OpenFormatIOManager
from .defs.models import MODEL_ASSETS
from .defs.resources import ModelFactoryResource, ModelManagerResource

defs = dg.Definitions(
    assets=[checkpoint_analysis, canonical_checkpoint, *MODEL_ASSETS.values()],
    sensors=[checkpoint_folder_sensor],
    resources={
        "model_factory": ModelFactoryResource(checkpoint_folder=os.environ.get("MYCLOSET_CHECKPOINTS", "zoo")),
        "model_manager": ModelManagerResource(),
        "io_manager": OpenFormatIOManager(),
    },
)
