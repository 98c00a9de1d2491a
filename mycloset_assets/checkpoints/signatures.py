"""Known networks outside the try-on zoo (torchvision's ImageNet classifiers and segmentation nets).

They are built on the meta device, like the zoo's own networks, so that a renamed ResNet is named for
what it is. torchvision's AlexNet, VGG16 and DeepLabV3-ResNet101 are registry entries (LPIPS trunks, a
segmentation entry), so they are not signatures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import torch
from torchvision import models

from .keymap import KeyTable, table_from_module

REGISTRY_NETWORKS = frozenset({"alexnet", "vgg16", "deeplabv3_resnet101"})


@dataclass(frozen=True)
class Signature:
    """A recognisable network that is not part of the try-on zoo."""

    id: str
    description: str
    table: KeyTable


def _build(name: str, **kwargs: object) -> torch.nn.Module | None:
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        try:
            return models.get_model(name, weights=None, **kwargs)
        except (NotImplementedError, RuntimeError):
            return None


@cache
def signatures() -> tuple[Signature, ...]:
    """Every torchvision classifier and segmentation network that builds on the meta device (cached)."""
    found: list[Signature] = []
    groups: tuple[tuple[object, str, dict[str, object]], ...] = (
        (models, "ImageNet classifier", {}),
        (models.segmentation, "segmentation network (COCO with VOC labels)", {"weights_backbone": None}),
    )
    for module, kind, kwargs in groups:
        for name in models.list_models(module=module):
            if name in REGISTRY_NETWORKS:
                continue
            network = _build(name, **kwargs)
            if network is not None:
                found.append(Signature(f"torchvision:{name}", f"torchvision {name} {kind}", table_from_module(network)))
    return tuple(found)
