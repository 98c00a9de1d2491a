"""MediaPipe face mesh (face landmark, 468 points, 192×192).

Runs the published ``.tflite`` graph op for op (``mediapipe_graph.TFLiteGraphNet``). Input N×3×192×192
RGB in [0, 1]; ``forward(x) -> (landmarks N×1404×1×1, face_flag N×1×1×1)``: 468 × (x, y, z) in 192-pixel
units and the face-presence logit.
"""

from __future__ import annotations

from .mediapipe_graph import TFLiteGraphNet


class FaceMesh(TFLiteGraphNet):
    """MediaPipe's face landmark network."""

    def __init__(self) -> None:
        super().__init__("mediapipe_face_landmark")
