"""MediaPipe selfie segmentation (general, 256×256): a MobileNetV3-style encoder-decoder person mask.

Runs the published ``.tflite`` graph op for op (``mediapipe_graph.TFLiteGraphNet``). Input N×3×256×256
RGB in [0, 1]; ``forward(x) -> (mask N×1×256×256,)``, the person probability (the graph ends in a sigmoid).
"""

from __future__ import annotations

from .mediapipe_graph import TFLiteGraphNet


class SelfieSegmentation(TFLiteGraphNet):
    """MediaPipe's general selfie-segmentation network."""

    def __init__(self) -> None:
        super().__init__("mediapipe_selfie_segmentation")
