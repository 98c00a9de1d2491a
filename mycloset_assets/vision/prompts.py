"""Prompts for Segment Anything derived from a coarse mask (and the pose), and the check of what SAM returns.

SAM refines a mask best from a box plus a few points: a box around the object, foreground points well inside
it and background points where the box covers something else. ``garment_prompt`` derives them from a garment
photo's mask, ``person_clothing_prompt`` from a person's clothing mask and OpenPose-18 keypoints.
``agree`` decides whether SAM's mask replaces the coarse one: only when the two overlap enough, so a prompt
that SAM read as another object never replaces a sound parsing mask.

Coordinates are photo pixels, x to the right and y down, a pixel's index being its coordinate (SAM's
convention: its prompt encoder adds the half pixel). ``input_shape`` and ``scale_prompt`` map them into the
frame the network sees, exactly as segment-anything's ``ResizeLongestSide`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .quality import mask_iou

SAM_INPUT_SIZE = 1024
"""The long side of SAM's (and MobileSAM's) encoder input."""

BOX_MARGIN = 0.05
"""Margin added on each side of a prompt box, as a fraction of the box's larger side."""

MIN_BACKGROUND_DEPTH = 3.0
"""A background region of a garment's box narrower than twice this many pixels gets no point (an outline's
jagged edge is no region)."""

NOSE, NECK, R_SHOULDER, L_SHOULDER = 0, 1, 2, 5
R_HIP, R_KNEE, L_HIP, L_KNEE = 8, 9, 11, 12
R_EYE, L_EYE, R_EAR, L_EAR = 14, 15, 16, 17
FACE = (NOSE, R_EYE, L_EYE, R_EAR, L_EAR)

CATEGORY_KEYPOINTS: dict[str, tuple[int, ...]] = {
    "upper": (NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP),
    "lower": (R_HIP, L_HIP, R_KNEE, L_KNEE),
    "full": (NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP, R_KNEE, L_KNEE),
}
"""The OpenPose-18 keypoints a garment category's box must cover."""

_TORSO = ((NECK, (R_HIP, L_HIP)), (R_SHOULDER, (R_HIP,)), (L_SHOULDER, (L_HIP,)))
_THIGHS = (((R_HIP, L_HIP), (R_KNEE, L_KNEE)), (R_HIP, (R_KNEE,)), (L_HIP, (L_KNEE,)))
CATEGORY_SEGMENTS: dict[str, tuple[tuple[int | tuple[int, ...], tuple[int, ...]], ...]] = {
    "upper": _TORSO,
    "lower": _THIGHS,
    "full": _TORSO + _THIGHS,
}
"""Per category, segments (from, to) whose midpoints lie on the garment; a tuple of keypoints is their mean."""


class EmptyMaskError(ValueError):
    """A prompt was asked for an empty mask: there is nothing for SAM to refine."""


@dataclass(frozen=True, eq=False)
class SamPrompt:
    """Points (N x 2 float64, x y photo pixels) with labels (N int64: 1 foreground, 0 background) and a box
    (4 float64: x0, y0, x1, y1 photo pixels, or None)."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(points) != len(labels):
            raise ValueError(f"a prompt needs one label per point, got {len(points)} points and {len(labels)} labels")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"point labels must be 1 (foreground) or 0 (background), got {sorted(set(labels))}")
        box = None
        if self.box is not None:
            box = np.asarray(self.box, dtype=np.float64).reshape(-1)
            if box.shape != (4,) or box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"the box must be x0, y0, x1, y1 with x0 <= x1 and y0 <= y1, got {box.tolist()}")
        if box is None and not len(points):
            raise ValueError("a prompt needs a box or at least one point")
        if not (np.isfinite(points).all() and (box is None or np.isfinite(box).all())):
            raise ValueError("prompt coordinates must be finite numbers")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "box", box)

    @property
    def foreground(self) -> np.ndarray:
        """The foreground points, K x 2."""
        return self.points[self.labels == 1]

    @property
    def background(self) -> np.ndarray:
        """The background points, K x 2."""
        return self.points[self.labels == 0]


def input_shape(height: int, width: int, long_side: int = SAM_INPUT_SIZE) -> tuple[int, int]:
    """(height, width) of a photo resized so its long side is ``long_side`` (``get_preprocess_shape``: the
    scaled sides rounded half up)."""
    if height < 1 or width < 1:
        raise ValueError(f"a photo needs a positive size, got {height} x {width}")
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def scale_coords(coords: np.ndarray, original_size: tuple[int, int], long_side: int = SAM_INPUT_SIZE) -> np.ndarray:
    """Photo x, y coordinates (... x 2) in the resized frame: x times new_w / w, y times new_h / h
    (``ResizeLongestSide.apply_coords``)."""
    height, width = original_size
    new_height, new_width = input_shape(height, width, long_side)
    scaled = np.array(coords, dtype=np.float64)
    scaled[..., 0] *= new_width / width
    scaled[..., 1] *= new_height / height
    return scaled


def scale_prompt(prompt: SamPrompt, original_size: tuple[int, int], long_side: int = SAM_INPUT_SIZE) -> SamPrompt:
    """The prompt in the resized frame the encoder sees (points and both box corners scaled alike)."""
    box = None if prompt.box is None else scale_coords(prompt.box.reshape(2, 2), original_size, long_side).ravel()
    return SamPrompt(scale_coords(prompt.points, original_size, long_side), prompt.labels.copy(), box)


def _check_mask(mask: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"the {what} must be an H x W mask, got shape {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise EmptyMaskError(
            f"the {what} is empty, so there is nothing for SAM to refine; check that the segmentation found the "
            "garment (or draw a box prompt by hand) before refining"
        )
    return mask


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every mask pixel to the nearest pixel outside it (the photo's edge counts as
    outside, so a mask cut by the frame is not 'deep' at the frame)."""
    padded = np.pad(mask, 1).astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def _deepest(distance: np.ndarray) -> np.ndarray:
    """The (x, y) of the deepest pixel; on a plateau (a rectangle's axis) the one nearest the plateau's centre."""
    ys, xs = np.nonzero(distance >= float(distance.max()) - 0.5)
    plateau = np.stack([xs, ys], axis=1).astype(np.float64)
    return plateau[int(np.argmin(np.linalg.norm(plateau - plateau.mean(axis=0), axis=1)))]


def _spread_points(distance: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` (x, y) points: the deepest first, then each the pixel farthest from those chosen among the
    pixels at least half as deep; a point closer to a chosen one than the maximum depth adds nothing."""
    deepest = float(distance.max())
    ys, xs = np.nonzero(distance >= deepest / 2)
    candidates = np.stack([xs, ys], axis=1).astype(np.float64)
    chosen = [_deepest(distance)]
    gap = np.linalg.norm(candidates - chosen[0], axis=1)
    while len(chosen) < count:
        best = int(np.argmax(gap))
        if gap[best] < max(deepest, 1.0):
            break
        chosen.append(candidates[best])
        gap = np.minimum(gap, np.linalg.norm(candidates - candidates[best], axis=1))
    return np.stack(chosen)


def _separate_maxima(distance: np.ndarray, count: int, min_depth: float) -> np.ndarray:
    """Up to ``count`` (x, y) points, deepest first, each at least as deep as ``min_depth`` and outside the disks
    (radius: twice their depth) of those chosen before: the centres of the largest separate empty regions."""
    remaining = distance.copy()
    rows, cols = np.indices(distance.shape)
    chosen: list[np.ndarray] = []
    while len(chosen) < count and float(remaining.max()) >= min_depth:
        point = _deepest(remaining)
        chosen.append(point)
        radius = float(distance[int(point[1]), int(point[0])])
        remaining[(cols - point[0]) ** 2 + (rows - point[1]) ** 2 <= (2 * radius) ** 2] = 0.0
    return np.array(chosen, dtype=np.float64).reshape(-1, 2)


def _box(points: np.ndarray, height: int, width: int, margin: float) -> np.ndarray:
    """The box around (x, y) ``points``, widened by ``margin`` of its larger side and clipped to the photo."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = margin * float(max(high - low))
    low, high = low - pad, high + pad
    return np.array(
        [max(low[0], 0.0), max(low[1], 0.0), min(high[0], width - 1.0), min(high[1], height - 1.0)], dtype=np.float64
    )


def _mask_corners(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], dtype=np.float64)


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = int(round(point[0])), int(round(point[1]))
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and bool(mask[y, x])


def _in_box(box: np.ndarray, point: np.ndarray) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _prompt(foreground: Sequence[np.ndarray], background: Sequence[np.ndarray], box: np.ndarray) -> SamPrompt:
    points = [*foreground, *background]
    labels = [1] * len(foreground) + [0] * len(background)
    return SamPrompt(np.array(points, dtype=np.float64).reshape(-1, 2), np.array(labels, dtype=np.int64), box)


def garment_prompt(
    mask: np.ndarray, *, foreground: int = 3, background: int = 2, margin: float = BOX_MARGIN
) -> SamPrompt:
    """The prompt for a garment photo's mask.

    Box: around the mask, ``margin`` wider, clipped to the photo. Foreground: the pixel deepest inside the mask
    (distance-transform maximum), then up to ``foreground - 1`` more deep pixels spread apart (a T-shirt's torso
    and, when deep enough, its sleeves). Background: up to ``background`` centres of the largest separate regions
    inside the mask's own bounding box but outside the mask (the gaps under a T-shirt's sleeves), largest
    first; none for a mask that (nearly) fills its box. Raises ``EmptyMaskError`` on an empty mask.
    """
    mask = _check_mask(mask, "garment mask")
    if foreground < 1 or background < 0:
        raise ValueError(f"foreground must be at least 1 and background at least 0, got {foreground} and {background}")
    height, width = mask.shape
    box = _box(_mask_corners(mask), height, width, margin)
    inner = _spread_points(_distance_inside(mask), foreground)
    (x0, y0), (x1, y1) = _mask_corners(mask).astype(int)
    outside = np.zeros_like(mask)
    outside[y0 : y1 + 1, x0 : x1 + 1] = ~mask[y0 : y1 + 1, x0 : x1 + 1]
    outer = _separate_maxima(_distance_inside(outside), background, MIN_BACKGROUND_DEPTH)
    return _prompt(list(inner), list(outer), box)


def _valid_keypoints(keypoints: np.ndarray, min_score: float, height: int, width: int) -> np.ndarray:
    """A boolean per keypoint: detected (score at least ``min_score``) and inside the photo."""
    x, y, score = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    finite = np.isfinite(keypoints).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (score >= min_score) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def _joint(keypoints: np.ndarray, valid: np.ndarray, ids: int | tuple[int, ...]) -> np.ndarray | None:
    """A keypoint, or the mean of several (all of them detected), as (x, y); None when one is missing."""
    ids = (ids,) if isinstance(ids, int) else ids
    if not all(valid[i] for i in ids):
        return None
    return keypoints[list(ids), :2].mean(axis=0)


def person_clothing_prompt(
    clothing_mask: np.ndarray,
    keypoints: np.ndarray,
    category: str = "upper",
    *,
    min_score: float = 0.1,
    margin: float = BOX_MARGIN,
) -> SamPrompt:
    """The prompt for a person's garment of ``category`` ("upper", "lower", "full") from its parsing mask and
    OpenPose-18 ``keypoints`` (18 x 3: x, y, score; score 0 when missing).

    Box: around the mask and the category's detected keypoints (shoulders, neck and hips for "upper"; hips and
    knees for "lower"; all of them for "full"), ``margin`` wider, clipped to the photo. Foreground: the
    midpoints of the category's body segments (neck to mid-hip and each shoulder to its hip; each hip to its
    knee and mid-hip to mid-knee) that fall inside the mask, plus the mask's deepest pixel. Background: the
    detected face keypoints (nose, eyes, ears) inside the box and outside the mask. Keypoints below
    ``min_score`` or outside the photo are ignored; with none, the prompt comes from the mask alone.
    """
    mask = _check_mask(clothing_mask, "clothing mask")
    if category not in CATEGORY_KEYPOINTS:
        raise ValueError(f"unknown garment category {category!r}; use one of {', '.join(CATEGORY_KEYPOINTS)}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (18, 3):
        raise ValueError(f"keypoints must be OpenPose-18, 18 x 3 (x, y, score), got shape {keypoints.shape}")
    height, width = mask.shape
    valid = _valid_keypoints(keypoints, min_score, height, width)

    anchors = [keypoints[i, :2] for i in CATEGORY_KEYPOINTS[category] if valid[i]]
    box = _box(np.vstack([_mask_corners(mask), *anchors]), height, width, margin)

    foreground = []
    for start, ends in CATEGORY_SEGMENTS[category]:
        first, last = _joint(keypoints, valid, start), _joint(keypoints, valid, ends)
        if first is not None and last is not None and _inside(mask, (first + last) / 2):
            foreground.append((first + last) / 2)
    foreground.append(_deepest(_distance_inside(mask)))

    background = [
        keypoints[i, :2] for i in FACE if valid[i] and _in_box(box, keypoints[i]) and not _inside(mask, keypoints[i])
    ]
    return _prompt(foreground, background, box)


@dataclass(frozen=True, eq=False)
class Refinement:
    """SAM's mask checked against the mask it refines.

    ``reference``: the mask before (H x W bool); ``refined``: SAM's mask; ``iou``: their intersection over union;
    ``kept``: whether SAM's mask is used; ``reason``: why, in words; ``score``: SAM's predicted IoU of its mask.
    ``mask`` is the one to use: ``refined`` when kept, else ``reference``.
    """

    reference: np.ndarray
    refined: np.ndarray
    iou: float
    kept: bool
    reason: str
    score: float
    mask: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", self.refined if self.kept else self.reference)

    def summary(self) -> dict[str, Any]:
        """``{iou, kept, sam_score, reason}``, JSON-ready (what reports and metadata record)."""
        return {
            "iou": round(float(self.iou), 6),
            "kept": bool(self.kept),
            "sam_score": round(float(self.score), 6),
            "reason": self.reason,
        }


def agree(
    reference: np.ndarray,
    refined: np.ndarray,
    score: float,
    iou_range: tuple[float, float] = (0.5, 1.0),
    *,
    reference_name: str = "reference",
) -> Refinement:
    """Keep SAM's ``refined`` mask only when its IoU with ``reference`` lies in ``iou_range`` (bounds included).

    The lower bound rejects a mask SAM drew around something else (the whole person, the background). The
    default upper bound 1.0 accepts everything above it; a lower upper bound (say 0.98) is for a caller that
    wants SAM only when it changed something, since a near-identical mask only costs the refinement.
    ``reference_name`` names the reference in ``reason`` (e.g. "parsing").
    """
    low, high = (float(bound) for bound in iou_range)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"iou_range must be (low, high) with 0 <= low <= high <= 1, got {iou_range}")
    reference = np.asarray(reference, dtype=bool)
    refined = np.asarray(refined, dtype=bool)
    iou = mask_iou(refined, reference)
    name = f"the {reference_name} mask"
    if iou < low:
        kept, reason = False, f"IoU {iou:.3f} with {name} is below {low:g}: kept {name}"
    elif iou > high:
        reason = f"IoU {iou:.3f} with {name} is above {high:g}: SAM changed too little, kept {name}"
        kept = False
    else:
        kept, reason = True, f"IoU {iou:.3f} with {name} is within [{low:g}, {high:g}]: kept SAM's mask"
    return Refinement(reference, refined, iou, kept, reason, float(score))
