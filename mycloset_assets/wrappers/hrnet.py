"""HRNet top-down pose: an image and person boxes in, COCO-17 keypoints per person out.

Per person: box -> center and scale -> affine crop at the network input size -> normalised RGB tensor ->
heatmaps (with the flip test and optional multi-scale fusion) -> ``decode_heatmaps`` -> keypoint validation.
The defaults are the reference's test settings (leoxiaobin/deep-high-resolution-net.pytorch, COCO
``TEST.FLIP_TEST``, ``SHIFT_HEATMAP`` and ``POST_PROCESS`` all true; one scale).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, overload

import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.hrnet import (
    DEFAULT_MAX_LIMB_RATIO,
    DEFAULT_SCORE_THRESHOLD,
    Rejection,
    box_to_center_scale,
    crop_person,
    decode_heatmaps,
    fuse_flip,
    fuse_scales,
    validate_keypoints,
)
from .base import CompleteModelWrapper

Box = Sequence[float]
"""A person box ``(x, y, w, h)`` in image pixels: top-left corner, width and height."""


@cache
def _keypoint_tables() -> dict[str, Any]:
    """The package's keypoint tables (``mycloset_assets/vision/data/keypoints.json``)."""
    text = resources.files("mycloset_assets.vision").joinpath("data", "keypoints.json").read_text()
    return json.loads(text)


@dataclass
class PersonPose:
    """One person's COCO-17 keypoints.

    ``keypoints`` (17, 2) float32: (x, y) in image pixels (pixel centres at integer coordinates), every
    keypoint kept whether valid or not; ``scores`` (17,) float32: heatmap maxima (the reference's
    ``maxvals``); ``valid`` (17,) bool: passed every validation rule; ``rejections``: why the others failed.
    ``box`` (4,) float64 is the person box as given (x, y, w, h); ``center`` and ``scale`` (2,) float32 the
    crop it gave (scale = crop size / 200); ``names`` the keypoint names in order.
    """

    box: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    rejections: list[Rejection]
    names: tuple[str, ...]


@dataclass
class PoseResult:
    """The people of one image, in the order of their boxes; ``image_size`` is (height, width)."""

    people: list[PersonPose]
    image_size: tuple[int, int]

    def to_array(self) -> np.ndarray:
        """P x 17 x 3 float32 (x, y, score), the layout of COCO keypoint results."""
        if not self.people:
            return np.zeros((0, 17, 3), dtype=np.float32)
        return np.stack([np.concatenate([p.keypoints, p.scores[:, None]], axis=1) for p in self.people])


@dataclass
class PersonHeatmaps:
    """Fused heatmaps of an image's people before decoding: ``heatmaps`` P x 17 x h x w float32 in the frame of
    each person's crop (``centers``, ``scales`` P x 2 float32), ready for ``decode_heatmaps``."""

    heatmaps: np.ndarray
    centers: np.ndarray
    scales: np.ndarray


class HRNetPoseWrapper(CompleteModelWrapper[PoseResult]):
    """Top-down COCO-17 pose with an ``hrnet_pose`` checkpoint.

    ``wrapper(image, boxes)`` -> ``PoseResult``; ``wrapper([images], [boxes, ...])`` -> a list. ``boxes`` per
    image is a list of ``(x, y, w, h)``; ``None`` means one person filling the whole image. Crops of all
    people (all images, all scales) run through the network in batches of ``batch_size``.

    ``input_size`` (height, width) overrides the entry's input size (HRNet takes multiples of 32);
    ``flip_test`` averages with the mirrored crop (one-pixel shift when ``shift_heatmap``); ``scales`` are crop
    size factors whose heatmaps are fused by ``fuse_scales`` (1.0 = the padded box); ``score_threshold`` and
    ``max_limb_ratio`` are the validation limits.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        input_size: tuple[int, int] | None = None,
        flip_test: bool = True,
        shift_heatmap: bool = True,
        scales: Sequence[float] = (1.0,),
        batch_size: int = 16,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        max_limb_ratio: float = DEFAULT_MAX_LIMB_RATIO,
    ) -> None:
        super().__init__(loaded)
        if self.entry.family != "hrnet_pose":
            raise ValueError(f"HRNetPoseWrapper needs an 'hrnet_pose' checkpoint, got family {self.entry.family!r}")
        keypoints = self.entry.keypoints or {}
        if keypoints.get("set") != "coco17":
            raise ValueError(f"{self.entry.id}: keypoint set {keypoints.get('set')!r} is not supported (need coco17)")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be a non-empty list of positive crop factors, got {list(scales)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        preprocess = self.entry.preprocess
        height, width = input_size if input_size is not None else preprocess["input_size"]
        self.input_size = (int(height), int(width))
        self.flip_test = flip_test
        self.shift_heatmap = shift_heatmap
        self.scales = tuple(float(s) for s in scales)
        self.batch_size = batch_size
        self.score_threshold = score_threshold
        self.max_limb_ratio = max_limb_ratio
        self.names = tuple(keypoints["names"])
        self.flip_pairs = [tuple(pair) for pair in _keypoint_tables()["coco17_flip_pairs"]]
        self._bgr = preprocess.get("channel_order", "RGB") == "BGR"
        self._value_range = float(preprocess.get("value_range", 255))
        self._mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(preprocess["std"], dtype=torch.float32).view(3, 1, 1)

    @overload
    def __call__(self, images: np.ndarray, boxes: Sequence[Box] | None = None) -> PoseResult: ...

    @overload
    def __call__(
        self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box] | None] | None = None
    ) -> list[PoseResult]: ...

    def __call__(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        boxes: Sequence[Box] | Sequence[Sequence[Box] | None] | None = None,
    ) -> PoseResult | list[PoseResult]:
        if isinstance(images, np.ndarray):
            return self.run_batch([images], [boxes])[0]  # type: ignore[list-item]
        return self.run_batch(list(images), boxes)  # type: ignore[arg-type]

    def run_batch(
        self, images: list[np.ndarray], boxes: Sequence[Sequence[Box] | None] | None = None
    ) -> list[PoseResult]:
        """Poses of the people in each image (boxes per image, ``None`` = the whole image)."""
        per_image = self._boxes(images, boxes)
        maps = self._heatmaps(images, per_image)
        results = []
        for image, image_boxes, found in zip(images, per_image, maps, strict=True):
            results.append(self._decode(image, image_boxes, found))
        return results

    def person_heatmaps(self, image: np.ndarray, boxes: Sequence[Box] | None = None) -> PersonHeatmaps:
        """The fused heatmaps of one image's people (flip test and scale fusion applied), before decoding."""
        per_image = self._boxes([image], [boxes])
        return self._heatmaps([image], per_image)[0]

    def _boxes(self, images: list[np.ndarray], boxes: Sequence[Sequence[Box] | None] | None) -> list[np.ndarray]:
        """Check the images and return each image's boxes as P x 4 float64 (the whole image for ``None``)."""
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} box lists for {len(images)} images; pass one list (or None) per image")
        out = []
        for i, image in enumerate(images):
            if not (
                isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            ):
                shape = getattr(image, "shape", None)
                dtype = getattr(image, "dtype", type(image).__name__)
                raise ValueError(
                    f"image {i} must be an RGB uint8 H x W x 3 array (load it with vision.images.load_image), "
                    f"got shape {shape} and dtype {dtype}"
                )
            given = None if boxes is None else boxes[i]
            if given is None:
                array = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
            else:
                array = np.asarray(given, dtype=np.float64) if len(given) else np.zeros((0, 4))
                if array.ndim != 2 or array.shape[1] != 4:
                    raise ValueError(
                        f"boxes of image {i} must be a list of (x, y, w, h) boxes, got an array of shape {array.shape}"
                    )
            out.append(array)
        return out

    def _heatmaps(self, images: list[np.ndarray], per_image: list[np.ndarray]) -> list[PersonHeatmaps]:
        """Crop every person at every scale, run the network once over all crops, fuse each person's scales."""
        height, width = self.input_size
        frames: list[tuple[np.ndarray, np.ndarray]] = []
        crops = []
        for image, image_boxes in zip(images, per_image, strict=True):
            for box in image_boxes:
                center, scale = box_to_center_scale(box, (width, height))
                frames.append((center, scale))
                crops.extend(crop_person(image, center, scale * np.float32(f), (width, height)) for f in self.scales)
        maps = self._forward(crops)
        n_scales = len(self.scales)
        out = []
        start = 0
        for image_boxes in per_image:
            count = len(image_boxes)
            chunk = maps[start * n_scales : (start + count) * n_scales]
            people = frames[start : start + count]
            start += count
            if n_scales > 1 and count:
                fused = fuse_scales([chunk[k::n_scales] for k in range(n_scales)], self.scales)
            else:
                fused = chunk
            centers = np.stack([c for c, _ in people]) if people else np.zeros((0, 2), dtype=np.float32)
            scales = np.stack([s for _, s in people]) if people else np.zeros((0, 2), dtype=np.float32)
            out.append(PersonHeatmaps(fused, centers, scales))
        return out

    def _forward(self, crops: list[np.ndarray]) -> np.ndarray:
        """Network heatmaps (float32 numpy) of uint8 crops, with the flip test, in batches."""
        results = []
        for start in range(0, len(crops), self.batch_size):
            batch = self._to_tensor(np.stack(crops[start : start + self.batch_size]))
            with torch.inference_mode():
                maps = self.module(batch).float().cpu().numpy()
                if self.flip_test:
                    flipped = self.module(batch.flip(3)).float().cpu().numpy()
                    maps = fuse_flip(maps, flipped, self.flip_pairs, shift=self.shift_heatmap)
            results.append(maps)
        if not results:
            return np.zeros((0, len(self.names), self.input_size[0] // 4, self.input_size[1] // 4), dtype=np.float32)
        return np.concatenate(results)

    def _to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        """B x H x W x 3 uint8 -> normalised B x 3 x H x W, as ``ToTensor`` + ``Normalize``."""
        if self._bgr:
            crops = crops[..., ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(self._value_range)
        tensor = tensor.sub(self._mean).div(self._std)
        return tensor.to(device=self.device, dtype=self.loaded.dtype)

    def _decode(self, image: np.ndarray, boxes: np.ndarray, found: PersonHeatmaps) -> PoseResult:
        height, width = image.shape[:2]
        if len(boxes) == 0:
            return PoseResult([], (height, width))
        coords, maxvals = decode_heatmaps(found.heatmaps, found.centers, found.scales)
        people = []
        for i, box in enumerate(boxes):
            scores = maxvals[i, :, 0].astype(np.float32)
            check = validate_keypoints(
                coords[i],
                scores,
                image_height=height,
                image_width=width,
                names=self.names,
                score_threshold=self.score_threshold,
                max_limb_ratio=self.max_limb_ratio,
            )
            people.append(
                PersonPose(
                    box=box.copy(),
                    center=found.centers[i],
                    scale=found.scales[i],
                    keypoints=coords[i],
                    scores=scores,
                    valid=check.valid,
                    rejections=check.rejections,
                    names=self.names,
                )
            )
        return PoseResult(people, (height, width))
