"""Parsing label sets, their body-part and clothing masks, and the pre/post-processing of parsing networks.

Label sets (LIP-20, ATR-18, CIHP-20, Pascal-Person-Part-7, VOC-21, ClothSeg-4) come with their names from
``vision/data/labels.json``. Which ids make up a part (``upper``, ``lower``, ``shoes``, ...) is derived from
the label *names* through one table (``NAME_PARTS``), so the id tables of every set follow from its names
and stay right when a set numbers its classes differently (ATR's pants are 6, LIP's are 9).

Parts a label set does not have (documented in ``PARTS`` and reported by ``LabelSet.missing_parts``):

- ``neck``: no label set here has a neck label (VITON-HD derives it from pose keypoints instead).
- ATR-18 has no coat (outerwear is labelled Upper-clothes), no glove, socks, jumpsuits or torso skin; it
  is the only set with belt and bag.
- LIP-20 has no torso skin (its id 10 is Jumpsuits); CIHP-20 has no jumpsuits (its id 10 is Torso-skin).
- Pascal-Person-Part-7 has body regions only (head, torso, upper/lower arms and legs, clothes included),
  no clothing labels and no face or hair.
- VOC-21 has one whole-person label (15) and no parts; ClothSeg-4 has garment classes only.

In LIP, ATR and CIHP, the arm and leg labels are the visible skin of the limbs; in Pascal-Person-Part they
are the whole limb regions, clothes included.

SCHP's affine pre-processing and its inverse (``schp_affine``, ``warp_image``, ``warp_logits_back``)
follow ``simple_extractor_dataset.py`` and ``utils/transforms.py`` of PeikeLi/Self-Correction-Human-Parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np

PARTS: dict[str, str] = {
    "background": "the background label",
    "person": "every label of a person (all non-background labels of a human-parsing set; VOC's person)",
    "head": "hat, hair, sunglasses and face (CP-VTON's parse_head); Pascal-Person-Part's Head",
    "hat": "hat",
    "hair": "hair",
    "face": "face skin (sunglasses are their own part)",
    "sunglasses": "sunglasses",
    "neck": "the neck (no label set here has one)",
    "upper": "upper-body clothes (tops; coats are 'outerwear'); ClothSeg-4's upper-body garments",
    "outerwear": "coats",
    "dress": "dresses",
    "full": "one-piece garments covering upper and lower body: dresses, jumpsuits; ClothSeg-4's full-body",
    "lower": "lower-body clothes: pants and skirts; ClothSeg-4's lower-body garments",
    "pants": "pants",
    "skirt": "skirts",
    "garments": "upper, outerwear, full and lower together (the clothes a try-on replaces or keeps)",
    "shoes": "left and right shoe",
    "left_shoe": "left shoe",
    "right_shoe": "right shoe",
    "socks": "socks",
    "gloves": "gloves",
    "scarf": "scarves",
    "belt": "belts",
    "bag": "bags",
    "torso_skin": "visible skin of the torso",
    "torso": "the torso region, clothes included (Pascal-Person-Part)",
    "arms": "both arms (visible skin in LIP/ATR/CIHP; whole upper and lower arms in Pascal-Person-Part)",
    "left_arm": "left arm",
    "right_arm": "right arm",
    "upper_arms": "upper arms (Pascal-Person-Part)",
    "lower_arms": "lower arms (Pascal-Person-Part)",
    "legs": "both legs (visible skin in LIP/ATR/CIHP; whole upper and lower legs in Pascal-Person-Part)",
    "left_leg": "left leg",
    "right_leg": "right leg",
    "upper_legs": "upper legs (Pascal-Person-Part)",
    "lower_legs": "lower legs (Pascal-Person-Part)",
}

_PERSON = ("person",)

NAME_PARTS: dict[str, tuple[str, ...]] = {
    "background": ("background",),
    "hat": (*_PERSON, "head", "hat"),
    "hair": (*_PERSON, "head", "hair"),
    "sunglasses": (*_PERSON, "head", "sunglasses"),
    "face": (*_PERSON, "head", "face"),
    "glove": (*_PERSON, "gloves"),
    "upperclothes": (*_PERSON, "upper", "garments"),
    "coat": (*_PERSON, "outerwear", "garments"),
    "dress": (*_PERSON, "dress", "full", "garments"),
    "jumpsuits": (*_PERSON, "full", "garments"),
    "pants": (*_PERSON, "pants", "lower", "garments"),
    "skirt": (*_PERSON, "skirt", "lower", "garments"),
    "socks": (*_PERSON, "socks"),
    "scarf": (*_PERSON, "scarf"),
    "belt": (*_PERSON, "belt"),
    "bag": (*_PERSON, "bag"),
    "torsoskin": (*_PERSON, "torso_skin"),
    "leftarm": (*_PERSON, "arms", "left_arm"),
    "rightarm": (*_PERSON, "arms", "right_arm"),
    "leftleg": (*_PERSON, "legs", "left_leg"),
    "rightleg": (*_PERSON, "legs", "right_leg"),
    "leftshoe": (*_PERSON, "shoes", "left_shoe"),
    "rightshoe": (*_PERSON, "shoes", "right_shoe"),
    "head": (*_PERSON, "head"),
    "torso": (*_PERSON, "torso"),
    "upperarms": (*_PERSON, "arms", "upper_arms"),
    "lowerarms": (*_PERSON, "arms", "lower_arms"),
    "upperlegs": (*_PERSON, "legs", "upper_legs"),
    "lowerlegs": (*_PERSON, "legs", "lower_legs"),
    "person": ("person",),
    "upperbody": ("upper", "garments"),
    "lowerbody": ("lower", "garments"),
    "fullbody": ("full", "garments"),
}
"""Canonical label name (``canonical_name``) -> the parts that label belongs to; names not listed (VOC's
objects) belong to no part."""


class LabelSetError(LookupError):
    """A label set that is not known, or a registry entry whose labels disagree with it."""


class UnknownPartError(ValueError):
    """A part name outside ``PARTS``."""


class MissingPartError(LookupError):
    """A known part that the label set has no label for."""


def canonical_name(name: str) -> str:
    """Lower-case letters and digits only: ``Upper-clothes``, ``UpperClothes`` and ``upper_clothes`` agree."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise UnknownPartError(f"unknown part {part!r}; known parts: {', '.join(PARTS)}")


@cache
def _part_table(names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    table: dict[str, list[int]] = {part: [] for part in PARTS}
    for label_id, name in enumerate(names):
        for part in NAME_PARTS.get(canonical_name(name), ()):
            table[part].append(label_id)
    return {part: tuple(ids) for part, ids in table.items()}


@dataclass(frozen=True)
class LabelSet:
    """The class names of a parsing or segmentation network, id = position, and the part tables they imply."""

    name: str
    names: tuple[str, ...]
    note: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def table(self) -> dict[str, tuple[int, ...]]:
        """Every part in ``PARTS`` -> the label ids that belong to it (empty where the set lacks the part)."""
        return dict(_part_table(self.names))

    def ids(self, part: str) -> tuple[int, ...]:
        """The label ids of ``part`` (empty when this set has no label for it)."""
        _check_part(part)
        return _part_table(self.names)[part]

    def has(self, part: str) -> bool:
        return bool(self.ids(part))

    def parts_of(self, label_id: int) -> frozenset[str]:
        """The parts label ``label_id`` belongs to."""
        if not 0 <= label_id < self.num_classes:
            raise IndexError(f"{self.name} has ids 0..{self.num_classes - 1}, not {label_id}")
        return frozenset(NAME_PARTS.get(canonical_name(self.names[label_id]), ()))

    @property
    def missing_parts(self) -> tuple[str, ...]:
        """The parts of ``PARTS`` this set has no label for."""
        return tuple(part for part, ids in _part_table(self.names).items() if not ids)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """(left id, right id) for every ``Left-X`` / ``Right-X`` pair of names: the channels a horizontal
        flip swaps (LIP and CIHP: 14-15, 16-17, 18-19; ATR: 9-10, 12-13, 14-15)."""
        by_name = {canonical_name(name): label_id for label_id, name in enumerate(self.names)}
        return tuple(
            (label_id, by_name["right" + key[4:]])
            for key, label_id in by_name.items()
            if key.startswith("left") and "right" + key[4:] in by_name
        )

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """Channel order of a flipped image's logits: ``logits[:, perm]`` swaps every left/right pair."""
        order = list(range(self.num_classes))
        for left, right in self.flip_pairs:
            order[left], order[right] = right, left
        return tuple(order)


@cache
def label_sets() -> dict[str, LabelSet]:
    """Every label set of ``vision/data/labels.json`` that lists class names, by name."""
    text = resources.files("mycloset_assets.vision").joinpath("data/labels.json").read_text()
    return {
        name: LabelSet(name, tuple(spec["names"]), spec.get("note"))
        for name, spec in json.loads(text).items()
        if "names" in spec
    }


def get_label_set(name: str) -> LabelSet:
    """The label set called ``name``, compared by ``canonical_name`` (``voc21`` is ``VOC-21``)."""
    wanted = canonical_name(name)
    for label_set in label_sets().values():
        if canonical_name(label_set.name) == wanted:
            return label_set
    raise LabelSetError(f"unknown label set {name!r}; known: {', '.join(label_sets())}")


def label_set_for(labels: Mapping[str, Any]) -> LabelSet:
    """The label set of a registry entry's ``labels`` block (``set`` and ``names``), checking the names agree."""
    if "set" not in labels:
        raise LabelSetError(f"a labels block needs a 'set' name, got keys {sorted(labels)}")
    label_set = get_label_set(str(labels["set"]))
    names = labels.get("names")
    if names is not None and [canonical_name(n) for n in names] != [canonical_name(n) for n in label_set.names]:
        raise LabelSetError(
            f"the entry's {len(names)} label names {list(names)} differ from {label_set.name}'s "
            f"{list(label_set.names)}; fix the registry entry or labels.json"
        )
    return label_set


def label_mask(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Boolean H x W mask of the pixels whose label is one of ``ids``."""
    return np.isin(labels, np.fromiter(ids, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ParsingResult:
    """A label map and what its ids mean.

    ``labels``: H x W uint8, one class id per pixel at the photo's size; ``label_set``: the set's name
    (``LIP-20``...); ``names``: class names by id. ``mask("upper")`` is the boolean H x W mask of a part.
    """

    labels: np.ndarray
    label_set: str
    names: tuple[str, ...]
    _set: LabelSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an H x W integer array, got {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.names)):
            raise ValueError(
                f"labels hold ids {labels.min()}..{labels.max()} but {self.label_set} has {len(self.names)} names"
            )
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "_set", LabelSet(self.label_set, self.names))

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape  # type: ignore[return-value]

    @property
    def parts(self) -> LabelSet:
        """The label set with its part tables."""
        return self._set

    def mask(self, *parts: str, allow_missing: bool = False) -> np.ndarray:
        """Boolean H x W union of ``parts``.

        A part the label set has no label for raises ``MissingPartError`` (an all-false mask would pass for
        "not in the photo"), unless ``allow_missing`` is set, where it contributes nothing.
        """
        if not parts:
            raise UnknownPartError(f"name at least one part; known parts: {', '.join(PARTS)}")
        ids: list[int] = []
        for part in parts:
            part_ids = self._set.ids(part)
            if not part_ids and not allow_missing:
                raise MissingPartError(
                    f"{self.label_set} has no label for part {part!r} (its parts: "
                    f"{', '.join(p for p, i in self._set.table.items() if i)}); pass allow_missing=True to "
                    "treat it as empty"
                )
            ids.extend(part_ids)
        return label_mask(self.labels, ids)

    def present(self) -> dict[str, int]:
        """Class name -> pixel count, for the classes that occur."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.names))
        return {self.names[i]: int(c) for i, c in enumerate(counts) if c}


# --- SCHP's affine pre-processing and its inverse ----------------------------------------------------------


def schp_center_scale(height: int, width: int, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) and box size (w, h) of the whole image, widened to the input's aspect ratio.

    As ``SimpleFolderDataset._box2cs([0, 0, w - 1, h - 1])``: the centre is ``((w-1)/2, (h-1)/2)`` and the
    box ``(w-1) x (h-1)`` grows along one side to ``input_w / input_h`` (float32, as the reference).
    """
    if height < 2 or width < 2:
        raise ValueError(f"an image must be at least 2 x 2 pixels for the SCHP affine, got {height} x {width}")
    aspect = input_size[1] * 1.0 / input_size[0]
    box_w, box_h = float(width - 1), float(height - 1)
    center = np.array([box_w * 0.5, box_h * 0.5], dtype=np.float32)
    if box_w > aspect * box_h:
        box_h = box_w * 1.0 / aspect
    elif box_w < aspect * box_h:
        box_w = box_h * aspect
    return center, np.array([box_w, box_h], dtype=np.float32)


def schp_affine(
    center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int], inverse: bool = False
) -> np.ndarray:
    """2 x 3 affine (float64) from the image to the ``input_size`` (h, w) crop, or back with ``inverse``.

    The reference's ``get_affine_transform`` without rotation or shift: three float32 point pairs (the
    centre, a point half a box width above it, and one rotated 90 degrees) handed to
    ``cv2.getAffineTransform``; the box width ``scale[0]`` spans ``input_w - 1`` pixels.
    """
    dst_h, dst_w = input_size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5], dtype=np.float32)
    dst[0] = [(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]
    dst[1] = dst[0] + np.array([0.0, (dst_w - 1) * -0.5], dtype=np.float32)
    for points in (src, dst):
        direction = points[0] - points[1]
        points[2] = points[1] + np.array([-direction[1], direction[0]], dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def warp_image(image: np.ndarray, matrix: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Bilinear affine warp of an H x W x C uint8 image to ``input_size`` (h, w), zero border (the reference's
    ``cv2.warpAffine`` call, so the crop is the reference's to the bit)."""
    return cv2.warpAffine(
        image,
        matrix,
        (int(input_size[1]), int(input_size[0])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def warp_logits_back(logits: np.ndarray, inverse: np.ndarray, height: int, width: int) -> np.ndarray:
    """The reference's ``transform_logits``: h x w x C float32 logits at the input size -> height x width x C
    in the photo, each channel warped with ``inverse`` (bilinear, zero border)."""
    if logits.ndim != 3:
        raise ValueError(f"logits must be h x w x C, got shape {logits.shape}")
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    channels = [
        cv2.warpAffine(
            np.ascontiguousarray(logits[:, :, c]),
            inverse,
            (int(width), int(height)),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        for c in range(logits.shape[2])
    ]
    return np.stack(channels, axis=2)
