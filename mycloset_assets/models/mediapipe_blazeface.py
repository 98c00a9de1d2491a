"""BlazeFace short range (MediaPipe face detection, front camera model, 128×128).

Runs the published ``.tflite`` graph op for op (``mediapipe_graph.TFLiteGraphNet``). Input N×3×128×128
RGB in [-1, 1]; ``forward(x) -> (regressors N×896×16, classificators N×896×1)``: per SSD anchor a box
(cx, cy, w, h) and six keypoints (eyes, nose tip, mouth, ear tragions) in 128-pixel units relative to the
anchor, and a logit.
"""

from __future__ import annotations

from .mediapipe_graph import TFLiteGraphNet


class BlazeFaceShortRange(TFLiteGraphNet):
    """MediaPipe's short-range face detector."""

    def __init__(self) -> None:
        super().__init__("mediapipe_face_detection_short_range")
