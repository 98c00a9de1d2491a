"""MediaPipe selfie segmentation (legacy solution graph, general model): a person mask at photo size.

The photo is stretched to 256×256 (``keep_aspect_ratio: false``, zero border, [0, 1]), the network's
sigmoid mask is resized back to the photo bilinearly (``TensorsToSegmentationCalculator``), and
``person_mask`` thresholds it at 0.5.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.mediapipe import Roi, crop_roi, to_tensor_range
from .base import CompleteModelWrapper, check_family, check_images

INPUT_SIZE = 256
MASK_THRESHOLD = 0.5


def person_mask(probability: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """A probability mask -> uint8 0/255 person mask (what ``mycloset person-mask`` writes)."""
    return np.where(np.asarray(probability) > threshold, 255, 0).astype(np.uint8)


class SelfieSegmenter(CompleteModelWrapper[np.ndarray]):
    """``SelfieSegmenter(loaded)(rgb) -> H×W float32`` person probability, for a loaded
    ``mediapipe_selfie_segmentation``; images of one size share a batch."""

    def __init__(self, loaded: LoadedModel) -> None:
        check_family(loaded, ("mediapipe_selfie_segmentation",), type(self).__name__)
        super().__init__(loaded)

    def run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        check_images(images)
        tensors = []
        for image in images:
            height, width = image.shape[:2]
            crop = crop_roi(image, Roi(width / 2.0, height / 2.0, float(width), float(height)), INPUT_SIZE, "zero")
            tensors.append(to_tensor_range(crop, 0.0, 1.0))
        results = []
        for image, tensor in zip(images, tensors, strict=True):
            batch = torch.from_numpy(tensor[None]).to(self.device, self.loaded.dtype)
            with torch.inference_mode():
                (mask,) = self.module(batch)
            probability = mask[0, 0].float().cpu().numpy()
            height, width = image.shape[:2]
            results.append(cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR))
        return results
