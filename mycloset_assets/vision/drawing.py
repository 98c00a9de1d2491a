"""Pictures for people to look at: skeletons, parsing palettes with legends, mask, warp and grid overlays.

Every function takes RGB uint8 H x W x 3 images (as ``images.load_image`` gives them), never modifies its
inputs, and returns a new RGB uint8 array, ready for ``images.save_png``.

Keypoints are P x K x 3 arrays (x, y, score) in pixels (a single person may be given as K x 3). A keypoint
is drawn only when its score is above ``threshold`` and its coordinates are finite and non-negative, so the
decoders' missing parts ``(-1, -1, 0)`` are never drawn, nor is any limb that touches one. Limbs are blended
over the image (``limb_alpha``); keypoints are opaque discs on top, centred on the rounded coordinates.
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np
import torch

from .tps import warp

Color = tuple[int, int, int]

OPENPOSE18_COLORS: tuple[Color, ...] = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
"""OpenPose's 18 part colours (keypoint i and limb i), in the RGB order of ControlNet's pose images."""

COCO_LEFT: Color = (0, 255, 0)
COCO_RIGHT: Color = (255, 128, 0)
COCO_CENTRE: Color = (51, 153, 255)
HAND_POINT: Color = (255, 0, 0)

_LEGEND_ROW = 18
_LEGEND_SWATCH = 12
_LEGEND_MARGIN = 6
_LEGEND_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LEGEND_FONT_SCALE = 0.45
_LEGEND_TEXT_COLOR: Color = (0, 0, 0)
_WHITE: Color = (255, 255, 255)


@dataclass(frozen=True)
class Skeleton:
    """How to draw one keypoint set: names, 0-based edges, colours and default sizes."""

    name: str
    keypoint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    point_colors: tuple[Color, ...]
    edge_colors: tuple[Color, ...]
    limb_width: int
    point_radius: int


@cache
def _keypoint_tables() -> dict[str, Any]:
    """The packaged keypoint orders and limb tables (``vision/data/keypoints.json``)."""
    text = resources.files(__package__).joinpath("data", "keypoints.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def openpose18_skeleton() -> Skeleton:
    """OpenPose-18 body: the first 17 limbs of the reference ``limbSeq`` (it draws no ear-shoulder links)."""
    tables = _keypoint_tables()
    count = tables["openpose_draw_limbs_count"]
    edges = tuple((int(a), int(b)) for a, b in tables["openpose_limbs_0based"][:count])
    return Skeleton(
        "openpose18", tuple(tables["openpose18"]), edges, OPENPOSE18_COLORS, OPENPOSE18_COLORS[:count], 8, 4
    )


def _coco_side(name: str) -> Color:
    if name.startswith("left_"):
        return COCO_LEFT
    if name.startswith("right_"):
        return COCO_RIGHT
    return COCO_CENTRE


@cache
def coco17_skeleton() -> Skeleton:
    """COCO-17 with the annotation file's skeleton; left parts green, right orange, the rest blue."""
    tables = _keypoint_tables()
    names = tuple(tables["coco17"])
    edges = tuple((int(a), int(b)) for a, b in tables["coco17_skeleton_0based"])
    points = tuple(_coco_side(name) for name in names)
    limbs = tuple(points[a] if points[a] == points[b] else COCO_CENTRE for a, b in edges)
    return Skeleton("coco17", names, edges, points, limbs, 4, 3)


@cache
def hand21_skeleton() -> Skeleton:
    """OpenPose hand (21 points): edge i coloured with hue i / 20, as the reference; red keypoints."""
    tables = _keypoint_tables()
    edges = tuple((int(a), int(b)) for a, b in tables["openpose_hand21_edges"])
    colors = tuple(_hue(i / len(edges)) for i in range(len(edges)))
    names = tuple(tables["openpose_hand21"])
    return Skeleton("hand21", names, edges, (HAND_POINT,) * len(names), colors, 2, 4)


def _hue(hue: float) -> Color:
    """The fully saturated, full-value RGB colour of ``hue`` in [0, 1)."""
    red, green, blue = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def _check_image(image: np.ndarray, what: str = "image") -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{what} must be an RGB uint8 H x W x 3 array, got shape {shape} dtype {dtype}")


def _blend(base: np.ndarray, top: np.ndarray | Color, weight: np.ndarray) -> np.ndarray:
    """``round(base * (1 - w) + top * w)`` per pixel; ``weight`` is H x W in [0, 1]."""
    w = weight.astype(np.float64)[..., None]
    mixed = base.astype(np.float64) * (1.0 - w) + np.asarray(top, dtype=np.float64) * w
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def visible_keypoints(keypoints: np.ndarray, threshold: float) -> np.ndarray:
    """P x K bool: score above ``threshold`` and finite, non-negative coordinates."""
    finite = np.isfinite(keypoints).all(axis=-1)
    with np.errstate(invalid="ignore"):
        return finite & (keypoints[..., 2] > threshold) & (keypoints[..., 0] >= 0) & (keypoints[..., 1] >= 0)


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Skeleton,
    *,
    threshold: float = 0.1,
    limb_alpha: float = 0.6,
    limb_width: int | None = None,
    point_radius: int | None = None,
) -> np.ndarray:
    """Limbs (filled ellipses, blended with ``limb_alpha``) and keypoints (opaque discs) of every person."""
    _check_image(image)
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    count = len(skeleton.keypoint_names)
    if points.ndim != 3 or points.shape[1:] != (count, 3):
        raise ValueError(
            f"{skeleton.name} keypoints must be P x {count} x 3 (x, y, score), got shape {np.shape(keypoints)}"
        )
    if not 0.0 <= limb_alpha <= 1.0:
        raise ValueError(f"limb_alpha must lie in [0, 1], got {limb_alpha}")
    half_width = max(1, round((skeleton.limb_width if limb_width is None else limb_width) / 2))
    radius = skeleton.point_radius if point_radius is None else point_radius
    visible = visible_keypoints(points, threshold)
    pixels = np.zeros(points.shape[:2] + (2,), dtype=np.int64)
    pixels[visible] = np.rint(points[visible][:, :2]).astype(np.int64)

    layer = np.zeros(image.shape, dtype=np.uint8)
    cover = np.zeros(image.shape[:2], dtype=np.uint8)
    for person in range(points.shape[0]):
        for (a, b), color in zip(skeleton.edges, skeleton.edge_colors, strict=True):
            if not (visible[person, a] and visible[person, b]):
                continue
            (xa, ya), (xb, yb) = points[person, a, :2], points[person, b, :2]
            centre = (round((xa + xb) / 2), round((ya + yb) / 2))
            axes = (round(float(np.hypot(xb - xa, yb - ya)) / 2), half_width)
            angle = round(float(np.degrees(np.arctan2(yb - ya, xb - xa))))
            cv2.ellipse(layer, centre, axes, angle, 0, 360, color, thickness=-1)
            cv2.ellipse(cover, centre, axes, angle, 0, 360, 255, thickness=-1)
    out = np.where(cover[..., None] > 0, _blend(image, layer, np.full(cover.shape, limb_alpha)), image)
    out = np.ascontiguousarray(out, dtype=np.uint8)
    for person in range(points.shape[0]):
        for index, color in enumerate(skeleton.point_colors):
            if visible[person, index]:
                x, y = pixels[person, index]
                cv2.circle(out, (int(x), int(y)), radius, color, thickness=-1)
    return out


def draw_openpose18(image: np.ndarray, keypoints: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """OpenPose-18 body skeletons (P x 18 x 3, e.g. ``decode_body(...).keypoints``) in OpenPose's colours."""
    return draw_skeleton(image, keypoints, openpose18_skeleton(), threshold=threshold)


def draw_coco17(image: np.ndarray, keypoints: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """COCO-17 skeletons (P x 17 x 3, e.g. HRNet coordinates with their maxvals as scores)."""
    return draw_skeleton(image, keypoints, coco17_skeleton(), threshold=threshold)


def draw_hands(image: np.ndarray, keypoints: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """OpenPose hand skeletons (P x 21 x 3, one row per hand)."""
    return draw_skeleton(image, keypoints, hand21_skeleton(), threshold=threshold)


def parsing_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map (num_classes x 3 uint8), as SCHP's and Graphonomy's palette PNGs use.

    Label ``i`` spreads its bits over the channels: bit ``3j + c`` of ``i`` sets bit ``7 - j`` of channel c.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    ids = np.arange(num_classes, dtype=np.int64)
    palette = np.zeros((num_classes, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def _check_labels(labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an H x W integer array, got shape {labels.shape} dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        unknown = sorted(int(v) for v in np.unique(labels[(labels < 0) | (labels >= len(names))]))
        raise ValueError(f"label ids {unknown} are outside the label set of {len(names)} names")
    return labels


def colorize_parsing(labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """H x W label ids -> H x W x 3 palette colours (``parsing_palette(len(names))``)."""
    labels = _check_labels(labels, names)
    return parsing_palette(len(names))[labels]


def parsing_legend(labels: np.ndarray, names: Sequence[str], *, min_height: int = 0) -> np.ndarray:
    """A white strip with one swatch and ``"id name"`` per label present in ``labels``, in id order.

    The strip is at least ``min_height`` tall (to sit beside an image) and as wide as its longest entry.
    """
    labels = _check_labels(labels, names)
    present = [int(v) for v in np.unique(labels)]
    palette = parsing_palette(len(names))
    texts = [f"{index} {names[index]}" for index in present]
    text_width = max((cv2.getTextSize(t, _LEGEND_FONT, _LEGEND_FONT_SCALE, 1)[0][0] for t in texts), default=0)
    width = 3 * _LEGEND_MARGIN + _LEGEND_SWATCH + text_width
    height = max(min_height, 2 * _LEGEND_MARGIN + len(present) * _LEGEND_ROW)
    strip = np.full((height, width, 3), 255, dtype=np.uint8)
    for row, (index, text) in enumerate(zip(present, texts, strict=True)):
        top = _LEGEND_MARGIN + row * _LEGEND_ROW + (_LEGEND_ROW - _LEGEND_SWATCH) // 2
        left = _LEGEND_MARGIN
        strip[top : top + _LEGEND_SWATCH, left : left + _LEGEND_SWATCH] = palette[index]
        baseline = top + _LEGEND_SWATCH - 1
        origin = (2 * _LEGEND_MARGIN + _LEGEND_SWATCH, baseline)
        cv2.putText(strip, text, origin, _LEGEND_FONT, _LEGEND_FONT_SCALE, _LEGEND_TEXT_COLOR, 1, cv2.LINE_AA)
    return strip


def draw_parsing(
    image: np.ndarray, labels: np.ndarray, names: Sequence[str], *, alpha: float = 0.5, legend: bool = True
) -> np.ndarray:
    """The parsing's palette colours blended over ``image`` with ``alpha``, with a legend strip on the right.

    With ``legend``, the result is ``max(H, legend height)`` tall and ``W + legend width`` wide; the image
    sits at the top left, the rest is white.
    """
    _check_image(image)
    labels = _check_labels(labels, names)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {image.shape[:2]} must have the same height and width")
    overlay = _blend(image, colorize_parsing(labels, names), np.full(labels.shape, alpha))
    return _beside_legend(overlay, labels, names) if legend else overlay


def _beside_legend(picture: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``picture`` at the top left of a white canvas with the legend of ``labels`` on its right."""
    strip = parsing_legend(labels, names, min_height=picture.shape[0])
    canvas = np.full((strip.shape[0], picture.shape[1] + strip.shape[1], 3), 255, dtype=np.uint8)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    canvas[:, picture.shape[1] :] = strip
    return canvas


def preview_scale(height: int, width: int, *, min_long_side: int = 512, max_long_side: int = 1024) -> float:
    """The factor that brings an image's longer side to at least ``min_long_side`` and at most ``max_long_side``:
    when enlarging, the smallest whole number that reaches ``min_long_side`` without passing ``max_long_side`` (so
    that pixel repetition keeps every pixel a crisp square); 1.0 when the side is already within the range."""
    if min(height, width) < 1 or not 1 <= min_long_side <= max_long_side:
        raise ValueError(
            f"need a non-empty image and 1 <= min_long_side <= max_long_side, got {height} x {width}, "
            f"{min_long_side}..{max_long_side}"
        )
    long_side = max(height, width)
    if long_side < min_long_side:
        return float(min(-(-min_long_side // long_side), max(1, max_long_side // long_side)))
    return max_long_side / long_side if long_side > max_long_side else 1.0


def preview_image(image: np.ndarray, *, min_long_side: int = 512, max_long_side: int = 1024) -> np.ndarray:
    """An RGB image (or H x W label map) resized by ``preview_scale``: enlarged by pixel repetition, shrunk with
    area averaging (label maps with nearest neighbour, so no id is invented); a copy when the size is right."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    scale = preview_scale(height, width, min_long_side=min_long_side, max_long_side=max_long_side)
    if scale == 1.0:
        return image.copy()
    if scale > 1.0:
        factor = int(scale)
        return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.ndim == 2:
        return cv2.resize(image.astype(np.int32), size, interpolation=cv2.INTER_NEAREST).astype(image.dtype)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def parsing_picture(labels: np.ndarray, names: Sequence[str], *, min_long_side: int = 512) -> np.ndarray:
    """A parsing label map as people can read it: the classes in palette colours (no photo beneath), enlarged by
    ``preview_image`` to at least ``min_long_side`` pixels (a small map is coloured first, then its pixels
    repeated), with the legend strip (``"id name"`` per class present) on the right. A label PNG itself stores
    the ids, which a viewer shows as near-black."""
    labels = _check_labels(labels, names)
    if max(labels.shape) < min_long_side:
        colours = preview_image(colorize_parsing(labels, names), min_long_side=min_long_side, max_long_side=2048)
    else:
        colours = colorize_parsing(preview_image(labels, min_long_side=min_long_side, max_long_side=2048), names)
    return _beside_legend(colours, labels, names)


def _mask_weight(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Bool, uint8 (0-255) or float ([0, 1]) H x W mask -> float weights in [0, 1]."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} must equal the image's height and width {shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float64)
    if mask.dtype == np.uint8:
        return mask.astype(np.float64) / 255.0
    if mask.dtype.kind == "f":
        if not np.isfinite(mask).all() or mask.min() < 0.0 or mask.max() > 1.0:
            raise ValueError("float masks must be finite and lie in [0, 1]")
        return mask.astype(np.float64)
    raise ValueError(f"masks must be bool, uint8 (0-255) or float in [0, 1], got {mask.dtype}")


def draw_mask(image: np.ndarray, mask: np.ndarray, *, color: Color = (255, 0, 0), alpha: float = 0.5) -> np.ndarray:
    """``color`` blended over ``image`` with opacity ``alpha * mask`` (soft masks give soft overlays)."""
    _check_image(image)
    return _blend(image, color, alpha * _mask_weight(mask, image.shape[:2]))


def draw_warp(
    person: np.ndarray, warped: np.ndarray, mask: np.ndarray | None = None, *, alpha: float = 0.7
) -> np.ndarray:
    """The warped garment over the person with opacity ``alpha * mask`` (everywhere when ``mask`` is None)."""
    _check_image(person, "person")
    _check_image(warped, "warped")
    if warped.shape != person.shape:
        raise ValueError(f"warped {warped.shape} and person {person.shape} must have the same shape")
    weight = np.ones(person.shape[:2]) if mask is None else _mask_weight(mask, person.shape[:2])
    return _blend(person, warped, alpha * weight)


def draw_grid(
    grid: np.ndarray | torch.Tensor,
    *,
    image: np.ndarray | None = None,
    spacing: int = 16,
    color: Color = (0, 0, 255),
    source_size: tuple[int, int] | None = None,
    align_corners: bool = False,
) -> np.ndarray:
    """A regular lattice warped by a sampling grid, to see what a TPS (or any ``grid_sample``) warp does.

    ``grid``: H x W x 2 (or 1 x H x W x 2) sampling positions (x, y) in [-1, 1], e.g. ``tps_grid(...)[0]``.
    A lattice of 1-pixel lines every ``spacing`` pixels on a ``source_size`` (height, width) source
    (default: H x W) is sampled with ``tps.warp`` (bilinear, zero padding, ``align_corners`` as the warp it
    shows) and drawn in ``color`` over ``image`` (H x W x 3; white when None) with the sampled coverage.
    """
    sampling = torch.as_tensor(grid).detach().to("cpu", torch.float64)
    if sampling.dim() == 4 and sampling.shape[0] == 1:
        sampling = sampling[0]
    if sampling.dim() != 3 or sampling.shape[2] != 2:
        raise ValueError(f"grid must be H x W x 2 or 1 x H x W x 2, got shape {tuple(np.shape(grid))}")
    if spacing < 1:
        raise ValueError(f"spacing must be >= 1, got {spacing}")
    height, width = int(sampling.shape[0]), int(sampling.shape[1])
    if image is None:
        image = np.full((height, width, 3), 255, dtype=np.uint8)
    _check_image(image)
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {image.shape[:2]} must match the grid's height and width {(height, width)}")
    source_height, source_width = source_size or (height, width)
    lattice = torch.zeros(1, 1, source_height, source_width, dtype=torch.float64)
    lattice[..., ::spacing, :] = 1.0
    lattice[..., :, ::spacing] = 1.0
    coverage = warp(lattice, sampling[None], align_corners=align_corners, padding_mode="zeros")[0, 0]
    return _blend(image, color, coverage.clamp(0.0, 1.0).numpy())


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """RGB images next to each other at a common height (white gaps of 4 pixels)."""
    height = max(image.shape[0] for image in images)
    gap = np.full((height, 4, 3), 255, dtype=np.uint8)
    parts = []
    for image in images:
        scaled = cv2.resize(image, (max(1, round(image.shape[1] * height / image.shape[0])), height))
        parts += [scaled, gap]
    return np.ascontiguousarray(np.concatenate(parts[:-1], axis=1))
