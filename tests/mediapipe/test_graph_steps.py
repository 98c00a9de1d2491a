"""The solution-graph steps in vision/mediapipe.py: anchors, decoding, weighted NMS, ROI, crop, refinement,
projection and the keypoint tables, against hand-computed values and MediaPipe's recorded outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mycloset_assets.vision.mediapipe import (
    Detections,
    Roi,
    alignment_roi,
    blazepose_tables,
    blazepose_to_coco17,
    blazepose_to_openpose18,
    crop_roi,
    decode_detections,
    iou,
    letterbox_roi,
    normalize_radians,
    project_points,
    refine_from_heatmap,
    ssd_anchors,
    weighted_nms,
)

from .conftest import VARIANTS

KEYPOINTS = json.loads((Path(__file__).parents[1] / "fixtures" / "keypoints.json").read_text())


def test_anchor_counts_and_positions() -> None:
    pose = ssd_anchors(224, (8, 16, 32, 32, 32))
    face = ssd_anchors(128, (8, 16, 16, 16))
    assert pose.shape == (2254, 2) and face.shape == (896, 2)
    # Stride 8 on 224: 28x28 cells, two anchors each, row-major.
    assert np.allclose(pose[:3], [[0.5 / 28, 0.5 / 28]] * 2 + [[1.5 / 28, 0.5 / 28]])
    # The three stride-32 layers share each 7x7 cell: six anchors per cell.
    assert np.allclose(pose[1568 + 392 : 1568 + 392 + 7], [[0.5 / 7, 0.5 / 7]] * 6 + [[1.5 / 7, 0.5 / 7]])
    assert np.allclose(face[-1], [7.5 / 8, 7.5 / 8])


def test_decoding_reverses_the_output_order_and_applies_the_sigmoid() -> None:
    anchors = np.array([[0.25, 0.5], [0.75, 0.5]], np.float32)
    raw = np.zeros((2, 8), np.float32)
    raw[0] = [22.4, -11.2, 44.8, 22.4, 0.0, 0.0, 11.2, 11.2]
    logits = np.array([math.log(0.9 / 0.1), -3.0], np.float32)
    found = decode_detections(raw, logits, anchors, 224, min_score=0.5)
    assert len(found) == 1
    assert np.allclose(found.boxes[0], [0.25 + 0.1 - 0.1, 0.5 - 0.05 - 0.05, 0.25 + 0.1 + 0.1, 0.5 - 0.05 + 0.05])
    assert np.allclose(found.keypoints[0], [[0.25, 0.5], [0.3, 0.55]])
    assert found.scores[0] == pytest.approx(0.9)


def test_weighted_nms_averages_overlapping_detections_by_score() -> None:
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [3, 3, 4, 4]], np.float32)
    keypoints = np.array([[[0, 0]], [[1, 1]], [[5, 5]]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    kept = weighted_nms(Detections(boxes, keypoints, scores), threshold=0.3)
    assert np.allclose(kept.scores, [0.9, 0.7])
    assert np.allclose(kept.boxes[0], [(0.1 * 0.9) / 1.5, 0, (0.6 + 1.1 * 0.9) / 1.5, 1])
    assert np.allclose(kept.keypoints[0], [[0.9 / 1.5, 0.9 / 1.5]])
    assert np.allclose(kept.boxes[1], [3, 3, 4, 4]) and np.allclose(kept.keypoints[1], [[5, 5]])
    assert iou(boxes[0], boxes[1:]).tolist() == pytest.approx([0.9 / 1.1, 0.0])


def test_empty_detections_stay_empty() -> None:
    empty = Detections(np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
    assert len(weighted_nms(empty)) == 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_roi_from_recorded_detection_equals_the_recorded_roi(variant: str, solution: dict[str, np.ndarray]) -> None:
    keypoints = solution[f"{variant}/pose_detection_keypoints"][0]
    cx, cy, width, height, rotation = solution[f"{variant}/pose_roi"]
    roi = alignment_roi(keypoints[0], keypoints[1], 90.0, 1.25)
    assert roi.cx == pytest.approx(cx, abs=1e-3) and roi.cy == pytest.approx(cy, abs=1e-3)
    assert roi.width == pytest.approx(width, abs=2e-3) and roi.height == pytest.approx(height, abs=2e-3)
    assert roi.rotation == pytest.approx(rotation, abs=1e-5)


def test_normalize_radians_wraps_into_minus_pi_to_pi() -> None:
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_radians(-math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(0.25) == pytest.approx(0.25)


def test_crop_then_project_finds_the_same_pixel() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[118:123, 248:253] = 255
    roi = Roi(220.0, 140.0, 160.0, 160.0, 0.6)
    crop = crop_roi(image, roi, 128)
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    centre = np.array([[xs.mean() / 128, ys.mean() / 128]])
    assert np.allclose(project_points(centre, roi), [[250.0, 120.0]], atol=1.0)


def test_letterbox_roi_and_projection_of_its_corners() -> None:
    roi = letterbox_roi(200, 400)
    assert roi == Roi(200.0, 100.0, 400.0, 400.0, 0.0)
    assert np.allclose(project_points(np.array([[0, 0.25], [1, 0.75]]), roi), [[0, 0], [400, 200]])


def test_refinement_moves_to_the_weighted_mean_of_a_confident_window() -> None:
    heatmap = np.full((64, 64, 2), -20.0, np.float32)
    heatmap[10, 20, 0] = 5.0
    heatmap[10, 22, 0] = 5.0
    heatmap[40, 40, 1] = -0.1
    points = np.array([[21.3 / 64, 10.6 / 64], [40.2 / 64, 40.2 / 64]])
    refined = refine_from_heatmap(points, heatmap, kernel_size=7)
    assert refined[0] == pytest.approx([21 / 64, 10 / 64], abs=1e-4)
    assert np.array_equal(refined[1], points[1])


def test_refinement_keeps_the_graphs_bounds_check() -> None:
    heatmap = np.full((64, 64, 1), 5.0, np.float32)
    inside_rows_outside_cols = np.array([[1.2, 0.5]])
    assert np.array_equal(refine_from_heatmap(inside_rows_outside_cols, heatmap), inside_rows_outside_cols)
    # A landmark just left of the crop truncates to column 0 (C++ float->int) and is refined.
    assert refine_from_heatmap(np.array([[-0.005, 0.5]]), heatmap)[0, 0] == pytest.approx(1.5 / 64, abs=1e-6)


def test_keypoint_tables() -> None:
    tables = blazepose_tables()
    names = tables["blazepose33"]
    assert len(names) == 33
    coco = [names[i] for i in tables["coco17"]]
    assert coco == KEYPOINTS["coco17"]
    openpose = [names[i] if isinstance(i, int) else "neck" for i in tables["openpose18"]]
    assert openpose == [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
        "right_ear", "left_ear",
    ]  # fmt: skip
    assert len(KEYPOINTS["openpose18"]) == 18


def test_openpose18_neck_is_the_shoulder_midpoint() -> None:
    landmarks = np.zeros((1, 33, 4))
    landmarks[0, :, 0] = np.arange(33)
    landmarks[0, :, 2] = 0.9
    landmarks[0, 11] = [100, 50, 0.8, 1]
    landmarks[0, 12] = [60, 70, 0.6, 1]
    body = blazepose_to_openpose18(landmarks)
    assert body.shape == (1, 18, 3)
    assert body[0, 1].tolist() == pytest.approx([80, 60, 0.6])
    assert body[0, 2].tolist() == pytest.approx([60, 70, 0.6]) and body[0, 5].tolist() == pytest.approx([100, 50, 0.8])
    coco = blazepose_to_coco17(landmarks)
    assert coco.shape == (1, 17, 3) and coco[0, 5].tolist() == pytest.approx([100, 50, 0.8])


def test_crop_samples_like_opencv4(photos: dict[str, np.ndarray], solution: dict[str, np.ndarray]) -> None:
    """MediaPipe's crop is OpenCV 4's warpPerspective; the recorded one is reproduced exactly."""
    crop = crop_roi(photos["astronaut"], letterbox_roi(512, 512), 224, "zero")
    assert np.array_equal(crop, solution["letterbox224_opencv4"])
