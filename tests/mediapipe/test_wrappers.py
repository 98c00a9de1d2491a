"""The wrappers against MediaPipe 0.10.21's own solutions, recorded on the astronaut photo and four variants
(crop, mirror, quarter turn, letterbox padding) by tests/fixtures/mediapipe/record_solution.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mycloset_assets.checkpoints import load_model
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.mediapipe_face import FaceDetector
from mycloset_assets.wrappers.mediapipe_pose import BlazePoseEstimator
from mycloset_assets.wrappers.mediapipe_segmentation import SelfieSegmenter, person_mask

from .conftest import BUNDLED, VARIANTS


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def face_detector() -> FaceDetector:
    return FaceDetector(load_model(BUNDLED["mediapipe_face_detection_short_range"]))


@pytest.fixture(scope="module")
def segmenter() -> SelfieSegmenter:
    return SelfieSegmenter(load_model(BUNDLED["mediapipe_selfie_segmentation"]))


@pytest.fixture(scope="module")
def pose(mediapipe_models: dict[str, Path]) -> BlazePoseEstimator:
    return BlazePoseEstimator(
        load_model(mediapipe_models["mediapipe_pose_detection"]),
        load_model(mediapipe_models["mediapipe_pose_landmark_full"]),
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_face_detection_equals_the_solution(
    variant: str, face_detector: FaceDetector, photos: dict, solution: dict
) -> None:
    found = face_detector(photos[variant])
    assert len(found) == len(solution[f"{variant}/face_scores"]) == 1
    assert np.abs(found.boxes - solution[f"{variant}/face_boxes"]).max() < 0.01
    assert np.abs(found.keypoints - solution[f"{variant}/face_keypoints"]).max() < 0.01
    assert np.abs(found.scores - solution[f"{variant}/face_scores"]).max() < 1e-5
    assert found.mesh is None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_selfie_mask_equals_the_solution(
    variant: str, segmenter: SelfieSegmenter, photos: dict, solution: dict
) -> None:
    probability = segmenter(photos[variant])
    reference = solution[f"{variant}/selfie"]
    assert probability.shape == reference.shape == photos[variant].shape[:2]
    assert _iou(probability > 0.5, reference > 127) >= 0.999
    mask = person_mask(probability)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}


def test_wrappers_refuse_other_families(segmenter: SelfieSegmenter) -> None:
    with pytest.raises(WrongFamilyError, match="mediapipe_blazeface"):
        FaceDetector(segmenter.loaded)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pose_detection_and_roi_are_the_solutions(
    variant: str, pose: BlazePoseEstimator, photos: dict, solution: dict
) -> None:
    found = pose.detect(photos[variant])
    assert len(found) == 1
    assert np.abs(found.boxes - solution[f"{variant}/pose_detection_boxes"]).max() < 0.01
    assert np.abs(found.keypoints - solution[f"{variant}/pose_detection_keypoints"]).max() < 0.01
    roi = pose.roi(found)
    cx, cy, width, _, rotation = solution[f"{variant}/pose_roi"]
    assert abs(roi.cx - cx) < 0.01 and abs(roi.cy - cy) < 0.01 and abs(roi.width - width) < 0.02
    assert abs(roi.rotation - rotation) < 1e-5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pose_landmarks_and_mask_match_the_solution(
    variant: str, pose: BlazePoseEstimator, photos: dict, solution: dict
) -> None:
    """The same crops give the same landmarks up to float noise, except where a landmark's heatmap
    confidence sits at the refinement threshold (0.5) and one runtime refines it and the other does not."""
    result = pose.estimate(photos[variant])
    reference = solution[f"{variant}/pose"]
    assert result.landmarks.shape == (1, 33, 4) and result.openpose18.shape == (1, 18, 3)
    visible = reference[:, 3] > 0.5
    distance = np.hypot(*(result.landmarks[0, :, :2] - reference[:, :2]).T)[visible]
    assert np.median(distance) <= 0.25
    assert distance.max() <= 8.0
    assert np.abs(result.landmarks[0, :, 2] - reference[:, 3]).max() < 0.01
    mask = solution[f"{variant}/pose_segmentation"] > 127
    assert result.segmentation.shape == mask.shape
    assert _iou(result.segmentation > 0.5, mask) >= 0.998


def test_face_mesh_equals_the_solution(mediapipe_models: dict[str, Path], photos: dict, solution: dict) -> None:
    detector = FaceDetector(
        load_model(mediapipe_models["mediapipe_face_detection_short_range"]),
        load_model(mediapipe_models["mediapipe_face_landmark"]),
    )
    for variant in VARIANTS:
        mesh = detector(photos[variant]).mesh
        assert mesh is not None and mesh.shape == (1, 468, 3)
        distance = np.hypot(*(mesh[0, :, :2] - solution[f"{variant}/face_mesh"][:, :2]).T)
        assert distance.max() < 0.05, variant


def test_no_person_gives_empty_results(pose: BlazePoseEstimator) -> None:
    blank = np.full((240, 320, 3), 200, np.uint8)
    result = pose.estimate(blank)
    assert len(result) == 0 and result.landmarks.shape == (0, 33, 4)
    assert result.segmentation.shape == (240, 320) and not result.segmentation.any()
