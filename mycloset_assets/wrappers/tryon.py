"""Try-on stages: CP-VTON (GMM, TOM) and VITON-HD (segmentation generator, GMM, ALIAS generator).

Every stage takes what the earlier steps computed and returns a typed result the next stage accepts:

    CP-VTON:   TryOnInput -> CpVtonGmm -> CpVtonWarp -> CpVtonTom -> CpVtonTryOn
    VITON-HD:  TryOnInput -> VitonHdSeg -> VitonHdSegmentation -> VitonHdGmm -> VitonHdWarp
                                                               -> VitonHdAlias -> VitonHdTryOn

A ``TryOnInput`` is one person photo (RGB uint8, any size) with its LIP/CIHP parsing and OpenPose-18
keypoints, and one garment photo with its mask. Each photo is letterboxed into the network's frame
(centred white padding to the frame's aspect ratio, then resizing: ``vision.compositing.Letterbox``); the
results hold the network-size arrays and give them back at the person photo's size (``*_photo``).

CP-VTON runs at its 256 x 192 frame, as test.py: the TOM reads the warped garment as the 8-bit image the
GMM stage saved. VITON-HD runs at a working size (``VitonHdSeg(size=...)``, 1024 x 768 = the reference's
load size by default; multiples of 128, at least 256 x 128): the seg generator and GMM see 256 x 192
inputs resized from it as in test.py, the TPS grid is evaluated at the working size and the ALIAS
generator is built for it with the same weights. The reference's pixel sizes (agnostic line widths) scale
with the working width / 768.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import LoadedModel
from ..models.vitonhd_gmm import TPS_EXTENT
from ..vision.agnostic import (
    VITONHD_ALIAS_GROUPS,
    VITONHD_GROUPS,
    VITONHD_REFERENCE_WIDTH,
    CpVtonAgnostic,
    body25_from_openpose18,
    cpvton_agnostic,
    group_labels,
    group_one_hot,
    render_body25,
    to_network_range,
    vitonhd_image_agnostic,
    vitonhd_parse_agnostic,
)
from ..vision.compositing import (
    ALIAS_UPPER_CHANNEL,
    Letterbox,
    alias_seg_div,
    composite,
    misalignment_mask,
    paste_back,
    seg_labels,
    to_uint8_image,
    tom_outputs,
    vitonhd_seg_noise,
)
from ..vision.tps import tps_grid, warp
from .base import check_family

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

CPVTON_RADIUS = 5
VITONHD_SIZE = (1024, 768)
ALIAS_MULTIPLE = 128  # the ALIAS generator starts from load size / 2^7
ALIAS_SYNTHESISED = tuple(
    index for index, (name, _) in enumerate(VITONHD_ALIAS_GROUPS) if name in ("upper", "left_arm", "right_arm")
)  # what the generator makes up besides the agnostic's grey region
OPENPOSE18 = 18


def _garment_mask(mask: np.ndarray) -> np.ndarray:
    """bool as is; uint8 >= 128 (the references read 8-bit mask images so); floats in [0, 1] >= 0.5."""
    if mask.dtype == bool:
        return mask
    if mask.dtype == np.uint8:
        if mask.size and mask.max() == 1:
            raise ValueError("garment_mask is uint8 with values 0/1: pass it as bool (uint8 masks are 0/255)")
        return mask >= 128
    if np.issubdtype(mask.dtype, np.floating):
        if mask.size and (mask.min() < 0 or mask.max() > 1):
            raise ValueError(f"a float garment_mask must lie in [0, 1], got {mask.min()}..{mask.max()}")
        return mask >= 0.5
    raise ValueError(f"garment_mask must be bool, uint8 (0/255) or float in [0, 1], got {mask.dtype}")


def _check_rgb(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be an RGB uint8 H x W x 3 array, got {described}")


@dataclass(frozen=True)
class TryOnInput:
    """One person and one garment, at their photos' sizes.

    ``person`` RGB uint8 H x W x 3; ``parsing`` H x W LIP-20 / CIHP-20 label ids of the person; ``keypoints``
    18 x 3 OpenPose-18 (x, y, score) in person pixels, missing keypoints scoring 0 (one person: pick one row
    of ``BodyPose.keypoints``); ``garment`` RGB uint8 Hg x Wg x 3 (an in-shop photo, garment on white);
    ``garment_mask`` Hg x Wg, bool, uint8 0/255 or float in [0, 1] (stored as bool).
    """

    person: np.ndarray
    parsing: np.ndarray
    keypoints: np.ndarray
    garment: np.ndarray
    garment_mask: np.ndarray

    def __post_init__(self) -> None:
        _check_rgb(self.person, "person")
        _check_rgb(self.garment, "garment")
        if self.parsing.shape != self.person.shape[:2] or not np.issubdtype(self.parsing.dtype, np.integer):
            raise ValueError(
                f"parsing must be integer label ids of the person's size {self.person.shape[:2]}, "
                f"got {self.parsing.dtype} {self.parsing.shape}"
            )
        keypoints = np.asarray(self.keypoints, dtype=np.float64)
        if keypoints.shape != (OPENPOSE18, 3):
            raise ValueError(
                f"keypoints must be one person's OpenPose-18 18 x 3 (x, y, score), got {keypoints.shape}"
                + ("; pick one person" if keypoints.ndim == 3 else "")
            )
        if self.garment_mask.shape != self.garment.shape[:2]:
            raise ValueError(
                f"garment_mask {self.garment_mask.shape} must be the garment's size {self.garment.shape[:2]}"
            )
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "garment_mask", _garment_mask(self.garment_mask))


class TryOnStage(ABC, Generic[InputT, ResultT]):
    """One try-on network with its pre- and post-processing: ``stage(item)`` or ``stage([items])``.

    A list runs through the network in batches of ``batch_size``. ``family`` is the registry family the
    stage wraps; ``input_type`` what it accepts.
    """

    family: ClassVar[str]
    input_type: ClassVar[type]

    def __init__(self, loaded: LoadedModel, batch_size: int = 4) -> None:
        check_family(loaded, [self.family], type(self).__name__)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.loaded = loaded
        self.module = loaded.module
        self.entry = loaded.entry
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def dtype(self) -> torch.dtype:
        return self.loaded.dtype

    @overload
    def __call__(self, items: InputT) -> ResultT: ...

    @overload
    def __call__(self, items: Sequence[InputT]) -> list[ResultT]: ...

    def __call__(self, items: InputT | Sequence[InputT]) -> ResultT | list[ResultT]:
        if isinstance(items, self.input_type):
            return self.run_batch([items])[0]  # type: ignore[list-item]
        items = list(items)  # type: ignore[arg-type]
        for index, item in enumerate(items):
            if not isinstance(item, self.input_type):
                raise TypeError(
                    f"{type(self).__name__} takes {self.input_type.__name__} items, "
                    f"got {type(item).__name__} at index {index}"
                )
        results: list[ResultT] = []
        for start in range(0, len(items), self.batch_size):
            results += self.run_batch(items[start : start + self.batch_size])
        return results

    @abstractmethod
    def run_batch(self, items: list[InputT]) -> list[ResultT]:
        """Results for ``items`` in order, with one network forward."""

    def _tensor(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack C x H x W (or H x W, given a channel) float arrays to N x C x H x W on the device, in dtype."""
        stacked = np.stack([a[None] if a.ndim == 2 else a for a in arrays]).astype(np.float32)
        return torch.from_numpy(stacked).to(self.device, self.dtype)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


# CP-VTON ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpVtonWarp:
    """The GMM stage of CP-VTON, at the network frame (H x W = 256 x 192).

    ``person`` H x W x 3 uint8 and ``agnostic`` (22 channels) the person in the frame; ``garment`` H x W x 3
    uint8 and ``garment_mask`` H x W bool the garment in the frame; ``theta`` (50,) TPS offsets (25 x then
    25 y); ``grid`` H x W x 2 sampling grid (x, y in [-1, 1]); ``warped_garment`` H x W x 3 uint8, the
    garment warped with border padding and saved to 8 bits (what the TOM reads); ``warped_mask`` H x W
    float32 in [0, 1], the mask warped with zero padding. ``*_photo``: the same at the person photo's size.
    """

    person_frame: Letterbox
    garment_frame: Letterbox
    person: np.ndarray
    agnostic: CpVtonAgnostic
    garment: np.ndarray
    garment_mask: np.ndarray
    theta: np.ndarray
    grid: np.ndarray
    warped_garment: np.ndarray
    warped_mask: np.ndarray

    @property
    def warped_garment_photo(self) -> np.ndarray:
        """The warped garment at the person photo's size (uint8 H0 x W0 x 3)."""
        return self.person_frame.image_to_photo(self.warped_garment)

    @property
    def warped_mask_photo(self) -> np.ndarray:
        """The warped garment mask at the person photo's size (float32 H0 x W0)."""
        return self.person_frame.map_to_photo(self.warped_mask)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array of the warp, the photos' sizes included (an NPZ holds it; :meth:`from_arrays` reads it)."""
        return {
            "person": self.person,
            "agnostic_shape": self.agnostic.shape,
            "agnostic_head": self.agnostic.head,
            "agnostic_pose": self.agnostic.pose,
            "garment": self.garment,
            "garment_mask": self.garment_mask,
            "theta": self.theta,
            "grid": self.grid,
            "warped_garment": self.warped_garment,
            "warped_mask": self.warped_mask,
            "person_size": np.array(self.person_frame.photo_size, dtype=np.int64),
            "garment_size": np.array(self.garment_frame.photo_size, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CpVtonWarp:
        """The warp :meth:`to_arrays` wrote, frames rebuilt from the photos' sizes and the frame's."""
        frame = tuple(int(v) for v in arrays["garment_mask"].shape)
        person_size = tuple(int(v) for v in arrays["person_size"])
        garment_size = tuple(int(v) for v in arrays["garment_size"])
        return cls(
            person_frame=Letterbox.fit(person_size, frame),  # type: ignore[arg-type]
            garment_frame=Letterbox.fit(garment_size, frame),  # type: ignore[arg-type]
            person=arrays["person"],
            agnostic=CpVtonAgnostic(arrays["agnostic_shape"], arrays["agnostic_head"], arrays["agnostic_pose"]),
            garment=arrays["garment"],
            garment_mask=np.asarray(arrays["garment_mask"], dtype=bool),
            theta=arrays["theta"],
            grid=arrays["grid"],
            warped_garment=arrays["warped_garment"],
            warped_mask=arrays["warped_mask"],
        )


@dataclass(frozen=True)
class CpVtonPerson:
    """A person as CP-VTON's GMM and TOM see it: the photo, its parsing and keypoints letterboxed into the
    network frame, and the 22-channel representation computed from them."""

    frame: Letterbox
    person: np.ndarray
    parsing: np.ndarray
    keypoints: np.ndarray
    agnostic: CpVtonAgnostic


def cpvton_person(
    person: np.ndarray, parsing: np.ndarray, keypoints: np.ndarray, size: tuple[int, int], radius: int = CPVTON_RADIUS
) -> CpVtonPerson:
    """CP-VTON's person representation of one photo at the network ``size`` (what :class:`CpVtonGmm` reads)."""
    frame = Letterbox.fit(person.shape[:2], size)
    image = frame.image_to_frame(person)
    labels = frame.labels_to_frame(parsing)
    points = frame.points_to_frame(np.asarray(keypoints, dtype=np.float64))
    return CpVtonPerson(frame, image, labels, points, cpvton_agnostic(image, labels, points, radius))


class CpVtonGmm(TryOnStage[TryOnInput, CpVtonWarp]):
    """CP-VTON's GMM: 22-channel person representation + garment -> TPS warp of the garment.

    ``align_corners`` is the warp's ``grid_sample`` convention: False = test.py on torch >= 1.3 (default),
    True = torch 0.4 (training).
    """

    family = "cpvton_gmm"
    input_type = TryOnInput

    def __init__(
        self, loaded: LoadedModel, radius: int = CPVTON_RADIUS, align_corners: bool = False, batch_size: int = 4
    ) -> None:
        super().__init__(loaded, batch_size)
        self.size = (int(self.module.height), int(self.module.width))
        self.radius = radius
        self.align_corners = align_corners

    def _prepare(self, item: TryOnInput) -> dict[str, Any]:
        garment_frame = Letterbox.fit(item.garment.shape[:2], self.size)
        person = cpvton_person(item.person, item.parsing, item.keypoints, self.size, self.radius)
        return {
            "person_frame": person.frame,
            "garment_frame": garment_frame,
            "person": person.person,
            "agnostic": person.agnostic,
            "garment": garment_frame.image_to_frame(item.garment),
            "garment_mask": garment_frame.mask_to_frame(item.garment_mask),
        }

    def run_batch(self, items: list[TryOnInput]) -> list[CpVtonWarp]:
        prepared = [self._prepare(item) for item in items]
        agnostic = self._tensor([p["agnostic"].array() for p in prepared])
        cloth = self._tensor([to_network_range(p["garment"]) for p in prepared])
        cloth_mask = self._tensor([p["garment_mask"].astype(np.float32) for p in prepared])
        with torch.inference_mode():
            grid, theta = self.module(agnostic, cloth)
            warped = warp(cloth, grid, align_corners=self.align_corners, padding_mode="border")
            warped_mask = warp(cloth_mask, grid, align_corners=self.align_corners, padding_mode="zeros")
        return [
            CpVtonWarp(
                **p,
                theta=_numpy(theta[i]),
                grid=_numpy(grid[i]),
                warped_garment=to_uint8_image(_numpy(warped[i])),
                warped_mask=_numpy(warped_mask[i, 0]),
            )
            for i, p in enumerate(prepared)
        ]


@dataclass(frozen=True)
class CpVtonTryOn:
    """The TOM stage of CP-VTON, at the network frame, with the GMM stage it used (``warp``).

    ``rendered`` H x W x 3 uint8, the rendered person ``tanh(raw[:3])``; ``composition_mask`` H x W float32,
    ``sigmoid(raw[3])``; ``tryon`` H x W x 3 uint8, ``warped * m + rendered * (1 - m)``. Images are saved as
    the reference does (``(x + 1) / 2 * 255`` truncated). ``*_photo``: the same at the person photo's size.
    """

    warp: CpVtonWarp
    rendered: np.ndarray
    composition_mask: np.ndarray
    tryon: np.ndarray

    @property
    def tryon_photo(self) -> np.ndarray:
        """The try-on image at the person photo's size (uint8 H0 x W0 x 3)."""
        return self.warp.person_frame.image_to_photo(self.tryon)

    @property
    def rendered_photo(self) -> np.ndarray:
        """The rendered person at the person photo's size (uint8 H0 x W0 x 3)."""
        return self.warp.person_frame.image_to_photo(self.rendered)

    @property
    def composition_mask_photo(self) -> np.ndarray:
        """The composition mask at the person photo's size (float32 H0 x W0)."""
        return self.warp.person_frame.map_to_photo(self.composition_mask)


class CpVtonTom(TryOnStage[CpVtonWarp, CpVtonTryOn]):
    """CP-VTON's TOM: (person representation, warped garment) -> rendered person, mask, try-on."""

    family = "cpvton_tom"
    input_type = CpVtonWarp

    def run_batch(self, items: list[CpVtonWarp]) -> list[CpVtonTryOn]:
        agnostic = self._tensor([item.agnostic.array() for item in items])
        cloth = self._tensor([to_network_range(item.warped_garment) for item in items])
        with torch.inference_mode():
            rendered, mask = tom_outputs(self.module(torch.cat([agnostic, cloth], dim=1)))
            tryon = composite(cloth, rendered, mask)
        return [
            CpVtonTryOn(
                warp=item,
                rendered=to_uint8_image(_numpy(rendered[i])),
                composition_mask=_numpy(mask[i, 0]),
                tryon=to_uint8_image(_numpy(tryon[i])),
            )
            for i, item in enumerate(items)
        ]


# VITON-HD --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VitonHdSegmentation:
    """VITON-HD's person representation and its predicted try-on parsing, at the working size H x W.

    ``photo`` the person photo as given; ``person`` H x W x 3 uint8 and ``parsing`` H x W uint8 (LIP/CIHP
    ids) in the frame; ``pose`` 25 x 3 BODY_25 in frame pixels (missing (0, 0, 0)); ``pose_image`` its
    OpenPose rendering; ``parse_agnostic`` H x W LIP/CIHP ids with upper body and arms removed;
    ``image_agnostic`` H x W x 3 uint8 with ``agnostic_mask`` H x W bool, the greyed pixels; ``garment``
    H x W x 3 uint8 and ``garment_mask`` H x W bool in the frame; ``probabilities`` 13 x 256 x 192
    float32, the seg generator's sigmoid output; ``labels`` H x W uint8 VITON-HD-13 ids, the predicted
    parsing (upsampled, blurred, arg-max); ``alias_labels`` the same in the 7 ALIAS groups.
    """

    photo: np.ndarray
    person_frame: Letterbox
    garment_frame: Letterbox
    person: np.ndarray
    parsing: np.ndarray
    pose: np.ndarray
    pose_image: np.ndarray
    parse_agnostic: np.ndarray
    image_agnostic: np.ndarray
    agnostic_mask: np.ndarray
    garment: np.ndarray
    garment_mask: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """The working size (height, width)."""
        return self.person_frame.frame_size

    @property
    def alias_labels(self) -> np.ndarray:
        """H x W uint8: the predicted parsing in the 7 groups (background, paste, upper, hair, arms, noise)."""
        return group_labels(self.labels, VITONHD_ALIAS_GROUPS)

    @property
    def labels_photo(self) -> np.ndarray:
        """The predicted VITON-HD-13 parsing at the person photo's size (uint8, nearest neighbour)."""
        return self.person_frame.labels_to_photo(self.labels)


class VitonHdSeg(TryOnStage[TryOnInput, VitonHdSegmentation]):
    """VITON-HD's segmentation generator and everything it takes: parse and image agnostic, pose rendering.

    ``size`` is the working size (multiples of 128, at least 256 x 128); ``seed`` seeds the noise channel
    (the same noise for every item, whatever the batch).
    """

    family = "vitonhd_seg"
    input_type = TryOnInput

    def __init__(
        self, loaded: LoadedModel, size: tuple[int, int] = VITONHD_SIZE, seed: int = 0, batch_size: int = 4
    ) -> None:
        super().__init__(loaded, batch_size)
        height, width = size
        if height <= 0 or width <= 0 or height % ALIAS_MULTIPLE or width % ALIAS_MULTIPLE:
            raise ValueError(f"the VITON-HD working size must be positive multiples of {ALIAS_MULTIPLE}, got {size}")
        if height * width < 2 * ALIAS_MULTIPLE**2:
            raise ValueError(
                f"the VITON-HD working size must be at least 256 x 128 or 128 x 256 (the ALIAS generator's first "
                f"block normalises a map of (height / 128) x (width / 128) pixels, at least 2), got {size}"
            )
        self.size = (height, width)
        self.input_size = tuple(self.entry.preprocess["input_size"])
        self.seed = seed

    def _prepare(self, item: TryOnInput) -> dict[str, Any]:
        height, width = self.size
        scale = width / VITONHD_REFERENCE_WIDTH
        person_frame = Letterbox.fit(item.person.shape[:2], self.size)
        garment_frame = Letterbox.fit(item.garment.shape[:2], self.size)
        person = person_frame.image_to_frame(item.person)
        parsing = person_frame.labels_to_frame(item.parsing)
        pose = body25_from_openpose18(person_frame.points_to_frame(item.keypoints))
        agnostic = vitonhd_image_agnostic(person, parsing, pose, scale)
        return {
            "photo": item.person,
            "person_frame": person_frame,
            "garment_frame": garment_frame,
            "person": person,
            "parsing": parsing,
            "pose": pose,
            "pose_image": render_body25(pose, height, width),
            "parse_agnostic": vitonhd_parse_agnostic(parsing, pose, scale),
            "image_agnostic": agnostic.image,
            "agnostic_mask": agnostic.mask,
            "garment": garment_frame.image_to_frame(item.garment),
            "garment_mask": garment_frame.mask_to_frame(item.garment_mask),
        }

    def run_batch(self, items: list[TryOnInput]) -> list[VitonHdSegmentation]:
        prepared = [self._prepare(item) for item in items]
        cloth = self._tensor([to_network_range(p["garment"]) for p in prepared])
        cloth_mask = self._tensor([p["garment_mask"].astype(np.float32) for p in prepared])
        parse = self._tensor([group_one_hot(p["parse_agnostic"], VITONHD_GROUPS) for p in prepared])
        pose = self._tensor([to_network_range(p["pose_image"]) for p in prepared])
        noise = torch.cat(
            [vitonhd_seg_noise((1, 1, *self.input_size), torch.Generator().manual_seed(self.seed)) for _ in items]
        ).to(self.device, self.dtype)

        def down(tensor: torch.Tensor) -> torch.Tensor:
            return F.interpolate(tensor, size=self.input_size, mode="bilinear", align_corners=False)

        with torch.inference_mode():
            seg_input = torch.cat((down(cloth_mask), down(cloth * cloth_mask), down(parse), down(pose), noise), dim=1)
            probabilities = self.module(seg_input)
            labels = seg_labels(probabilities.float(), *self.size)
        return [
            VitonHdSegmentation(
                **p, probabilities=_numpy(probabilities[i]), labels=labels[i].cpu().numpy().astype(np.uint8)
            )
            for i, p in enumerate(prepared)
        ]


def _group_by_size(sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return list(groups.values())


@dataclass(frozen=True)
class VitonHdWarp:
    """VITON-HD's GMM stage at the working size H x W, with the segmentation it used.

    ``theta`` (50,) TPS offsets; ``grid`` H x W x 2 sampling grid (x, y in [-1, 1], TPS extent 0.9);
    ``warped_values`` 3 x H x W float32 in [-1, 1], the garment warped with border padding (the ALIAS
    input); ``warped_mask`` H x W float32 in [0, 1], the mask warped with border padding (as test.py).
    """

    segmentation: VitonHdSegmentation
    theta: np.ndarray
    grid: np.ndarray
    warped_values: np.ndarray
    warped_mask: np.ndarray

    @property
    def warped_garment(self) -> np.ndarray:
        """The warped garment as an image (H x W x 3 uint8)."""
        return to_uint8_image(self.warped_values)

    @property
    def warped_garment_photo(self) -> np.ndarray:
        """The warped garment at the person photo's size (uint8 H0 x W0 x 3)."""
        return self.segmentation.person_frame.image_to_photo(self.warped_garment)

    @property
    def warped_mask_photo(self) -> np.ndarray:
        """The warped garment mask at the person photo's size (float32 H0 x W0)."""
        return self.segmentation.person_frame.map_to_photo(self.warped_mask)


class VitonHdGmm(TryOnStage[VitonHdSegmentation, VitonHdWarp]):
    """VITON-HD's GMM: (predicted upper-cloth mask, pose, image agnostic) + garment -> TPS warp.

    The network sees 256 x 192 inputs resized nearest from the working size; the grid is the TPS of its
    ``theta`` evaluated at the working size (the module's own 1024 x 768 grid when that is the size).
    """

    family = "vitonhd_gmm"
    input_type = VitonHdSegmentation

    def run_batch(self, items: list[VitonHdSegmentation]) -> list[VitonHdWarp]:
        results: dict[int, VitonHdWarp] = {}
        for group in _group_by_size([item.size for item in items]):
            for index, result in zip(group, self._run_same_size([items[i] for i in group]), strict=True):
                results[index] = result
        return [results[i] for i in range(len(items))]

    def _run_same_size(self, items: list[VitonHdSegmentation]) -> list[VitonHdWarp]:
        height, width = items[0].size
        input_size = (self.module.load_height // 4, self.module.load_width // 4)
        upper = self._tensor([(item.alias_labels == ALIAS_UPPER_CHANNEL).astype(np.float32) for item in items])
        pose = self._tensor([to_network_range(item.pose_image) for item in items])
        agnostic = self._tensor([to_network_range(item.image_agnostic) for item in items])
        cloth = self._tensor([to_network_range(item.garment) for item in items])
        cloth_mask = self._tensor([item.garment_mask.astype(np.float32) for item in items])

        def down(tensor: torch.Tensor) -> torch.Tensor:
            return F.interpolate(tensor, size=input_size, mode="nearest")

        with torch.inference_mode():
            theta, grid = self.module(torch.cat((down(upper), down(pose), down(agnostic)), dim=1), down(cloth))
            if (height, width) != (self.module.load_height, self.module.load_width):
                grid = tps_grid(theta, height, width, grid_size=self.module.grid_size, extent=TPS_EXTENT)
            warped = warp(cloth, grid, align_corners=False, padding_mode="border")
            warped_mask = warp(cloth_mask, grid, align_corners=False, padding_mode="border")
        return [
            VitonHdWarp(
                segmentation=item,
                theta=_numpy(theta[i]),
                grid=_numpy(grid[i]),
                warped_values=_numpy(warped[i]),
                warped_mask=_numpy(warped_mask[i, 0]),
            )
            for i, item in enumerate(items)
        ]


@dataclass(frozen=True)
class VitonHdTryOn:
    """VITON-HD's ALIAS stage at the working size, with the warp it used.

    ``misalignment`` H x W float32, ``max(upper - warped mask, 0)``; ``tryon`` H x W x 3 uint8, the
    generator's image saved as the reference does; ``synthesised`` H x W float32 in {0, 1}, what the network
    had to make up (the agnostic's grey region, predicted upper cloth and arms). ``tryon_photo`` is the
    result at the person photo's size; ``pasted_photo`` keeps the photo's own pixels outside the
    synthesised region (blended along its resized edge).
    """

    warp: VitonHdWarp
    misalignment: np.ndarray
    tryon: np.ndarray
    synthesised: np.ndarray

    @property
    def tryon_photo(self) -> np.ndarray:
        """The try-on image at the person photo's size (uint8 H0 x W0 x 3)."""
        return self.warp.segmentation.person_frame.image_to_photo(self.tryon)

    @property
    def pasted_photo(self) -> np.ndarray:
        """The photo with the synthesised region replaced by the try-on (uint8 H0 x W0 x 3)."""
        segmentation = self.warp.segmentation
        alpha = segmentation.person_frame.map_to_photo(self.synthesised)
        return paste_back(segmentation.photo, self.tryon_photo, alpha)


class VitonHdAlias(TryOnStage[VitonHdWarp, VitonHdTryOn]):
    """VITON-HD's ALIAS generator: (image agnostic, pose, warped garment, parsing) -> try-on image.

    Its normalisation layers add random noise: every batch runs with torch's generator seeded with ``seed``
    (in a forked RNG state, so the caller's is untouched). At a working size other than the module's load
    size, a generator built for that size shares the loaded weights.
    """

    family = "vitonhd_alias"
    input_type = VitonHdWarp

    def __init__(self, loaded: LoadedModel, seed: int = 0, batch_size: int = 4) -> None:
        super().__init__(loaded, batch_size)
        self.seed = seed
        self._generators: dict[tuple[int, int], nn.Module] = {}

    def generator(self, height: int, width: int) -> nn.Module:
        """The ALIAS generator whose output is height x width, sharing the loaded weights."""
        load_size = (self.module.sh * ALIAS_MULTIPLE, self.module.sw * ALIAS_MULTIPLE)
        if (height, width) == load_size:
            return self.module
        if (height, width) not in self._generators:
            args = {**self.entry.args, "load_height": height, "load_width": width}
            with torch.device("meta"):
                generator = type(self.module)(**args)
            generator.load_state_dict(self.module.state_dict(), assign=True)
            self._generators[(height, width)] = generator.eval()
        return self._generators[(height, width)]

    def run_batch(self, items: list[VitonHdWarp]) -> list[VitonHdTryOn]:
        results: dict[int, VitonHdTryOn] = {}
        for group in _group_by_size([item.segmentation.size for item in items]):
            for index, result in zip(group, self._run_same_size([items[i] for i in group]), strict=True):
                results[index] = result
        return [results[i] for i in range(len(items))]

    def _run_same_size(self, items: list[VitonHdWarp]) -> list[VitonHdTryOn]:
        segmentations = [item.segmentation for item in items]
        seg = self._tensor([group_one_hot(s.labels, VITONHD_ALIAS_GROUPS) for s in segmentations])
        agnostic = self._tensor([to_network_range(s.image_agnostic) for s in segmentations])
        pose = self._tensor([to_network_range(s.pose_image) for s in segmentations])
        warped = self._tensor([item.warped_values for item in items])
        warped_mask = self._tensor([item.warped_mask for item in items])
        generator = self.generator(*segmentations[0].size)
        devices = [self.device] if self.device.type != "cpu" else []

        with torch.inference_mode(), torch.random.fork_rng(devices=devices, device_type=self.device.type):
            torch.manual_seed(self.seed)
            misalign = misalignment_mask(seg[:, ALIAS_UPPER_CHANNEL : ALIAS_UPPER_CHANNEL + 1], warped_mask)
            output = generator(torch.cat((agnostic, pose, warped), dim=1), seg, alias_seg_div(seg, misalign), misalign)

        synthesised = [s.agnostic_mask | np.isin(s.alias_labels, ALIAS_SYNTHESISED) for s in segmentations]
        return [
            VitonHdTryOn(
                warp=item,
                misalignment=_numpy(misalign[i, 0]),
                tryon=to_uint8_image(_numpy(output[i])),
                synthesised=synthesised[i].astype(np.float32),
            )
            for i, item in enumerate(items)
        ]
