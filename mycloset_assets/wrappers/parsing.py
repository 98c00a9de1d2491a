"""Human parsing and person segmentation wrappers: SCHP, Graphonomy, DeepLabV3+ and torchvision DeepLabV3.

Each takes RGB uint8 H x W x 3 photos and returns a ``ParsingResult`` (label map at the photo's size, the
label set's names, part masks). Pre-processing follows the registry entry's ``preprocess`` block (input
size, channel order, mean/std) and each reference's inference script:

- SCHP (``simple_extractor.py``): affine warp of the whole photo to the input size, BGR, mean/std; the
  fusion logits upsampled (bilinear, align_corners=True) and warped back with ``transform_logits``; argmax.
  ``flip=True`` adds ``evaluate.py``'s flip test (left/right channels swapped).
- Graphonomy (``exp/inference/inference.py``): per scale a PIL bilinear resize and a flipped copy, BGR,
  ``2x/255 - 1``; ``(out + flip(swap(out_flipped))) / 2`` upsampled to the photo's size (align_corners=True),
  summed over scales, argmax.
- DeepLabV3+ (VainF ``predict.py``): the whole photo, ImageNet mean/std, argmax. torchvision DeepLabV3: its
  preset resizes the shorter side to 520 first (antialiased bilinear); logits go back to the photo's size
  bilinearly.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from ..checkpoints import LoadedModel
from ..vision.images import check_working_size
from ..vision.parsing import (
    LabelSet,
    ParsingResult,
    label_set_for,
    schp_affine,
    schp_center_scale,
    warp_image,
    warp_logits_back,
)
from .base import CompleteModelWrapper, WrongFamilyError, check_family, check_images

GRAPHONOMY_SCALES: tuple[float, ...] = (1.0, 0.5, 0.75, 1.25, 1.5, 1.75)
"""The scales of Graphonomy's reference inference (the first one sets the accumulation size there)."""


def normalize(batch: torch.Tensor, preprocess: Mapping[str, Any]) -> torch.Tensor:
    """N x 3 x H x W float RGB in 0..255 -> the network's input per a registry ``preprocess`` block.

    ``value_range``: 255 divides by 255; ``max`` divides each image by its own maximum (U2Net's
    ``ToTensorLab``). Then ``channel_order`` (RGB or BGR) and ``(x - mean) / std`` in that order.
    """
    value_range = preprocess.get("value_range", 255)
    if value_range == "max":
        peak = batch.amax(dim=(1, 2, 3), keepdim=True)
        batch = batch / torch.where(peak > 0, peak, torch.ones_like(peak))
    else:
        batch = batch / float(value_range)
    order = str(preprocess.get("channel_order", "RGB")).upper()
    if order == "BGR":
        batch = batch.flip(1)
    elif order != "RGB":
        raise ValueError(f"channel_order must be RGB or BGR, got {order!r}")
    mean = torch.tensor(preprocess["mean"], dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / std


def to_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Same-size H x W x 3 uint8 images -> N x 3 x H x W float32 in 0..255."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def chunks(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    """``indices`` in runs of at most ``size``."""
    for start in range(0, len(indices), size):
        yield list(indices[start : start + size])


def same_size_groups(images: Sequence[np.ndarray], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``images`` grouped by shape, in batches of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        groups[image.shape].append(index)
    for indices in groups.values():
        yield from chunks(indices, batch_size)


def to_result(logits: torch.Tensor, label_set: LabelSet) -> ParsingResult:
    """C x H x W logits -> the argmax label map as a ParsingResult."""
    labels = logits.argmax(0).to(torch.uint8).cpu().numpy()
    return ParsingResult(labels, label_set.name, label_set.names)


class _Parser(CompleteModelWrapper[ParsingResult]):
    """A parsing wrapper: ``photo_logits`` per family, the argmax and the entry's label set shared."""

    families: tuple[str, ...] = ()

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 4) -> None:
        check_family(loaded, self.families, type(self).__name__)
        super().__init__(loaded)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.label_set = label_set_for(loaded.entry.labels or {})
        self.preprocess = loaded.entry.preprocess

    def _input(self, batch: torch.Tensor) -> torch.Tensor:
        return normalize(batch, self.preprocess).to(device=self.device, dtype=self.loaded.dtype)

    @abstractmethod
    def photo_logits(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """C x H x W float32 class scores per photo, at the photo's size (their argmax is the label map)."""

    def run_batch(self, images: list[np.ndarray]) -> list[ParsingResult]:
        check_images(images)
        return [to_result(logits, self.label_set) for logits in self.photo_logits(images)]

    def _check_classes(self, logits: torch.Tensor) -> None:
        if logits.shape[1] != self.label_set.num_classes:
            raise ValueError(
                f"{self.entry.id} returned {logits.shape[1]} classes but its label set {self.label_set.name} "
                f"has {self.label_set.num_classes}"
            )


class SCHPParser(_Parser):
    """SCHP (LIP-20, ATR-18): affine crop at the entry's input size, fusion logits warped back to the photo.

    ``input_size`` (h, w) overrides the entry's (473 x 473 for LIP, 512 x 512 for ATR); ``flip`` averages
    with the flipped photo's logits (left/right classes swapped), which ``simple_extractor.py`` does not do.
    """

    families = ("schp",)

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        input_size: tuple[int, int] | None = None,
        flip: bool = False,
        batch_size: int = 4,
    ) -> None:
        super().__init__(loaded, batch_size=batch_size)
        height, width = input_size or self.preprocess["input_size"]
        self.input_size = (int(height), int(width))
        self.flip = flip

    def crop(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The photo warped to the input size, and the inverse affine that takes logits back."""
        center, scale = schp_center_scale(image.shape[0], image.shape[1], self.input_size)
        forward = schp_affine(center, scale, self.input_size)
        inverse = schp_affine(center, scale, self.input_size, inverse=True)
        return warp_image(np.ascontiguousarray(image), forward, self.input_size), inverse

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Network input N x 3 x h x w -> fusion logits N x C x h x w at the input size."""
        count = batch.shape[0]
        if self.flip:
            batch = torch.cat([batch, batch.flip(-1)])
        with torch.no_grad():
            [[_, fusion], _] = self.module(batch)
        self._check_classes(fusion)
        if self.flip:
            swapped = fusion[count:][:, list(self.label_set.flip_permutation)].flip(-1)
            fusion = (fusion[:count] + swapped) / 2
        return F.interpolate(fusion.float(), size=self.input_size, mode="bilinear", align_corners=True)

    def photo_logits(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        results: list[torch.Tensor] = []
        for indices in chunks(range(len(images)), self.batch_size):
            crops, inverses = zip(*(self.crop(images[i]) for i in indices), strict=True)
            logits = self.logits(self._input(to_batch(crops))).permute(0, 2, 3, 1).cpu().numpy()
            for index, crop_logits, inverse in zip(indices, logits, inverses, strict=True):
                height, width = images[index].shape[:2]
                back = warp_logits_back(crop_logits, inverse, height, width)
                results.append(torch.from_numpy(back).permute(2, 0, 1))
        return results


class GraphonomyParser(_Parser):
    """Graphonomy (CIHP-20): multi-scale and flip averaging as the reference inference.

    ``scales`` defaults to the reference's six; ``(1.0,)`` with ``flip=True`` is the cheap single-scale
    variant. Every scale's averaged logits are upsampled to the photo's size and summed.
    """

    families = ("graphonomy",)

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        scales: Sequence[float] = GRAPHONOMY_SCALES,
        flip: bool = True,
        batch_size: int = 4,
    ) -> None:
        super().__init__(loaded, batch_size=batch_size)
        if not scales or any(scale <= 0 for scale in scales):
            raise ValueError(f"scales must be a non-empty list of positive factors, got {list(scales)}")
        self.scales = tuple(float(scale) for scale in scales)
        self.flip = flip

    @staticmethod
    def resize(image: np.ndarray, scale: float) -> np.ndarray:
        """PIL bilinear resize to ``(int(w * scale), int(h * scale))``, as ``Scale_only_img``."""
        height, width = image.shape[:2]
        size = (int(width * scale), int(height * scale))
        if min(size) < 1:
            raise ValueError(f"scale {scale} shrinks a {height} x {width} image to nothing")
        if size == (width, height):
            return image
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR))

    def scale_logits(self, images: Sequence[np.ndarray], scale: float) -> torch.Tensor:
        """Same-size photos -> flip-averaged logits at one scale, upsampled to the photos' size."""
        height, width = images[0].shape[:2]
        resized = [self.resize(image, scale) for image in images]
        if self.flip:
            resized += [np.ascontiguousarray(image[:, ::-1]) for image in resized]
        with torch.no_grad():
            logits = self.module(self._input(to_batch(resized))).float()
        self._check_classes(logits)
        if self.flip:
            count = len(images)
            swapped = logits[count:][:, list(self.label_set.flip_permutation)].flip(-1)
            logits = (logits[:count] + swapped) / 2
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        return logits

    def photo_logits(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        results: dict[int, torch.Tensor] = {}
        for indices in same_size_groups(images, self.batch_size):
            group = [images[i] for i in indices]
            total = sum(self.scale_logits(group, scale) for scale in self.scales)
            results.update(zip(indices, total, strict=True))
        return [results[i] for i in range(len(images))]


class DeepLabSegmenter(_Parser):
    """DeepLabV3+ (VainF) and torchvision DeepLabV3 (VOC-21): ``mask("person")`` is the person.

    ``resize_shorter_side="entry"`` takes the entry's (520 for torchvision's preset, none for VainF's whole
    image); ``None`` feeds the photo as it is, a number resizes its shorter side to that many pixels. Logits
    are resized back to the photo (bilinear).
    """

    families = ("deeplabv3plus", "deeplabv3")

    def __init__(
        self, loaded: LoadedModel, *, resize_shorter_side: int | Literal["entry"] | None = "entry", batch_size: int = 4
    ) -> None:
        super().__init__(loaded, batch_size=batch_size)
        if resize_shorter_side == "entry":
            resize_shorter_side = self.preprocess.get("resize_shorter_side")
        if resize_shorter_side is not None and resize_shorter_side < 1:
            raise ValueError(f"resize_shorter_side must be positive or None, got {resize_shorter_side}")
        self.resize_shorter_side = resize_shorter_side

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W photos (float, 0..255) -> the network input: shorter side resized as torchvision's
        ``SemanticSegmentation`` preset does (on uint8, antialiased bilinear) when set, then mean/std."""
        if self.resize_shorter_side is not None:
            check_working_size(*batch.shape[-2:])
            batch = TF.resize(batch.to(torch.uint8), [self.resize_shorter_side], antialias=True).float()
        return self._input(batch)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W photos (float, 0..255) -> N x 21 x H x W logits at the photos' size."""
        size = batch.shape[-2:]
        with torch.no_grad():
            out = self.module(self.prepare(batch))
        logits = (out["out"] if isinstance(out, Mapping) else out).float()
        self._check_classes(logits)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits

    def photo_logits(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        results: dict[int, torch.Tensor] = {}
        for indices in same_size_groups(images, self.batch_size):
            results.update(zip(indices, self.logits(to_batch([images[i] for i in indices])), strict=True))
        return [results[i] for i in range(len(images))]


PARSERS: dict[str, type[_Parser]] = {
    "schp": SCHPParser,
    "graphonomy": GraphonomyParser,
    "deeplabv3plus": DeepLabSegmenter,
    "deeplabv3": DeepLabSegmenter,
}


def parsing_wrapper(loaded: LoadedModel, **options: Any) -> CompleteModelWrapper[ParsingResult]:
    """The parsing wrapper for a loaded checkpoint's family, built with ``options``."""
    if loaded.entry.family not in PARSERS:
        raise WrongFamilyError(
            f"no parsing wrapper for family {loaded.entry.family} ({loaded.entry.id}); "
            f"parsing families: {', '.join(PARSERS)}"
        )
    return PARSERS[loaded.entry.family](loaded, **options)
