"""Stable Diffusion UNets and ControlNets in diffusers' own classes (the optional ``diffusion`` extra).

The registry's diffusion entries build their networks here: ``from_config`` is their builder, so
``load_model`` of an identified UNet or ControlNet file (a diffusers folder's safetensors, fp32 or fp16,
or a single-file CompVis/Stability checkpoint, whose names the entry's signature maps) returns diffusers'
``UNet2DConditionModel`` or ``ControlNetModel`` with every tensor matched. Nothing of diffusers is
re-implemented, and nothing here is imported when a file is only analysed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

CLASSES = ("UNet2DConditionModel", "ControlNetModel")
EXTRA = "pip install -e '.[diffusion]'"


class DiffusersMissingError(ImportError):
    """diffusers is needed to build a diffusion network and is not installed."""


def _diffusers() -> Any:
    try:
        return importlib.import_module("diffusers")
    except ImportError as exc:
        raise DiffusersMissingError(
            f"building a Stable Diffusion UNet or ControlNet needs diffusers ({EXTRA}); analysing the file does not"
        ) from exc


def from_config(class_name: str, config: Mapping[str, Any]) -> nn.Module:
    """diffusers' ``class_name`` built from a published ``config.json`` (on the current default device)."""
    if class_name not in CLASSES:
        raise ValueError(f"class_name must be one of {', '.join(CLASSES)}, not {class_name!r}")
    return getattr(_diffusers(), class_name).from_config(dict(config))
