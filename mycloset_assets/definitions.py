"""The Dagster entry point (``workspace.yaml`` names ``defs``). Loading it loads no weights."""

import dagster as dg

from .defs.checkpoints import checkpoint_analysis

defs = dg.Definitions(assets=[checkpoint_analysis])
