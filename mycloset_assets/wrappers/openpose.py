"""OpenPose body and hand wrappers: an RGB image in, people (OpenPose-18 and COCO-17) or hand keypoints out.

Pre-processing is the reference's (Hzzone/pytorch-openpose ``Body.__call__`` / ``Hand.__call__``): the image in
BGR order is resized (bicubic) so that its height is ``scale * box_size`` for each search scale, padded at the
bottom and right to a multiple of the stride with 128, mapped to ``/ 256 - 0.5``; the network's maps are
upsampled by the stride (bicubic), cropped to the unpadded size, resized to the image (bicubic) and averaged
over the scales; then :mod:`mycloset_assets.vision.openpose` decodes them.

One deliberate difference: with several body scales the reference accumulates
``heatmap_avg += heatmap_avg + heatmap / n`` (doubling the earlier scales' heatmaps); here heatmaps are averaged
like the PAFs. With the default single scale ``[0.5]`` the two are identical.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import torch

from ..checkpoints import LoadedModel
from ..vision.images import check_working_size
from ..vision.openpose import (
    BODY_PARTS,
    HandBox,
    decode_body,
    decode_hand,
    hand_boxes,
    maps_to_image,
    network_input,
    openpose18_to_coco17,
    scale_factors,
)
from .base import CompleteModelWrapper


@dataclass(frozen=True)
class BodyPoseResult:
    """People in one image, in the reference's order.

    ``keypoints``: P x 18 x 3 (x, y, score) in OpenPose-18 order, image pixels; ``keypoints_coco17``: the same
    people as P x 17 x 3 in COCO-17 order (no neck). Missing parts are ``(-1, -1, 0)``. ``scores``: (P,) each
    person's total score (part scores + limb scores); ``part_counts``: (P,) parts found. ``image_size``:
    (height, width) of the image.
    """

    keypoints: np.ndarray
    keypoints_coco17: np.ndarray
    scores: np.ndarray
    part_counts: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.keypoints)


@dataclass(frozen=True)
class HandPoseResult:
    """21 hand keypoints (x, y, score) in OpenPose hand order, in the pixels of the image given to the wrapper;
    a keypoint with no map above the threshold is ``(-1, -1, 0)``. ``box``: the hand crop in that image
    (``None`` when the image itself was the hand crop); ``image_size``: (height, width) of that image."""

    keypoints: np.ndarray
    box: HandBox | None
    image_size: tuple[int, int]


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(
            f"expected an RGB uint8 H x W x 3 image (use mycloset_assets.vision.images.load_image), got {described}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")
    return image


ResultT = TypeVar("ResultT")


class _MultiScaleOpenPose(CompleteModelWrapper[ResultT]):
    """Multi-scale inference shared by the body and hand wrappers."""

    family: ClassVar[str]
    entry_id: ClassVar[str]

    def __init__(self, loaded: LoadedModel, scales: Sequence[float] | None = None) -> None:
        super().__init__(loaded)
        if self.loaded.entry.family != self.family:
            raise ValueError(
                f"{type(self).__name__} needs a '{self.family}' checkpoint (e.g. {self.entry_id}), "
                f"got '{self.loaded.entry.id}' of family '{self.loaded.entry.family}'"
            )
        preprocess = self.loaded.entry.preprocess
        self.scales = tuple(float(s) for s in (scales if scales is not None else preprocess["scales"]))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive numbers, got {scales!r}")
        self.box_size = int(preprocess["box_size"])
        self.stride = int(preprocess["stride"])
        self.pad_value = int(preprocess["pad_value"])

    @abstractmethod
    def _outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The network outputs (N x C x h x w each) that become averaged maps, in a fixed order."""

    def _averaged_maps(self, images: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Per image, per network output: the H x W x C float64 maps averaged over the scales. Images of the
        same size share each forward."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            groups[_check_image(image).shape].append(index)
        averaged: list[list[np.ndarray]] = [[] for _ in images]
        for (height, width, _), members in groups.items():
            check_working_size(height, width)
            factors = scale_factors(height, self.scales, self.box_size)
            sums: dict[int, list[np.ndarray]] = {index: [] for index in members}
            for factor in factors:
                bgr = [np.ascontiguousarray(images[index][:, :, ::-1]) for index in members]
                prepared = [network_input(image, factor, self.stride, self.pad_value) for image in bgr]
                pad = prepared[0][1]
                batch = torch.from_numpy(np.concatenate([tensor for tensor, _ in prepared]))
                with torch.inference_mode():
                    outputs = self._outputs(batch.to(self.loaded.device, self.loaded.dtype))
                arrays = [output.float().cpu().numpy() for output in outputs]
                for row, index in enumerate(members):
                    restored = [maps_to_image(array[row], pad, self.stride, height, width) for array in arrays]
                    if not sums[index]:
                        sums[index] = [np.zeros(maps.shape) for maps in restored]
                    for total, maps in zip(sums[index], restored, strict=True):
                        total += maps / len(factors)
            for index in members:
                averaged[index] = sums[index]
        return averaged


class OpenPoseBodyWrapper(_MultiScaleOpenPose[BodyPoseResult]):
    """OpenPose body (``openpose_body_coco18``): RGB image -> :class:`BodyPoseResult`.

    ``scales`` defaults to the registry's ``[0.5]`` of box size 368 (the reference's default); more scales
    are averaged.
    """

    family = "openpose_body"
    entry_id = "openpose_body_coco18"

    def _outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        paf, heatmap = self.module(batch)
        return [heatmap, paf]

    def maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The averaged maps of ``image``: heatmaps H x W x 19 and PAFs H x W x 38 (float64, the reference's
        ``heatmap_avg`` and ``paf_avg``), what :meth:`run_batch` decodes."""
        heatmaps, pafs = self._averaged_maps([image])[0]
        return heatmaps, pafs

    def run_batch(self, images: list[np.ndarray]) -> list[BodyPoseResult]:
        results = []
        for image, (heatmaps, pafs) in zip(images, self._averaged_maps(images), strict=True):
            results.append(result_from_maps(heatmaps, pafs, (image.shape[0], image.shape[1])))
        return results


def result_from_maps(heatmaps: np.ndarray, pafs: np.ndarray, image_size: tuple[int, int]) -> BodyPoseResult:
    """Decode averaged body maps of an image of ``image_size`` (height, width) into a :class:`BodyPoseResult`."""
    pose = decode_body(heatmaps, pafs, image_height=image_size[0])
    return BodyPoseResult(
        keypoints=pose.keypoints,
        keypoints_coco17=openpose18_to_coco17(pose.keypoints),
        scores=pose.scores,
        part_counts=pose.part_counts,
        image_size=(int(image_size[0]), int(image_size[1])),
    )


class OpenPoseHandWrapper(_MultiScaleOpenPose[HandPoseResult]):
    """OpenPose hand (``openpose_hand``): a hand crop -> 21 keypoints; :meth:`hands` finds the crops of a photo
    from its body keypoints (the reference's ``handDetect``) and returns keypoints in the photo's pixels.

    ``scales`` defaults to the registry's ``[0.5, 1.0, 1.5, 2.0]`` of box size 368 (the reference's).
    """

    family = "openpose_hand"
    entry_id = "openpose_hand"

    def _outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        return [self.module(batch)]

    def maps(self, image: np.ndarray) -> np.ndarray:
        """The averaged H x W x 22 hand heatmaps of ``image`` (float64, the reference's ``heatmap_avg``)."""
        return self._averaged_maps([image])[0][0]

    def run_batch(self, images: list[np.ndarray]) -> list[HandPoseResult]:
        return [
            HandPoseResult(keypoints=decode_hand(maps), box=None, image_size=(image.shape[0], image.shape[1]))
            for image, (maps,) in zip(images, self._averaged_maps(images), strict=True)
        ]

    def hands(self, image: np.ndarray, body_keypoints: np.ndarray) -> list[HandPoseResult]:
        """Hands of the people in ``image`` whose OpenPose-18 ``body_keypoints`` (P x 18 x 3, e.g. a
        :class:`BodyPoseResult`'s) have a complete arm: per box (left hand before right, person by person),
        the keypoints in ``image`` pixels."""
        image = _check_image(image)
        body_keypoints = np.asarray(body_keypoints)
        if body_keypoints.ndim != 3 or body_keypoints.shape[1] != BODY_PARTS:
            raise ValueError(f"body_keypoints must be P x {BODY_PARTS} x 3 (OpenPose-18), got {body_keypoints.shape}")
        height, width = image.shape[:2]
        boxes = hand_boxes(body_keypoints, height, width)
        crops = [image[box.y : box.y + box.size, box.x : box.x + box.size] for box in boxes]
        results = []
        for box, crop_result in zip(boxes, self.run_batch(crops), strict=True):
            keypoints = crop_result.keypoints.copy()
            found = keypoints[:, 0] >= 0
            keypoints[found, 0] += box.x
            keypoints[found, 1] += box.y
            results.append(HandPoseResult(keypoints=keypoints, box=box, image_size=(height, width)))
        return results
