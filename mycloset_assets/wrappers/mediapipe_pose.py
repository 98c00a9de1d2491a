"""BlazePose: MediaPipe's legacy pose solution graph (static-image mode) on the project's torch networks.

detector (photo letterboxed to 224×224, zero border, [-1, 1]) -> SSD anchors, score ≥ 0.5, weighted NMS
(IoU 0.3) -> rotated ROI from the hip-centre and full-body keypoints (×1.25, square) -> landmark network
(ROI warped to 256×256, replicated border, [0, 1]) -> pose flag ≥ 0.5 -> heatmap refinement (kernel 7)
-> projection to photo pixels; the segmentation is warped back to the photo. MediaPipe's solution
follows one person (the best detection); ``max_people`` > 1 runs the same landmark step on the next ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.mediapipe import (
    Detections,
    Roi,
    alignment_roi,
    blazepose_to_coco17,
    blazepose_to_openpose18,
    crop_roi,
    decode_detections,
    letterbox_roi,
    project_points,
    refine_from_heatmap,
    roi_matrix,
    sigmoid,
    ssd_anchors,
    to_tensor_range,
    weighted_nms,
)
from .base import check_family, check_images

DETECTOR_SIZE = 224
DETECTOR_STRIDES = (8, 16, 32, 32, 32)
LANDMARK_SIZE = 256
POSE_LANDMARKS = 33
MIN_DETECTION_SCORE = 0.5
NMS_THRESHOLD = 0.3
MIN_PRESENCE = 0.5
ROI_SCALE = 1.25
REFINE_KERNEL = 7


@dataclass(frozen=True)
class BlazePoseResult:
    """People found in one photo, best detection first.

    ``landmarks``: P×33×4 (x, y, visibility, presence) in photo pixels; ``z``: P×33 depth in the units of x
    (MediaPipe's relative z); ``openpose18``: P×18×3 and ``coco17``: P×17×3 (x, y, visibility);
    ``scores``: (P,) detector scores; ``rois``: the landmark crops; ``segmentation``: H×W float32 person
    probability (the best person's; zeros when nobody is found); ``image_size``: (height, width).
    """

    landmarks: np.ndarray
    z: np.ndarray
    openpose18: np.ndarray
    coco17: np.ndarray
    scores: np.ndarray
    rois: list[Roi]
    segmentation: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class _Landmarks:
    landmarks: np.ndarray
    z: np.ndarray
    segmentation: np.ndarray


def _forward(loaded: LoadedModel, tensor: np.ndarray) -> list[np.ndarray]:
    batch = torch.from_numpy(tensor[None]).to(loaded.device, loaded.dtype)
    with torch.inference_mode():
        outputs = loaded.module(batch)
    return [output.float().cpu().numpy()[0] for output in outputs]


def detect(loaded: LoadedModel, image: np.ndarray, size: int, strides: tuple[int, ...]) -> Detections:
    """An SSD detector on the letterboxed photo: detections (after weighted NMS) in photo pixels."""
    roi = letterbox_roi(*image.shape[:2])
    regressors, logits = _forward(loaded, to_tensor_range(crop_roi(image, roi, size, "zero"), -1.0, 1.0))
    found = weighted_nms(decode_detections(regressors, logits, ssd_anchors(size, strides), size, MIN_DETECTION_SCORE),
                         NMS_THRESHOLD)  # fmt: skip
    corners = project_points(found.boxes.reshape(-1, 2, 2), roi).reshape(-1, 4)
    return Detections(corners, project_points(found.keypoints, roi), found.scores)


class BlazePoseEstimator:
    """``BlazePoseEstimator(detector, landmark).estimate(rgb) -> BlazePoseResult`` for RGB uint8 H×W×3.

    ``detector`` is a loaded ``mediapipe_pose_detection``, ``landmark`` a loaded
    ``mediapipe_pose_landmark_full`` (``checkpoints.load_model``).
    """

    def __init__(self, detector: LoadedModel, landmark: LoadedModel, max_people: int = 1) -> None:
        check_family(detector, ("mediapipe_blazepose_detector",), type(self).__name__)
        check_family(landmark, ("mediapipe_blazepose_landmark",), type(self).__name__)
        if max_people < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        self.detector, self.landmark, self.max_people = detector, landmark, max_people

    def __call__(self, image: np.ndarray) -> BlazePoseResult:
        return self.estimate(image)

    def detect(self, image: np.ndarray) -> Detections:
        """The person detections of ``image`` (photo pixels), best first."""
        check_images([image])
        return detect(self.detector, image, DETECTOR_SIZE, DETECTOR_STRIDES)

    def roi(self, detections: Detections, index: int = 0) -> Roi:
        """The landmark crop of one detection: centred on the hip centre, rotated upright."""
        keypoints = detections.keypoints[index]
        return alignment_roi(keypoints[0], keypoints[1], 90.0, ROI_SCALE)

    def landmarks(self, image: np.ndarray, roi: Roi) -> _Landmarks | None:
        """33 landmarks in photo pixels for one ROI, or None when the pose flag is below 0.5."""
        crop = crop_roi(image, roi, LANDMARK_SIZE, "replicate")
        raw, flag, segmentation, heatmap, _ = _forward(self.landmark, to_tensor_range(crop, 0.0, 1.0))
        if float(flag.reshape(-1)[0]) < MIN_PRESENCE:
            return None
        values = raw.reshape(-1, 5)
        points = values[:, :2] / LANDMARK_SIZE
        refined = refine_from_heatmap(points, heatmap.transpose(1, 2, 0), REFINE_KERNEL)
        pixels = project_points(refined, roi)[:POSE_LANDMARKS]
        landmarks = np.concatenate(
            [pixels, sigmoid(values[:POSE_LANDMARKS, 3:4]), sigmoid(values[:POSE_LANDMARKS, 4:5])], axis=1
        )
        z = values[:POSE_LANDMARKS, 2] / LANDMARK_SIZE * roi.width
        height, width = image.shape[:2]
        mask = sigmoid(segmentation[0]).astype(np.float32)
        photo_mask = cv2.warpAffine(mask, roi_matrix(roi, LANDMARK_SIZE), (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)  # fmt: skip
        return _Landmarks(landmarks, z, photo_mask)

    def estimate(self, image: np.ndarray) -> BlazePoseResult:
        """Run the whole graph on one photo."""
        detections = self.detect(image)
        found: list[tuple[float, Roi, _Landmarks]] = []
        for index in range(min(len(detections), self.max_people)):
            roi = self.roi(detections, index)
            result = self.landmarks(image, roi)
            if result is not None:
                found.append((float(detections.scores[index]), roi, result))
        height, width = image.shape[:2]
        landmarks = np.stack([f[2].landmarks for f in found]) if found else np.zeros((0, POSE_LANDMARKS, 4))
        return BlazePoseResult(
            landmarks=landmarks,
            z=np.stack([f[2].z for f in found]) if found else np.zeros((0, POSE_LANDMARKS)),
            openpose18=blazepose_to_openpose18(landmarks),
            coco17=blazepose_to_coco17(landmarks),
            scores=np.asarray([f[0] for f in found], dtype=np.float64),
            rois=[f[1] for f in found],
            segmentation=found[0][2].segmentation if found else np.zeros((height, width), dtype=np.float32),
            image_size=(height, width),
        )
