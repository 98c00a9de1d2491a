"""The steps of MediaPipe's legacy solution graphs (static-image mode), as pure numpy functions.

Each function reproduces one calculator of ``mediapipe==0.10.21``: ``SsdAnchorsCalculator`` (anchors),
``TensorsToDetectionsCalculator`` (decoding), ``NonMaxSuppressionCalculator`` (weighted NMS),
``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator`` (rotated ROI),
``ImageToTensorCalculator`` (crop; OpenCV path), ``TensorsToLandmarksCalculator``,
``RefineLandmarksFromHeatmapCalculator`` and ``LandmarkProjectionCalculator``. Coordinates: ``Roi`` is in
photo pixels; detections and landmarks are normalised to the network input (0..1) until projected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import cv2
import numpy as np


@cache
def blazepose_tables() -> dict:
    """``vision/data/blazepose.json``: the 33 landmark names and the OpenPose-18 / COCO-17 tables."""
    return json.loads(resources.files("mycloset_assets.vision").joinpath("data/blazepose.json").read_text())


def ssd_anchors(input_size: int, strides: Sequence[int], offset: float = 0.5) -> np.ndarray:
    """Anchor centres (N×2, x, y normalised) of an SSD head with ``fixed_anchor_size`` and one aspect ratio:
    two anchors per layer (the ratio and the interpolated scale), layers of equal stride merged per cell."""
    centres = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        size = math.ceil(input_size / strides[layer])
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        grid = np.stack([(xs + offset) / size, (ys + offset) / size], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detections:
    """Boxes (M×4: xmin, ymin, xmax, ymax), keypoints (M×K×2, x, y) and scores (M,), all normalised."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def decode_detections(
    regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int, min_score: float = 0.5
) -> Detections:
    """``TensorsToDetectionsCalculator`` with ``reverse_output_order``, unit anchors, score clipping at 100
    and a sigmoid: raw (N×(4+2K)) regressors and N logits -> the detections scoring at least ``min_score``."""
    regressors = np.asarray(regressors, dtype=np.float32).reshape(len(anchors), -1)
    scores = sigmoid(np.clip(np.asarray(logits, dtype=np.float32).reshape(-1), -100.0, 100.0)).astype(np.float32)
    keep = scores >= min_score
    raw, centres = regressors[keep] / input_size, anchors[keep]
    cx, cy = raw[:, 0] + centres[:, 0], raw[:, 1] + centres[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = raw[:, 4:].reshape(len(raw), (regressors.shape[1] - 4) // 2, 2) + centres[:, None, :]
    return Detections(boxes, keypoints, scores[keep])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one xmin/ymin/xmax/ymax box with each of ``boxes``."""
    left = np.maximum(box[0], boxes[:, 0])
    top = np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[2], boxes[:, 2])
    bottom = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where((inter > 0) & (union > 0), inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(detections: Detections, threshold: float = 0.3) -> Detections:
    """``NonMaxSuppressionCalculator`` with ``algorithm: WEIGHTED`` and IoU overlap: the best remaining
    detection absorbs every one overlapping it by more than ``threshold`` (its own included); box and
    keypoints become their score-weighted mean, the score stays the best one's."""
    order = np.argsort(-detections.scores, kind="stable")
    boxes, keypoints, scores = [], [], []
    while len(order):
        best = order[0]
        overlaps = iou(detections.boxes[best], detections.boxes[order])
        members, order = order[overlaps > threshold], order[overlaps <= threshold]
        scores.append(detections.scores[best])
        if not len(members):
            boxes.append(detections.boxes[best])
            keypoints.append(detections.keypoints[best])
            break
        weights = detections.scores[members]
        total = weights.sum()
        boxes.append((detections.boxes[members] * weights[:, None]).sum(0) / total)
        keypoints.append((detections.keypoints[members] * weights[:, None, None]).sum(0) / total)
    count = len(scores)
    shape = detections.keypoints.shape[1:]
    return Detections(
        np.asarray(boxes, dtype=np.float32).reshape(count, 4),
        np.asarray(keypoints, dtype=np.float32).reshape(count, *shape),
        np.asarray(scores, dtype=np.float32),
    )


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in photo pixels: centre, size and rotation (radians, clockwise on screen)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0


def normalize_radians(angle: float) -> float:
    """Angle wrapped into [-pi, pi) as MediaPipe does."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def letterbox_roi(height: int, width: int) -> Roi:
    """The whole photo, padded to a square around its centre (``keep_aspect_ratio`` on a square input)."""
    side = float(max(height, width))
    return Roi(width / 2.0, height / 2.0, side, side, 0.0)


def alignment_roi(
    start: np.ndarray, end: np.ndarray, target_degrees: float = 90.0, scale: float = 1.25, square_long: bool = True
) -> Roi:
    """``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator`` in pixels: centre at ``start``,
    side twice the distance to ``end``, rotated so that start->end points at ``target_degrees``, scaled."""
    x0, y0 = float(start[0]), float(start[1])
    x1, y1 = float(end[0]), float(end[1])
    side = 2.0 * math.hypot(x1 - x0, y1 - y0)
    rotation = normalize_radians(math.radians(target_degrees) - math.atan2(-(y1 - y0), x1 - x0))
    width = height = side
    if square_long:
        width = height = max(width, height)
    return Roi(x0, y0, width * scale, height * scale, rotation)


def roi_matrix(roi: Roi, size: int) -> np.ndarray:
    """The 2×3 affine map from network-input pixels (0..size) to photo pixels (what the crop samples)."""
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    sx, sy = roi.width / size, roi.height / size
    return np.array(
        [
            [cos * sx, -sin * sy, roi.cx - cos * roi.width / 2 + sin * roi.height / 2],
            [sin * sx, cos * sy, roi.cy - sin * roi.width / 2 - cos * roi.height / 2],
        ],
        dtype=np.float64,
    )


def crop_roi(image: np.ndarray, roi: Roi, size: int, border: str = "replicate") -> np.ndarray:
    """``ImageToTensorCalculator`` (OpenCV path): the ROI warped to size×size uint8 RGB as MediaPipe does it
    (the rotated rectangle's corners -> the tensor's corners, ``warpPerspective``, bilinear), with the
    graph's border mode (``zero`` for the detectors' letterbox, ``replicate`` for landmark crops).

    The sampling is OpenCV 4's, which MediaPipe's wheels link: source positions rounded to 1/32 pixel and
    15-bit fixed-point weights. OpenCV 5's ``warpPerspective`` interpolates differently (up to 3 grey levels
    here), which moves the pose detector's keypoints by a fraction of a pixel, so the positions are computed
    here and sampled with ``cv2.remap``'s fixed-point path, which both versions share."""
    corners = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), math.degrees(roi.rotation)))
    target = np.array([[0, size], [0, 0], [size, 0], [size, size]], dtype=np.float32)
    inverse = np.linalg.inv(cv2.getPerspectiveTransform(corners.astype(np.float32), target))
    positions, fractions = _fixed_point_positions(inverse, size)
    mode = cv2.BORDER_CONSTANT if border == "zero" else cv2.BORDER_REPLICATE
    return cv2.remap(image, positions, fractions, cv2.INTER_LINEAR, borderMode=mode)


_TAB = 32


def _fixed_point_positions(inverse: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 4 ``warpPerspective``'s source positions of a size×size output: integer pixels (int16 x, y)
    and the 1/32-pixel fractions as its interpolation-table index (``fy * 32 + fx``)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    w = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
    w = np.where(w != 0, _TAB / np.where(w != 0, w, 1), 0.0)
    limit = (-(2.0**31), 2.0**31 - 1)
    qx = np.rint(np.clip((inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) * w, *limit)).astype(np.int64)
    qy = np.rint(np.clip((inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) * w, *limit)).astype(np.int64)
    positions = np.stack([qx >> 5, qy >> 5], axis=-1).clip(-32768, 32767).astype(np.int16)
    fractions = ((qy & (_TAB - 1)) * _TAB + (qx & (_TAB - 1))).astype(np.uint16)
    return positions, fractions


def to_tensor_range(crop: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 H×W×3 -> float32 3×H×W in [low, high] (``output_tensor_float_range``)."""
    return (crop.astype(np.float32) * ((high - low) / 255.0) + low).transpose(2, 0, 1)


def project_points(points: np.ndarray, roi: Roi) -> np.ndarray:
    """``LandmarkProjectionCalculator``: points normalised to the crop (…×2) -> photo pixels."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[..., 0] - 0.5, points[..., 1] - 0.5
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    return np.stack([(cos * x - sin * y) * roi.width + roi.cx, (sin * x + cos * y) * roi.height + roi.cy], axis=-1)


def sigmoid(values: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(values, dtype=np.float64), -700.0, 700.0)))


def refine_from_heatmap(
    points: np.ndarray, heatmap: np.ndarray, kernel_size: int = 7, min_confidence: float = 0.5
) -> np.ndarray:
    """``RefineLandmarksFromHeatmapCalculator``: each point normalised to the crop (K×2) moves to the
    sigmoid-weighted mean position of the heatmap (h×w×K logits) in a kernel around it, when the window's
    highest confidence reaches ``min_confidence``. The graph's own quirks are kept: the centre cell is the
    truncated product, and the row bound is checked against the column (``center_col >= hm_height``)."""
    height, width, _ = heatmap.shape
    offset = (kernel_size - 1) // 2
    refined = np.array(points, dtype=np.float64, copy=True)
    for index, (x, y) in enumerate(np.asarray(points, dtype=np.float64)):
        col, row = int(np.float32(x) * np.float32(width)), int(np.float32(y) * np.float32(height))
        if col < 0 or col >= width or row < 0 or col >= height:
            continue
        rows = slice(max(0, row - offset), min(height, row + offset + 1))
        cols = slice(max(0, col - offset), min(width, col + offset + 1))
        confidence = sigmoid(heatmap[rows, cols, index].astype(np.float32)).astype(np.float32)
        total = confidence.sum(dtype=np.float32)
        if confidence.max() >= min_confidence and total > 0:
            grid_rows, grid_cols = np.mgrid[rows, cols]
            refined[index, 0] = (grid_cols * confidence).sum(dtype=np.float32) / width / total
            refined[index, 1] = (grid_rows * confidence).sum(dtype=np.float32) / height / total
    return refined


def blazepose_to_openpose18(landmarks: np.ndarray) -> np.ndarray:
    """P×33×K (x, y, visibility, …) BlazePose landmarks -> P×18×3 (x, y, score) OpenPose-18; Neck is the
    shoulders' midpoint with the lower of their two visibilities."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    out = np.zeros((*landmarks.shape[:-2], 18, 3))
    for index, source in enumerate(blazepose_tables()["openpose18"]):
        if isinstance(source, list):
            a, b = landmarks[..., source[0], :3], landmarks[..., source[1], :3]
            out[..., index, :2] = (a[..., :2] + b[..., :2]) / 2
            out[..., index, 2] = np.minimum(a[..., 2], b[..., 2])
        else:
            out[..., index, :] = landmarks[..., source, :3]
    return out


def blazepose_to_coco17(landmarks: np.ndarray) -> np.ndarray:
    """P×33×K BlazePose landmarks -> P×17×3 (x, y, visibility) in COCO-17 order."""
    return np.asarray(landmarks, dtype=np.float64)[..., blazepose_tables()["coco17"], :3]
