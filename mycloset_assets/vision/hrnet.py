"""Top-down pose post- and pre-processing for HRNet: person crops, heatmap decoding, flip test, scale fusion.

Reference: leoxiaobin/deep-high-resolution-net.pytorch@6f69e46 — ``lib/dataset/coco.py`` ``_xywh2cs`` (box ->
center and scale), ``lib/utils/transforms.py`` (``get_affine_transform``, ``crop``, ``transform_preds``,
``flip_back``), ``lib/core/inference.py`` (``get_max_preds``, ``get_final_preds``) and ``lib/core/function.py``
``validate`` (flip test with the one-pixel shift). The arithmetic, including where it is float32 and where
float64, is the reference's, so decoded coordinates are bit-equal to ``get_final_preds``.

Conventions: a person crop is given by ``center`` (x, y) and ``scale`` (width, height) / 200 in image pixels.
Only ``scale[0]`` enters the affine transforms (as in the reference): the crop is ``scale[0] * 200`` pixels
wide and has the network input's aspect ratio. Heatmap coordinate ``u`` maps to image coordinate
``center + (u - size / 2) * scale[0] * 200 / heatmap_width`` (x and y alike).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PIXEL_STD = 200.0
"""Pixels per unit of ``scale`` (the reference's ``pixel_std``)."""

BOX_PADDING = 1.25
"""Enlargement of the aspect-corrected person box (the reference's ``scale * 1.25``)."""

DEFAULT_SCORE_THRESHOLD = 0.2
"""Minimum heatmap maximum of a valid keypoint (the reference's ``TEST.IN_VIS_THRE``)."""

DEFAULT_MAX_LIMB_RATIO = 3.0
"""Largest plausible length ratio of a limb segment to its mirror image (left vs right)."""

COCO17_SYMMETRIC_LIMBS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((5, 7), (6, 8)),  # upper arms: shoulder -> elbow
    ((11, 13), (12, 14)),  # thighs: hip -> knee
    ((7, 9), (8, 10)),  # forearms: elbow -> wrist
    ((13, 15), (14, 16)),  # shins: knee -> ankle
)
"""Left/right limb segments in COCO-17 indices, (proximal, distal) each; proximal segments first."""

RejectionRule = Literal["confidence", "outside_image", "limb_ratio"]
"""The validation rules of ``validate_keypoints``."""


def box_to_center_scale(
    box: Sequence[float], input_size: tuple[int, int], padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Person box ``(x, y, w, h)`` -> ``(center (2,), scale (2,))`` float32, as the reference's ``_xywh2cs``.

    ``input_size`` is the network input ``(width, height)``. The box is grown to the input's aspect ratio
    around its center, divided by 200 and enlarged by ``padding`` (the reference pads every box; its
    ``center[0] != -1`` sentinel for "no box" is not reproduced).
    """
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"person box (x, y, w, h) = {tuple(box)} must have a positive width and height")
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    aspect_ratio = input_size[0] * 1.0 / input_size[1]
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], dtype=np.float32)
    return center, scale * np.float32(padding)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` plus ``a - b`` turned by 90 degrees (float32), fixing an affine map from two point pairs."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def affine_matrix(
    center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int], inverse: bool = False
) -> np.ndarray:
    """The 2 x 3 float64 affine map image -> crop of ``output_size`` ``(width, height)`` (crop -> image if
    ``inverse``), as the reference's ``get_affine_transform(center, scale, 0, output_size, inv=inverse)``.

    Computed the reference's way (three float32 point pairs solved by ``cv2.getAffineTransform``) so that
    decoded coordinates are bit-equal to the reference's.
    """
    center = np.asarray(center)
    scale_pixels = np.asarray(scale) * PIXEL_STD
    half_width = scale_pixels[0] * -0.5
    dst_w, dst_h = output_size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + np.array([0.0, half_width], dtype=np.float64)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0, dst_w * -0.5], dtype=np.float32)
    src[2, :] = _third_point(src[0], src[1])
    dst[2, :] = _third_point(dst[0], dst[1])
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def crop_person(image: np.ndarray, center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """The person crop of ``image`` at ``output_size`` ``(width, height)``: bilinear ``cv2.warpAffine`` with
    the forward ``affine_matrix``, zeros outside the image (the reference's test-time input)."""
    matrix = affine_matrix(center, scale, output_size)
    return cv2.warpAffine(image, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def heatmap_maxima(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of each N x K x h x w heatmap -> ``(coords N x K x 2 float32 (x, y), maxvals N x K x 1)``.

    As the reference's ``get_max_preds``: the first maximum in row-major order wins ties; maps whose maximum
    is not positive get coordinates (0, 0); ``maxvals`` keeps the heatmaps' dtype.
    """
    n, k, _, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    index = np.argmax(flat, axis=2).reshape(n, k, 1)
    maxvals = np.amax(flat, axis=2).reshape(n, k, 1)
    coords = np.tile(index, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = coords[:, :, 0] % width
    coords[:, :, 1] = np.floor(coords[:, :, 1] / width)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return coords, maxvals


def refine_quarter_pixel(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Shift each maximum a quarter pixel toward its higher neighbour along x and along y (float32), only
    where ``1 < px < w - 1`` and ``1 < py < h - 1`` (the reference's ``TEST.POST_PROCESS``)."""
    _, _, height, width = heatmaps.shape
    refined = coords.copy()
    px = np.floor(coords[:, :, 0] + 0.5).astype(np.int64)
    py = np.floor(coords[:, :, 1] + 0.5).astype(np.int64)
    inner = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)
    n_idx, k_idx = np.nonzero(inner)
    if n_idx.size == 0:
        return refined
    x, y = px[inner], py[inner]
    maps = heatmaps[n_idx, k_idx]
    rows = np.arange(n_idx.size)
    diff = np.stack([maps[rows, y, x + 1] - maps[rows, y, x - 1], maps[rows, y + 1, x] - maps[rows, y - 1, x]], axis=1)
    refined[n_idx, k_idx] += np.sign(diff) * 0.25
    return refined


def heatmap_to_image(
    coords: np.ndarray, center: np.ndarray, scale: np.ndarray, heatmap_size: tuple[int, int]
) -> np.ndarray:
    """Heatmap coordinates K x 2 of one person -> image coordinates K x 2 (float64), with the inverse
    ``affine_matrix`` for ``heatmap_size`` ``(width, height)`` (the reference's ``transform_preds``)."""
    matrix = affine_matrix(center, scale, heatmap_size, inverse=True)
    x = coords[:, 0].astype(np.float64)
    y = coords[:, 1].astype(np.float64)
    return np.stack(
        [matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2], matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]],
        axis=1,
    )


def decode_heatmaps(
    heatmaps: np.ndarray | torch.Tensor,
    center: np.ndarray | Sequence[Sequence[float]],
    scale: np.ndarray | Sequence[Sequence[float]],
    refine: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps N x K x h x w of person crops -> ``(coords N x K x 2, maxvals N x K x 1)`` in image pixels.

    Equal to the reference's ``get_final_preds``: argmax (``heatmap_maxima``), the quarter-pixel shift when
    ``refine`` (``TEST.POST_PROCESS``), then the inverse crop affine with ``s = scale[:, 0] * 200 / w``.
    ``center`` and ``scale`` are N x 2 (x, y) and (width, height) / 200. ``coords`` is float32; ``maxvals``
    keeps the heatmaps' dtype.
    """
    maps = _as_numpy(heatmaps)
    centers = np.asarray(center)
    scales = np.asarray(scale)
    if maps.ndim != 4:
        raise ValueError(f"heatmaps must be N x K x h x w, got shape {maps.shape}")
    n = maps.shape[0]
    if centers.shape != (n, 2) or scales.shape != (n, 2):
        raise ValueError(
            f"center and scale must be N x 2 with N = {n} heatmap sets, got {centers.shape} and {scales.shape}"
        )
    if n == 0:
        return np.zeros((0, maps.shape[1], 2), dtype=np.float32), np.zeros((0, maps.shape[1], 1), dtype=maps.dtype)
    coords, maxvals = heatmap_maxima(maps)
    if refine:
        coords = refine_quarter_pixel(maps, coords)
    heatmap_size = (maps.shape[3], maps.shape[2])
    preds = coords.copy()
    for i in range(n):
        preds[i] = heatmap_to_image(coords[i], centers[i], scales[i], heatmap_size)
    return preds, maxvals


def flip_back(flipped: np.ndarray, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Heatmaps N x K x h x w of horizontally flipped crops -> maps in the unflipped frame: mirror each map
    left-right and swap the channels of every (left, right) pair (the reference's ``flip_back``)."""
    if flipped.ndim != 4:
        raise ValueError(f"flipped heatmaps must be N x K x h x w, got shape {flipped.shape}")
    mirrored = flipped[:, :, :, ::-1].copy()
    order = np.arange(mirrored.shape[1])
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    return mirrored[:, order]


def shift_right_one_pixel(heatmaps: np.ndarray) -> np.ndarray:
    """Column ``j`` takes column ``j - 1`` and column 0 is kept: the reference's ``SHIFT_HEATMAP`` alignment of
    flipped-back maps (mirroring moves features by one pixel at stride 4)."""
    shifted = heatmaps.copy()
    shifted[..., 1:] = heatmaps[..., :-1]
    return shifted


def fuse_flip(
    heatmaps: np.ndarray, flipped: np.ndarray, flip_pairs: Sequence[Sequence[int]], shift: bool = True
) -> np.ndarray:
    """Flip test: ``(heatmaps + flip_back(flipped)) * 0.5``, the flipped-back maps shifted one pixel to the
    right first when ``shift``. ``flipped`` are the network's maps of the mirrored crops."""
    back = flip_back(flipped, flip_pairs)
    if shift:
        back = shift_right_one_pixel(back)
    if back.shape != heatmaps.shape:
        raise ValueError(f"flipped heatmaps {flipped.shape} do not match heatmaps {heatmaps.shape}")
    return (heatmaps + back) * 0.5


def fuse_scales(
    heatmaps: Sequence[np.ndarray], factors: Sequence[float], output_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Average the heatmaps of crops of one person at several scales in the frame of the factor-1 crop.

    ``heatmaps[k]`` (N x K x h_k x w_k) comes from the crop with the same center and scale
    ``scale * factors[k]`` (any network input size). Under the decoder's convention a point at heatmap
    coordinate ``(u, v)`` of the output frame (size ``(w, h)`` = ``output_size``, default the first map's size)
    lies at ``(w_k / 2 + (u - w / 2) r_k, h_k / 2 + (v - h / 2) r_k)`` in map ``k``, ``r_k = w_k / (w f_k)``.
    Each map is sampled there bilinearly (zero outside the map, so a scale whose crop misses a point adds no
    evidence there) and the samples are averaged. Decode the result with the factor-1 center and scale.
    """
    if len(heatmaps) == 0 or len(heatmaps) != len(factors):
        raise ValueError(f"need one factor per heatmap set, got {len(heatmaps)} sets and {len(factors)} factors")
    if any(f <= 0 for f in factors):
        raise ValueError(f"scale factors must be positive, got {list(factors)}")
    first = heatmaps[0]
    out_w, out_h = output_size if output_size is not None else (first.shape[3], first.shape[2])
    total = torch.zeros((first.shape[0], first.shape[1], out_h, out_w), dtype=torch.float32)
    u = torch.arange(out_w, dtype=torch.float32) - out_w / 2
    v = torch.arange(out_h, dtype=torch.float32) - out_h / 2
    for maps, factor in zip(heatmaps, factors, strict=True):
        if maps.ndim != 4 or maps.shape[:2] != first.shape[:2]:
            raise ValueError(f"heatmap sets must all be N x K x h x w with N x K = {first.shape[:2]}, got {maps.shape}")
        height, width = maps.shape[2:]
        source = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
        if factor == 1 and (width, height) == (out_w, out_h):
            total += source
            continue
        if min(width, height) < 2:
            raise ValueError(f"heatmaps to resample must be at least 2 x 2, got {height} x {width}")
        ratio = width / (out_w * factor)
        x = width / 2 + u * ratio
        y = height / 2 + v * ratio
        grid_x = (2 * x / (width - 1) - 1).expand(out_h, out_w)
        grid_y = (2 * y / (height - 1) - 1)[:, None].expand(out_h, out_w)
        grid = torch.stack([grid_x, grid_y], dim=-1).expand(maps.shape[0], out_h, out_w, 2)
        total += F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (total / len(heatmaps)).numpy()


@dataclass(frozen=True)
class Rejection:
    """Why one keypoint was marked invalid: the rule it broke, the measured value and the rule's limit."""

    keypoint: int
    name: str
    rule: RejectionRule
    value: float
    limit: float
    message: str


@dataclass
class KeypointValidation:
    """``valid`` (K,) bool: the keypoint passed every rule; ``rejections``: one entry per broken rule."""

    valid: np.ndarray
    rejections: list[Rejection] = field(default_factory=list)


def _outside_distance(x: float, y: float, image_width: int, image_height: int) -> float:
    """How far (pixels) a point lies outside the pixel area ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; 0 inside."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return math.inf
    dx = max(-0.5 - x, x - (image_width - 0.5), 0.0)
    dy = max(-0.5 - y, y - (image_height - 0.5), 0.0)
    return math.hypot(dx, dy)


def validate_keypoints(
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    image_height: int,
    image_width: int,
    names: Sequence[str],
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    max_limb_ratio: float = DEFAULT_MAX_LIMB_RATIO,
    limbs: Sequence[tuple[tuple[int, int], tuple[int, int]]] = COCO17_SYMMETRIC_LIMBS,
) -> KeypointValidation:
    """Check one person's keypoints K x 2 (x, y image pixels) and scores (K,); every failure is reported.

    Rules, in order: ``confidence`` (score >= ``score_threshold``), ``outside_image`` (inside the pixel
    area ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; value = distance outside), ``limb_ratio`` (for each pair of
    mirror limbs whose four endpoints passed so far, longer / shorter <= ``max_limb_ratio``, infinite when
    one is zero-length; the distal keypoint of the limb with the lower mean endpoint score is rejected, the
    first (left) limb's on a tie; proximal limbs are checked first, so a rejected elbow or knee exempts the
    segment below it).
    """
    points = np.asarray(keypoints, dtype=np.float64)
    confidences = np.asarray(scores, dtype=np.float64).reshape(-1)
    k = points.shape[0]
    if points.shape != (k, 2) or confidences.shape != (k,) or len(names) != k:
        raise ValueError(
            f"keypoints must be K x 2 with K scores and K names, got {points.shape}, {confidences.shape}, {len(names)}"
        )
    valid = np.ones(k, dtype=bool)
    rejections: list[Rejection] = []
    for i in range(k):
        score = float(confidences[i])
        if not score >= score_threshold:
            valid[i] = False
            rejections.append(
                Rejection(i, names[i], "confidence", score, score_threshold, f"score {score:.4g} < {score_threshold:g}")
            )
        x, y = float(points[i, 0]), float(points[i, 1])
        distance = _outside_distance(x, y, image_width, image_height)
        if distance > 0:
            valid[i] = False
            rejections.append(
                Rejection(
                    i,
                    names[i],
                    "outside_image",
                    distance,
                    0.0,
                    f"({x:.1f}, {y:.1f}) is {distance:.1f} px outside the {image_width} x {image_height} image",
                )
            )
    for first, second in limbs:
        if not valid[[*first, *second]].all():
            continue
        lengths = [float(np.linalg.norm(points[b] - points[a])) for a, b in (first, second)]
        longer, shorter = max(lengths), min(lengths)
        ratio = longer / shorter if shorter > 0 else math.inf
        if ratio <= max_limb_ratio:
            continue
        means = [confidences[list(limb)].mean() for limb in (first, second)]
        suspect = second if means[1] < means[0] else first
        distal = suspect[1]
        valid[distal] = False
        rejections.append(
            Rejection(
                distal,
                names[distal],
                "limb_ratio",
                ratio,
                max_limb_ratio,
                f"{names[first[0]]}-{names[first[1]]} {lengths[0]:.1f} px vs {names[second[0]]}-{names[second[1]]} "
                f"{lengths[1]:.1f} px: ratio {ratio:.3g} > {max_limb_ratio:g}",
            )
        )
    return KeypointValidation(valid, rejections)
