"""Garment-photo wrappers: U2Net cloth segmentation (4 classes) and U2Net / U2Netp saliency.

- Cloth segmentation (levindabhi/cloth-segmentation ``infer.py``): RGB, ``(x/255 - 0.5) / 0.5``, U2NET(3, 4),
  argmax over the classes of the fused output ``d0`` (the reference's ``log_softmax`` does not change it).
  The reference feeds the photo at its own size; by default the photo is resized (PIL bicubic, as in
  training) to the entry's 768 x 768 and the logits are resized back (bilinear), which bounds the cost of
  large photos. ``input_size=None`` is the reference's behaviour.
- Saliency (xuebinqin/U-2-Net ``u2net_test.py``): resize to 320 x 320 (antialiased bilinear here,
  ``skimage.transform.resize`` there), divide by the image's maximum, ImageNet mean/std, ``d0`` after the
  sigmoid, ``normPRED`` per image, resized back to the photo (bilinear) and thresholded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..checkpoints import LoadedModel
from ..vision.garment import SaliencyResult, norm_pred
from ..vision.parsing import ParsingResult, label_set_for
from .base import CompleteModelWrapper, WrongFamilyError, check_images
from .parsing import chunks, normalize, same_size_groups, to_batch, to_result

InputSize = tuple[int, int] | Literal["entry"] | None


def _input_size(value: InputSize, entry_size: Sequence[int]) -> tuple[int, int] | None:
    if value is None:
        return None
    height, width = entry_size if value == "entry" else value
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be positive (height, width), got {value}")
    return int(height), int(width)


def _check_task(loaded: LoadedModel, task: str, wrapper: str) -> None:
    if loaded.entry.family not in ("u2net", "u2netp") or loaded.entry.task != task:
        raise WrongFamilyError(
            f"{wrapper} wraps U2Net {task} checkpoints, not {loaded.entry.family} {loaded.entry.task} "
            f"({loaded.entry.id})"
        )


class ClothSegmenter(CompleteModelWrapper[ParsingResult]):
    """U2Net cloth segmentation -> ClothSeg-4 ``ParsingResult`` (``mask("upper")``, ``mask("garments")``...).

    ``input_size``: ``"entry"`` (768 x 768), an explicit (h, w), or None for the photo's own size.
    """

    def __init__(self, loaded: LoadedModel, *, input_size: InputSize = "entry", batch_size: int = 4) -> None:
        _check_task(loaded, "cloth_segmentation", type(self).__name__)
        super().__init__(loaded)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.preprocess = loaded.entry.preprocess
        self.input_size = _input_size(input_size, self.preprocess["input_size"])
        self.label_set = label_set_for(loaded.entry.labels or {})

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The photo at the network's input size (PIL bicubic), or as it is when ``input_size`` is None."""
        if self.input_size is None or image.shape[:2] == self.input_size:
            return image
        height, width = self.input_size
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BICUBIC))

    def logits(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size prepared photos -> N x 4 x h x w logits of the fused output ``d0``."""
        batch = normalize(to_batch(images), self.preprocess).to(device=self.device, dtype=self.loaded.dtype)
        with torch.no_grad():
            logits = self.module(batch)[0].float()
        if logits.shape[1] != self.label_set.num_classes:
            raise ValueError(f"{self.entry.id} returned {logits.shape[1]} classes, expected {self.label_set.name}")
        return logits

    def run_batch(self, images: list[np.ndarray]) -> list[ParsingResult]:
        check_images(images)
        prepared = [self.prepare(image) for image in images]
        results: dict[int, ParsingResult] = {}
        for indices in same_size_groups(prepared, self.batch_size):
            logits = self.logits([prepared[i] for i in indices])
            for index, image_logits in zip(indices, logits, strict=True):
                size = images[index].shape[:2]
                if image_logits.shape[-2:] != size:
                    image_logits = F.interpolate(image_logits[None], size=size, mode="bilinear", align_corners=False)[0]
                results[index] = to_result(image_logits, self.label_set)
        return [results[i] for i in range(len(images))]


class SaliencyMasker(CompleteModelWrapper[SaliencyResult]):
    """U2Net / U2Netp salient-object maps of garment photos -> ``SaliencyResult`` (map in [0, 1], mask).

    ``input_size``: ``"entry"`` (320 x 320) or an explicit (h, w); ``threshold``: the mask's level.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        input_size: tuple[int, int] | Literal["entry"] = "entry",
        threshold: float = 0.5,
        batch_size: int = 4,
    ) -> None:
        _check_task(loaded, "segmentation", type(self).__name__)
        super().__init__(loaded)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.batch_size = batch_size
        self.threshold = threshold
        self.preprocess = loaded.entry.preprocess
        self.input_size = _input_size(input_size, self.preprocess["input_size"])

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """1 x 3 x h x w float photo (0..255) at the input size, antialiased bilinear."""
        batch = to_batch([image])
        if batch.shape[-2:] == self.input_size:
            return batch
        return F.interpolate(batch, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)

    def run_batch(self, images: list[np.ndarray]) -> list[SaliencyResult]:
        check_images(images)
        results: list[SaliencyResult] = []
        for indices in chunks(range(len(images)), self.batch_size):
            batch = torch.cat([self.prepare(images[i]) for i in indices])
            batch = normalize(batch, self.preprocess).to(device=self.device, dtype=self.loaded.dtype)
            with torch.no_grad():
                fused = self.module(batch)[0][:, :1].float()
            for index, prediction in zip(indices, fused, strict=True):
                size = images[index].shape[:2]
                saliency = norm_pred(prediction)[None]
                if saliency.shape[-2:] != size:
                    saliency = F.interpolate(saliency, size=size, mode="bilinear", align_corners=False, antialias=True)
                saliency = saliency[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
                results.append(SaliencyResult(saliency, self.threshold))
        return results
