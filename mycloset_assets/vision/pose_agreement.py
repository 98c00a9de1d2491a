"""How well two pose estimators agree on one person: PCK (percentage of correct keypoints) of the keypoints both
found.

A keypoint both estimators report (score > 0 in each) is *shared*; it *agrees* when the two positions lie within
``alpha`` times the longer side of the box around every shared keypoint of both estimators (PCK@alpha of the
bounding box, the scale-free form of PCK used when no torso is visible, e.g. a portrait cut at the chest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHA = 0.1


@dataclass(frozen=True)
class Agreement:
    """``pck``: share of the shared keypoints that agree (None when none is shared); ``shared`` and ``agreeing``:
    how many keypoints; ``tolerance``: the distance in pixels under which two positions agree."""

    pck: float | None
    shared: int
    agreeing: int
    tolerance: float


def keypoint_agreement(first: np.ndarray, second: np.ndarray, alpha: float = DEFAULT_ALPHA) -> Agreement:
    """PCK@``alpha`` of the bounding box between two K x 3 keypoint arrays (x, y, score; the same order, e.g.
    OpenPose-18; missing keypoints have score <= 0)."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"keypoints must be two K x 3 arrays of one order, got {a.shape} and {b.shape}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    shared = (a[:, 2] > 0) & (b[:, 2] > 0)
    count = int(shared.sum())
    if not count:
        return Agreement(None, 0, 0, 0.0)
    points = np.concatenate([a[shared, :2], b[shared, :2]])
    tolerance = alpha * float(np.max(points.max(axis=0) - points.min(axis=0)))
    distances = np.hypot(*(a[shared, :2] - b[shared, :2]).T)
    agreeing = int((distances <= tolerance).sum())
    return Agreement(agreeing / count, count, agreeing, tolerance)
