"""MediaPipe face detection (BlazeFace short range) and face mesh: legacy solution graphs, static images.

Detection: photo letterboxed to 128×128 (zero border, [-1, 1]) -> SSD anchors, score ≥ 0.5, weighted NMS
(IoU 0.3) -> boxes and six keypoints in photo pixels. Mesh: the detection's box turned so that the eyes
are level, ×1.5, square -> 192×192 crop ([0, 1]) -> 468 landmarks projected back when the face flag's
sigmoid reaches 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.mediapipe import Detections, Roi, crop_roi, normalize_radians, project_points, sigmoid, to_tensor_range
from .base import check_family, check_images
from .mediapipe_pose import detect

DETECTOR_SIZE = 128
DETECTOR_STRIDES = (8, 16, 16, 16)
MESH_SIZE = 192
MESH_SCALE = 1.5
MIN_FACE_PRESENCE = 0.5


@dataclass(frozen=True)
class FaceResult:
    """Faces in one photo, best first: ``boxes`` F×4 (xmin, ymin, xmax, ymax), ``keypoints`` F×6×2 (right
    eye, left eye, nose tip, mouth centre, right and left ear tragion), ``scores`` (F,), all photo pixels;
    ``mesh``: F×468×3 (x, y, z) for the faces the mesh confirmed (None when no mesh network was given)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    mesh: np.ndarray | None

    def __len__(self) -> int:
        return len(self.scores)


def face_roi(box: np.ndarray, keypoints: np.ndarray, scale: float = MESH_SCALE) -> Roi:
    """``DetectionsToRectsCalculator`` (eyes level, target angle 0) + ``RectTransformationCalculator``
    (×``scale``, square on the long side) for one face, in pixels."""
    (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
    rotation = normalize_radians(0.0 - math.atan2(-(y1 - y0), x1 - x0))
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    return Roi((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0, side, side, rotation)


class FaceDetector:
    """``FaceDetector(detector, mesh=None).detect(rgb) -> FaceResult`` for a loaded
    ``mediapipe_face_detection_short_range`` and optionally a loaded ``mediapipe_face_landmark``."""

    def __init__(self, detector: LoadedModel, mesh: LoadedModel | None = None, max_faces: int = 1) -> None:
        check_family(detector, ("mediapipe_blazeface",), type(self).__name__)
        if mesh is not None:
            check_family(mesh, ("mediapipe_facemesh",), type(self).__name__)
        self.detector, self.mesh_model, self.max_faces = detector, mesh, max_faces

    def __call__(self, image: np.ndarray) -> FaceResult:
        return self.detect(image)

    def detect(self, image: np.ndarray) -> FaceResult:
        """Detect faces, then (with a mesh network) the landmarks of the best ``max_faces``."""
        check_images([image])
        found: Detections = detect(self.detector, image, DETECTOR_SIZE, DETECTOR_STRIDES)
        mesh = None
        if self.mesh_model is not None:
            meshes = [self.landmarks(image, face_roi(found.boxes[i], found.keypoints[i]))
                      for i in range(min(len(found), self.max_faces))]  # fmt: skip
            kept = [m for m in meshes if m is not None]
            mesh = np.stack(kept) if kept else np.zeros((0, 468, 3))
        return FaceResult(found.boxes.astype(np.float64), found.keypoints.astype(np.float64),
                          found.scores.astype(np.float64), mesh)  # fmt: skip

    def landmarks(self, image: np.ndarray, roi: Roi) -> np.ndarray | None:
        """468 × (x, y, z) in photo pixels for one face ROI, or None when the face flag is below 0.5."""
        assert self.mesh_model is not None
        tensor = to_tensor_range(crop_roi(image, roi, MESH_SIZE, "replicate"), 0.0, 1.0)
        batch = torch.from_numpy(tensor[None]).to(self.mesh_model.device, self.mesh_model.dtype)
        with torch.inference_mode():
            points, flag = self.mesh_model.module(batch)
        if float(sigmoid(flag.float().cpu().numpy().reshape(-1)[0])) < MIN_FACE_PRESENCE:
            return None
        values = points.float().cpu().numpy().reshape(-1, 3) / MESH_SIZE
        pixels = project_points(values[:, :2], roi)
        return np.concatenate([pixels, values[:, 2:3] * roi.width], axis=1)
