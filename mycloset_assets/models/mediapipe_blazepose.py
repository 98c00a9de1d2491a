"""BlazePose (MediaPipe Pose, legacy solution): the person detector and the GHUM full landmark network.

Both run their published ``.tflite`` graphs op for op (``mediapipe_graph.TFLiteGraphNet``) with the
file's own tensor names. Inputs are N×3×H×W RGB in [-1, 1] (detector, 224×224) or [0, 1] (landmarks,
256×256), as MediaPipe's graphs feed them.
"""

from __future__ import annotations

from .mediapipe_graph import TFLiteGraphNet


class BlazePoseDetector(TFLiteGraphNet):
    """``forward(x) -> (regressors N×2254×12, scores N×2254×1)``: per SSD anchor a box (cx, cy, w, h) and
    four keypoints (hip centre, full-body circle point, shoulder centre, upper-body circle point) in
    224-pixel units relative to the anchor, and a logit."""

    def __init__(self) -> None:
        super().__init__("mediapipe_pose_detection")


class BlazePoseLandmark(TFLiteGraphNet):
    """``forward(x) -> (landmarks N×195, pose_flag N×1, segmentation N×1×256×256, heatmap N×39×64×64,
    world N×117)``: 39 landmarks × (x, y, z, visibility logit, presence logit) in 256-pixel units, the
    person-presence score (already a probability), segmentation logits, the refinement heatmaps and the
    metric world landmarks (39 × 3)."""

    def __init__(self) -> None:
        super().__init__("mediapipe_pose_landmark_full")
