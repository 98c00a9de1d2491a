"""Garment-photo masks: the 4-class cloth segmentation (levindabhi/cloth-segmentation) and U2Net saliency.

Cloth segmentation labels every pixel background (0), upper-body (1), lower-body (2) or full-body (3)
garment (the ClothSeg-4 label set). Saliency is U2Net's fused map ``d0`` min-max normalised as the
reference's ``normPRED`` (``u2net_test.py``), thresholded into a mask. Either mask can be reduced to its
largest connected component, which drops specks a try-on must not treat as garment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .parsing import get_label_set, label_mask

GARMENT_KINDS: tuple[str, ...] = ("upper", "lower", "full")
"""The garment classes of ClothSeg-4, by the part they are in ``vision.parsing.PARTS``."""


def cloth_seg_ids(kinds: Iterable[str] = GARMENT_KINDS) -> tuple[int, ...]:
    """ClothSeg-4 label ids of the garment ``kinds`` (upper -> 1, lower -> 2, full -> 3)."""
    label_set = get_label_set("ClothSeg-4")
    ids: list[int] = []
    for kind in kinds:
        if kind not in GARMENT_KINDS:
            raise ValueError(f"unknown garment kind {kind!r}; cloth segmentation knows {', '.join(GARMENT_KINDS)}")
        ids.extend(label_set.ids(kind))
    return tuple(ids)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean H x W mask (all false when the mask is empty)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return components == largest


def cloth_seg_mask(
    labels: np.ndarray, kinds: Iterable[str] = GARMENT_KINDS, *, largest_only: bool = False
) -> np.ndarray:
    """Boolean H x W mask of the ClothSeg-4 ``labels`` pixels of the garment ``kinds`` (all garments by default)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be an H x W label map, got shape {labels.shape}")
    mask = label_mask(labels, cloth_seg_ids(kinds))
    return largest_component(mask) if largest_only else mask


def dominant_garment(labels: np.ndarray) -> str | None:
    """The garment kind with the most pixels in a ClothSeg-4 label map (first in ``GARMENT_KINDS`` on a tie),
    or None when no pixel is a garment."""
    counts = [int(cloth_seg_mask(labels, [kind]).sum()) for kind in GARMENT_KINDS]
    best = int(np.argmax(counts))
    return GARMENT_KINDS[best] if counts[best] else None


def norm_pred(prediction: torch.Tensor) -> torch.Tensor:
    """``(d - min) / (max - min)`` over the whole tensor, as the reference's ``normPRED``.

    A constant map (where the reference divides by zero and returns NaN) gives zeros: nothing is salient.
    """
    low, high = prediction.min(), prediction.max()
    if high <= low:
        return torch.zeros_like(prediction)
    return (prediction - low) / (high - low)


def saliency_mask(saliency: np.ndarray, threshold: float = 0.5, *, largest_only: bool = False) -> np.ndarray:
    """Boolean H x W mask of the pixels whose normalised saliency is strictly above ``threshold``."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    saliency = np.asarray(saliency)
    if saliency.ndim != 2:
        raise ValueError(f"saliency must be an H x W map, got shape {saliency.shape}")
    mask = saliency > threshold
    return largest_component(mask) if largest_only else mask


@dataclass(frozen=True, eq=False)
class SaliencyResult:
    """U2Net saliency of a garment photo.

    ``saliency``: H x W float32 in [0, 1] at the photo's size (``normPRED`` of the fused map ``d0``, resized
    back bilinearly); ``threshold``: the level above which ``mask()`` calls a pixel garment.
    """

    saliency: np.ndarray
    threshold: float = 0.5

    def mask(self, *, largest_only: bool = False) -> np.ndarray:
        """Boolean H x W garment mask (``saliency > threshold``), optionally its largest component only."""
        return saliency_mask(self.saliency, self.threshold, largest_only=largest_only)
