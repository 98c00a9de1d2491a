"""Cloth-agnostic person representations: what a try-on network sees of the person instead of the photo.

CP-VTON (sergeywong/cp-vton@fbaf333, ``cp_dataset.py``) feeds its GMM and TOM 22 channels in [-1, 1]:

- ``shape`` (1): the body mask (every non-background label) as an 8-bit image, resized with Pillow's
  BILINEAR filter to 1/16 of the size and back, a blurred silhouette that hides the clothes' outline;
- ``head`` (3): the person RGB where the LIP label is Hat, Hair, Sunglasses or Face, -1 elsewhere;
- ``pose`` (18): one map per OpenPose-18 keypoint, 1 on a filled square of half-size ``radius`` (5 in
  ``test.py``) around it, -1 elsewhere; a keypoint is drawn only where ``x > 1 and y > 1``.

VITON-HD (shadow2496/VITON-HD@02afa4b, ``datasets.py``) indexes OpenPose BODY_25 keypoints and draws with
Pillow at its 1024 x 768 load size:

- ``vitonhd_parse_agnostic``: the LIP/CIHP parsing with upper clothes (5, 6, 7), the neck (10) and the arm
  labels (14, 15) under thick lines along the arms removed (set to background), then grouped into the 13
  channels of ``VITONHD_GROUPS``;
- ``vitonhd_image_agnostic``: the photo with arms, torso and neck painted grey (128) along the keypoints,
  face and lower body (trousers, skirt, legs, shoes) pasted back from the photo;
- the pose enters the networks as OpenPose's rendering of the skeleton (``render_body25``, OpenPose's CPU
  renderer: BODY_25 pairs and colours on black).

The reference rasterises its lines, ellipses, polygons and its 1/16 blur with Pillow; these functions call
the same Pillow primitives (in memory) so the pixels are the reference's, not an approximation of them.
Label ids are LIP-20 / CIHP-20 ids (the same ids for every label used here; VITON-HD's "neck" is CIHP's
Torso-skin, 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

CPVTON_HEAD_LABELS: tuple[int, ...] = (1, 2, 4, 13)  # Hat, Hair, Sunglasses, Face
CPVTON_CLOTH_LABELS: tuple[int, ...] = (5, 6, 7)  # Upper-clothes, Dress, Coat
CPVTON_POSE_RADIUS = 5  # test.py --radius default
CPVTON_SHAPE_REDUCTION = 16  # the body shape is resized to 1/16 and back
OPENPOSE18_KEYPOINTS = 18

VITONHD_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("background", (0, 10)),
    ("hair", (1, 2)),
    ("face", (4, 13)),
    ("upper", (5, 6, 7)),
    ("bottom", (9, 12)),
    ("left_arm", (14,)),
    ("right_arm", (15,)),
    ("left_leg", (16,)),
    ("right_leg", (17,)),
    ("left_shoe", (18,)),
    ("right_shoe", (19,)),
    ("socks", (8,)),
    ("noise", (3, 11)),
)
"""VITON-HD's 13 parsing channels and the LIP/CIHP ids summed into each (``datasets.py`` ``labels``)."""

VITONHD_ALIAS_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("background", (0,)),
    ("paste", (2, 4, 7, 8, 9, 10, 11)),
    ("upper", (3,)),
    ("hair", (1,)),
    ("left_arm", (5,)),
    ("right_arm", (6,)),
    ("noise", (12,)),
)
"""The 7 groups of the 13 VITON-HD channels that the GMM and ALIAS generator take (``test.py`` ``labels``)."""

VITONHD_UPPER_LABELS: tuple[int, ...] = (5, 6, 7)
VITONHD_NECK_LABEL = 10
VITONHD_ARMS: tuple[tuple[int, tuple[int, ...]], ...] = ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4)))
"""(arm label, BODY_25 chain): the chain's segments and joints are drawn thick, then that label is erased there."""
VITONHD_HEAD_LABELS: tuple[int, ...] = (4, 13)  # pasted back onto the image agnostic: sunglasses, face
VITONHD_LOWER_LABELS: tuple[int, ...] = (9, 12, 16, 17, 18, 19)  # pants, skirt, legs, shoes
VITONHD_REFERENCE_WIDTH = 768  # the reference's radii are pixels of a 768-wide image
VITONHD_GREY = 128  # Pillow's "gray"
VITONHD_REQUIRED_KEYPOINTS: tuple[int, ...] = (1, 2, 5, 9, 12)  # Neck, shoulders, hips

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
    "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe",
    "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
BODY25_MIDHIP = 8
BODY25_FROM_OPENPOSE18: tuple[int | None, ...] = (
    0, 1, 2, 3, 4, 5, 6, 7, None, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, None, None, None, None, None, None,
)  # fmt: skip
"""BODY_25 index i takes OpenPose-18 keypoint ``table[i]``; MidHip (8) is the hips' mean; feet have no source."""
OPENPOSE18_RHIP, OPENPOSE18_LHIP = 8, 11

BODY25_RENDER_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
    (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
    (22, 23), (11, 24),
)  # fmt: skip
"""OpenPose ``POSE_BODY_25_PAIRS_RENDER_GPU``: the limbs in drawing order."""
BODY25_RENDER_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
    (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
)  # fmt: skip
"""OpenPose ``POSE_BODY_25_COLORS_RENDER_GPU`` (RGB), one per keypoint; a limb takes its second keypoint's."""
OPENPOSE_RENDER_THRESHOLD = 0.05  # OpenPose --render_threshold default
OPENPOSE_RECTANGLE_THRESHOLD = 0.1  # keypoints that size the person's rectangle
OPENPOSE_CIRCLE_RATIO = 1.0 / 75.0  # thicknessCircleRatio
OPENPOSE_LINE_RATIO = 0.75  # thicknessLineRatioWRTCircle


class MissingKeypointsError(ValueError):
    """A representation needs keypoints that the pose lacks."""


def _check_parsing(parsing: np.ndarray) -> np.ndarray:
    if parsing.ndim != 2 or not np.issubdtype(parsing.dtype, np.integer):
        raise ValueError(f"parsing must be an H x W array of integer label ids, got {parsing.dtype} {parsing.shape}")
    return parsing


def _check_image(image: np.ndarray, parsing: np.ndarray | None = None) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an RGB uint8 H x W x 3 array, got {image.dtype} {image.shape}")
    if parsing is not None and image.shape[:2] != parsing.shape:
        raise ValueError(f"image {image.shape[:2]} and parsing {parsing.shape} must have the same height and width")
    return image


def _check_keypoints(keypoints: np.ndarray, count: int, name: str) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[0] != count or keypoints.shape[1] not in (2, 3):
        raise ValueError(f"{name} keypoints must be {count} x 2 or {count} x 3 (x, y[, score]), got {keypoints.shape}")
    return keypoints


def labels_in(parsing: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Boolean H x W mask of the pixels whose label is one of ``ids``."""
    return np.isin(parsing, np.asarray(ids, dtype=parsing.dtype))


def to_network_range(image: np.ndarray) -> np.ndarray:
    """RGB uint8 H x W x 3 -> 3 x H x W float32 in [-1, 1], as ``ToTensor`` then ``Normalize(0.5, 0.5)``.

    The two float32 steps (divide by 255, then subtract 0.5 and divide by 0.5) are the reference's, so the
    values are bit-identical to its tensors.
    """
    _check_image(image)
    scaled = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return (scaled - np.float32(0.5)) / np.float32(0.5)


def cpvton_body_shape(parsing: np.ndarray, reduction: int = CPVTON_SHAPE_REDUCTION) -> np.ndarray:
    """CP-VTON's ``shape`` channel: H x W float32 in [-1, 1], the blurred body silhouette.

    The body mask (label > 0) as 0/255 is resized with Pillow BILINEAR to (W // 16, H // 16) and back to
    (W, H); the 8-bit result v maps to ``(v / 255 - 0.5) / 0.5``.
    """
    _check_parsing(parsing)
    height, width = parsing.shape
    if height < reduction or width < reduction:
        raise ValueError(f"parsing {parsing.shape} is too small for the 1/{reduction} body shape")
    mask = Image.fromarray(np.where(parsing > 0, 255, 0).astype(np.uint8))
    small = mask.resize((width // reduction, height // reduction), Image.Resampling.BILINEAR)
    blurred = np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))
    return (blurred.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


def cpvton_head(image: np.ndarray, parsing: np.ndarray, labels: Sequence[int] = CPVTON_HEAD_LABELS) -> np.ndarray:
    """CP-VTON's ``head`` channels: 3 x H x W float32, the person in [-1, 1] on the head labels, -1 elsewhere.

    ``im * phead - (1 - phead)`` with ``phead`` the 0/1 head mask.
    """
    _check_image(image, _check_parsing(parsing))
    head = labels_in(parsing, labels).astype(np.float32)
    return to_network_range(image) * head - (np.float32(1) - head)


def cpvton_pose_maps(keypoints: np.ndarray, height: int, width: int, radius: int = CPVTON_POSE_RADIUS) -> np.ndarray:
    """CP-VTON's pose channels: K x H x W float32, 1 on each keypoint's square and -1 elsewhere.

    ``keypoints`` K x 2 or K x 3 (x, y[, score]) in pixels. Keypoint k with ``x > 1 and y > 1`` fills the
    square ``(x - r, y - r, x + r, y + r)`` as Pillow's ``rectangle`` does with float corners: columns
    ``floor(x - r) .. floor(x + r)`` and rows ``floor(y - r) .. floor(y + r)``, both ends included, clipped
    to the image. Other keypoints (missing ones: OpenPose JSON's (0, 0), this project's (-1, -1)) leave
    their map at -1.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be K x 2 or K x 3 (x, y[, score]), got {keypoints.shape}")
    maps = np.full((keypoints.shape[0], height, width), -1.0, dtype=np.float32)
    for k, (x, y) in enumerate(keypoints[:, :2]):
        if not (x > 1 and y > 1):
            continue
        x0, x1 = max(int(np.floor(x - radius)), 0), min(int(np.floor(x + radius)), width - 1)
        y0, y1 = max(int(np.floor(y - radius)), 0), min(int(np.floor(y + radius)), height - 1)
        maps[k, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return maps


@dataclass(frozen=True)
class CpVtonAgnostic:
    """CP-VTON's person representation at the network size (all float32 in [-1, 1]).

    ``shape`` 1 x H x W blurred silhouette, ``head`` 3 x H x W head RGB, ``pose`` 18 x H x W keypoint
    squares. ``array()`` is the 22 x H x W network input ``cat([shape, head, pose])``.
    """

    shape: np.ndarray
    head: np.ndarray
    pose: np.ndarray

    def array(self) -> np.ndarray:
        """The 22 x H x W input of the GMM (and, with the warped cloth, of the TOM)."""
        return np.concatenate([self.shape, self.head, self.pose], axis=0)

    @property
    def pose_image(self) -> np.ndarray:
        """H x W float32 in [-1, 1]: every keypoint square in one map (the reference's ``im_pose``)."""
        return self.pose.max(axis=0)


def cpvton_agnostic(
    image: np.ndarray, parsing: np.ndarray, keypoints: np.ndarray, radius: int = CPVTON_POSE_RADIUS
) -> CpVtonAgnostic:
    """The 22-channel CP-VTON representation of a person at the network size.

    ``image`` RGB uint8 H x W x 3, ``parsing`` H x W LIP-20 ids, ``keypoints`` 18 x 2|3 OpenPose-18 in the
    image's pixels (missing keypoints at coordinates <= 1, e.g. (-1, -1, 0)).
    """
    _check_image(image, _check_parsing(parsing))
    keypoints = _check_keypoints(keypoints, OPENPOSE18_KEYPOINTS, "OpenPose-18")
    height, width = parsing.shape
    return CpVtonAgnostic(
        shape=cpvton_body_shape(parsing)[None],
        head=cpvton_head(image, parsing),
        pose=cpvton_pose_maps(keypoints, height, width, radius),
    )


def body25_from_openpose18(keypoints: np.ndarray) -> np.ndarray:
    """OpenPose-18 (18 x 3: x, y, score; missing where score <= 0) -> BODY_25 (25 x 3) as OpenPose writes it.

    Keypoints keep their coordinates and scores; MidHip is the mean (x, y and score) of RHip and LHip when
    both are present; the six foot keypoints have no source. Missing keypoints are (0, 0, 0), the
    convention of OpenPose's JSON that VITON-HD's ``datasets.py`` tests with ``== 0.0``.
    """
    keypoints = _check_keypoints(keypoints, OPENPOSE18_KEYPOINTS, "OpenPose-18")
    if keypoints.shape[1] != 3:
        raise ValueError("OpenPose-18 keypoints need their scores (18 x 3) to tell missing ones apart")
    present = keypoints[:, 2] > 0
    body25 = np.zeros((len(BODY25_NAMES), 3), dtype=np.float64)
    for index, source in enumerate(BODY25_FROM_OPENPOSE18):
        if source is not None and present[source]:
            body25[index] = keypoints[source]
    if present[OPENPOSE18_RHIP] and present[OPENPOSE18_LHIP]:
        body25[BODY25_MIDHIP] = (keypoints[OPENPOSE18_RHIP] + keypoints[OPENPOSE18_LHIP]) / 2
    return body25


def _body25_points(pose: np.ndarray) -> np.ndarray:
    return _check_keypoints(pose, len(BODY25_NAMES), "BODY_25")[:, :2].copy()


def _missing(point: np.ndarray) -> bool:
    """VITON-HD's test for a missing BODY_25 keypoint: both coordinates exactly 0."""
    return bool(point[0] == 0.0 and point[1] == 0.0)


def _line_width(reference_width: float, scale: float) -> int:
    return max(1, round(reference_width * scale))


def _ellipse(draw: ImageDraw.ImageDraw, center: np.ndarray, rx: float, ry: float) -> None:
    x, y = float(center[0]), float(center[1])
    draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=255, outline=255)


def _line(draw: ImageDraw.ImageDraw, a: np.ndarray, b: np.ndarray, width: int) -> None:
    draw.line([(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))], fill=255, width=width)


def vitonhd_arm_mask(points: np.ndarray, chain: Sequence[int], height: int, width: int, scale: float) -> np.ndarray:
    """Where VITON-HD erases one arm label: H x W bool, thick segments along the BODY_25 ``chain``.

    From the chain's first keypoint, each next present keypoint is joined by a line of width 100 and gets a
    disc of radius 150 (40 for the chain's last keypoint); a segment with a missing end is skipped and the
    chain goes on from the last keypoint drawn. Sizes are for a 768-wide image, times ``scale``.
    """
    r = 10 * scale
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    previous = chain[0]
    for index in chain[1:]:
        if _missing(points[previous]) or _missing(points[index]):
            continue
        _line(draw, points[previous], points[index], _line_width(100, scale))
        radius = r * 4 if index == chain[-1] else r * 15
        _ellipse(draw, points[index], radius, radius)
        previous = index
    return np.asarray(canvas) > 0


def vitonhd_parse_agnostic(parsing: np.ndarray, pose: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """VITON-HD's ``get_parse_agnostic``: the parsing (H x W ids) with the upper body and arms set to 0.

    Each arm label (14 left, 15 right) becomes background under its ``vitonhd_arm_mask``; upper clothes
    (5, 6, 7) and the neck (10) become background everywhere. ``pose`` is BODY_25 (25 x 2|3, missing
    keypoints at (0, 0)); ``scale`` = image width / 768 scales the reference's pixel sizes.
    """
    _check_parsing(parsing)
    points = _body25_points(pose)
    height, width = parsing.shape
    agnostic = parsing.copy()
    for label, chain in VITONHD_ARMS:
        arm = vitonhd_arm_mask(points, chain, height, width, scale)
        agnostic[arm & (parsing == label)] = 0
    agnostic[labels_in(parsing, (*VITONHD_UPPER_LABELS, VITONHD_NECK_LABEL))] = 0
    return agnostic


def group_one_hot(labels: np.ndarray, groups: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
    """len(groups) x H x W float32: channel g is 1 where the label is one of group g's ids.

    The reference's scatter of the labels into one-hot maps followed by a sum of each group's channels.
    """
    return np.stack([labels_in(labels, ids) for _, ids in groups]).astype(np.float32)


def group_labels(labels: np.ndarray, groups: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
    """H x W uint8: the index of the group each label belongs to (labels in no group raise)."""
    lookup = np.full(max(max(ids) for _, ids in groups) + 1, 255, dtype=np.uint8)
    for group, (_, ids) in enumerate(groups):
        lookup[list(ids)] = group
    present = np.unique(labels)
    unknown = [int(v) for v in present if v < 0 or v >= lookup.size or lookup[v] == 255]
    if unknown:
        raise ValueError(f"labels {unknown} belong to none of the groups {[name for name, _ in groups]}")
    return lookup[labels]


@dataclass(frozen=True)
class ImageAgnostic:
    """VITON-HD's image agnostic: ``image`` H x W x 3 uint8 (grey where the person was hidden) and ``mask``
    H x W bool, the pixels painted grey."""

    image: np.ndarray
    mask: np.ndarray


def vitonhd_hidden_region(points: np.ndarray, height: int, width: int, scale: float = 1.0) -> np.ndarray:
    """H x W bool: what ``get_img_agnostic`` paints grey, before the face and lower body are pasted back.

    ``points`` BODY_25 (25 x 2) after the hips were moved (``vitonhd_widened_hips``). Arms: a width-200
    line between the shoulders, radius-100 discs on them, and for each present arm segment (shoulder-elbow,
    elbow-wrist) a width-200 line and a radius-100 disc at its end. Torso: 60 x 120 (half-axes) ellipses
    on the hips, width-120 lines shoulder-hip, a width-240 line between the hips and the polygon
    shoulders-hips. Neck: a square of half-size 140 on the neck. Sizes for a 768-wide image, times ``scale``.
    """
    r = 20 * scale
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    _line(draw, points[2], points[5], _line_width(200, scale))
    for index in (2, 5):
        _ellipse(draw, points[index], r * 5, r * 5)
    for index in (3, 4, 6, 7):
        if _missing(points[index - 1]) or _missing(points[index]):
            continue
        _line(draw, points[index - 1], points[index], _line_width(200, scale))
        _ellipse(draw, points[index], r * 5, r * 5)
    for index in (9, 12):
        _ellipse(draw, points[index], r * 3, r * 6)
    _line(draw, points[2], points[9], _line_width(120, scale))
    _line(draw, points[5], points[12], _line_width(120, scale))
    _line(draw, points[9], points[12], _line_width(240, scale))
    draw.polygon([(float(points[i][0]), float(points[i][1])) for i in (2, 5, 12, 9)], fill=255, outline=255)
    x, y = float(points[1][0]), float(points[1][1])
    draw.rectangle((x - r * 7, y - r * 7, x + r * 7, y + r * 7), fill=255, outline=255)
    return np.asarray(canvas) > 0


def vitonhd_widened_hips(points: np.ndarray) -> np.ndarray:
    """BODY_25 points with RHip and LHip moved apart (or together) to the shoulders' distance.

    Both hips move along their line, about their midpoint, so that their distance equals the shoulders'
    (``get_img_agnostic`` does this in place before drawing the torso).
    """
    points = points.copy()
    shoulders = float(np.linalg.norm(points[5] - points[2]))
    hips = float(np.linalg.norm(points[12] - points[9]))
    if hips == 0.0:
        raise MissingKeypointsError("RHip and LHip are at the same point: the torso of the image agnostic is undefined")
    middle = (points[9] + points[12]) / 2
    points[9] = middle + (points[9] - middle) / hips * shoulders
    points[12] = middle + (points[12] - middle) / hips * shoulders
    return points


def vitonhd_image_agnostic(
    image: np.ndarray, parsing: np.ndarray, pose: np.ndarray, scale: float = 1.0
) -> ImageAgnostic:
    """VITON-HD's ``get_img_agnostic``: the person photo with arms, torso and neck greyed out.

    ``image`` RGB uint8 H x W x 3, ``parsing`` H x W LIP/CIHP ids, ``pose`` BODY_25 (25 x 2|3, missing at
    (0, 0)); ``scale`` = image width / 768. The grey (128) covers ``vitonhd_hidden_region`` except the face
    (4, 13) and lower-body labels (9, 12, 16-19), which keep the photo's pixels. Neck, both shoulders and
    both hips are required (the reference would draw from (0, 0) without them).
    """
    _check_image(image, _check_parsing(parsing))
    points = _body25_points(pose)
    missing = [BODY25_NAMES[i] for i in VITONHD_REQUIRED_KEYPOINTS if _missing(points[i])]
    if missing:
        raise MissingKeypointsError(
            f"VITON-HD's image agnostic needs Neck, RShoulder, LShoulder, RHip and LHip; the pose lacks "
            f"{', '.join(missing)} (use a photo that shows the person down to the hips)"
        )
    height, width = parsing.shape
    hidden = vitonhd_hidden_region(vitonhd_widened_hips(points), height, width, scale)
    hidden &= ~labels_in(parsing, (*VITONHD_HEAD_LABELS, *VITONHD_LOWER_LABELS))
    agnostic = image.copy()
    agnostic[hidden] = VITONHD_GREY
    return ImageAgnostic(image=agnostic, mask=hidden)


def _positive_round(value: np.float32) -> int:
    """OpenPose's ``positiveIntRound``: ``int(a + 0.5f)`` in float32."""
    return int(np.float32(value) + np.float32(0.5))


def render_body25(
    pose: np.ndarray, height: int, width: int, threshold: float = OPENPOSE_RENDER_THRESHOLD
) -> np.ndarray:
    """OpenPose's CPU rendering of one BODY_25 skeleton on black: H x W x 3 uint8 RGB.

    As ``renderKeypointsCpu``: the person's rectangle (keypoints scoring > 0.1) sets
    ``t = max(round(sqrt(H * W) / 75 * min(1, max(rect_w / W, rect_h / H))), 2)``; limbs (both ends scoring
    > ``threshold``) are 8-connected lines of thickness ``max(1, round(0.75 t))`` in the colour of their
    second keypoint, drawn in OpenPose's pair order; then every keypoint scoring > ``threshold`` gets a
    circle of radius ``t // 2`` and thickness ``t`` (1 for a person smaller than 5 % of the image) in its
    colour. Coordinates are rounded as OpenPose does (``int(v + 0.5)``). ``pose`` is 25 x 3 (x, y, score).
    """
    pose = _check_keypoints(pose, len(BODY25_NAMES), "BODY_25")
    if pose.shape[1] != 3:
        raise ValueError("rendering needs the BODY_25 scores (25 x 3)")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    sized = pose[pose[:, 2] > OPENPOSE_RECTANGLE_THRESHOLD]
    if len(sized) == 0:
        return canvas
    rect_w = np.float32(sized[:, 0].max() - sized[:, 0].min())
    rect_h = np.float32(sized[:, 1].max() - sized[:, 1].min())
    if rect_w * rect_h <= 0:
        return canvas
    ratio = min(np.float32(1), max(rect_w / np.float32(width), rect_h / np.float32(height)))
    root = np.sqrt(np.float32(height * width))
    thickness = max(_positive_round(root * np.float32(OPENPOSE_CIRCLE_RATIO) * ratio), 2)
    circle = max(1, thickness if ratio > np.float32(0.05) else -1)
    line = max(1, _positive_round(np.float32(thickness) * np.float32(OPENPOSE_LINE_RATIO)))
    radius = thickness // 2

    def point(index: int) -> tuple[int, int]:
        return _positive_round(np.float32(pose[index, 0])), _positive_round(np.float32(pose[index, 1]))

    for a, b in BODY25_RENDER_PAIRS:
        if pose[a, 2] > threshold and pose[b, 2] > threshold:
            cv2.line(canvas, point(a), point(b), BODY25_RENDER_COLORS[b], line, cv2.LINE_8)
    for index in range(len(BODY25_NAMES)):
        if pose[index, 2] > threshold:
            cv2.circle(canvas, point(index), radius, BODY25_RENDER_COLORS[index], circle, cv2.LINE_8)
    return canvas
