"""What a try-on run may be configured with; every option that changes an output enters the cache keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..checkpoints.pipelines import POSE_ESTIMATORS
from ..wrappers.tryon import ALIAS_MULTIPLE, VITONHD_SIZE

POSE_ESTIMATOR_CHOICES = ("auto", *POSE_ESTIMATORS)


def _positive_pair(name: str, value: tuple[int, int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a (height, width) pair of positive integers, got {value!r}")
    return pair  # type: ignore[return-value]


def _positive_floats(name: str, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    floats = tuple(float(v) for v in value)
    if not floats or min(floats) <= 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {value!r}")
    return floats


@dataclass(frozen=True)
class TryOnOptions:
    """How each step runs. ``None`` means the registry entry's (the reference's) setting.

    - ``device``, ``dtype``: where and in which floating-point type the networks compute.
    - ``max_side``: pose, parsing and garment masks run on copies of the photos whose longer side is at most
      this many pixels (the try-on networks read 256 x 192 or 1024 x 768 frames; full-size maps of a 12 Mpx
      photo would take gigabytes); results are mapped back to the photos' pixels. ``None``: full size.
    - ``pose_estimator``: which network fills the pose role: ``"openpose"`` (OpenPose body, COCO-18),
      ``"blazepose"`` (MediaPipe's BlazePose: person detector + 33-landmark network, mapped to OpenPose-18) or
      ``"auto"``: OpenPose when its checkpoint is present (the try-on networks were trained on OpenPose's
      keypoints), else BlazePose.
    - ``pose_scales``: OpenPose search scales (the entry's ``[0.5]`` of box 368).
    - ``parsing_size``: SCHP input size (473 x 473 for LIP); ``parsing_scales``: Graphonomy's scales (the
      reference's six); ``parsing_flip``: flip averaging (SCHP off, Graphonomy on by default).
    - ``mask_size``: U2Net input size (768 x 768 cloth segmentation, 320 x 320 saliency);
      ``mask_threshold``: the saliency level of the mask; ``mask_largest_component``: keep only the largest
      connected region (drops specks).
    - ``vitonhd_size``: VITON-HD's working size (multiples of 128; the reference's 1024 x 768); ``seed``:
      VITON-HD's noise seed.
    - ``batch_size``: images per network forward in a batch call.
    - ``mask_refinement``: refine the garment photo's mask and the person's clothing mask with MobileSAM when a
      checkpoint is present; a refined mask is kept only when its IoU with the mask it refines lies in
      ``refinement_iou`` (inclusive). A kept garment mask is what the geometric matching reads; the person's
      clothing mask marks the region the quality report leaves out.
    - ``face_restoration``: restore the face of the result with GFPGAN when a checkpoint is present and the pose
      shows both eyes and the nose with a score of at least ``face_min_score``, ``face_min_eye_distance`` pixels
      apart.
    - ``person_mask``: a 0/255 person mask of each person photo by MediaPipe's selfie segmentation when its
      checkpoint is present (kept in the result's extras; the record gives its IoU with the parsing's person).
    - ``quality``: measure the result (LPIPS and CLIP with their checkpoints, SSIM and mask IoU always);
      ``quality_max_side``: LPIPS runs on copies whose longer side is at most this many pixels.
    """

    device: str = "cpu"
    dtype: str = "float32"
    max_side: int | None = 1024
    pose_estimator: str = "auto"
    pose_scales: tuple[float, ...] | None = None
    parsing_size: tuple[int, int] | None = None
    parsing_scales: tuple[float, ...] | None = None
    parsing_flip: bool | None = None
    mask_size: tuple[int, int] | None = None
    mask_threshold: float = 0.5
    mask_largest_component: bool = True
    vitonhd_size: tuple[int, int] = VITONHD_SIZE
    seed: int = 0
    batch_size: int = 8
    mask_refinement: bool = True
    refinement_iou: tuple[float, float] = (0.5, 1.0)
    face_restoration: bool = True
    face_min_score: float = 0.3
    face_min_eye_distance: float = 8.0
    person_mask: bool = True
    quality: bool = True
    quality_max_side: int = 512

    def __post_init__(self) -> None:
        resolved = getattr(torch, self.dtype, None)
        if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
            raise ValueError(f"dtype must name a floating-point torch dtype (float32, float16...), not {self.dtype!r}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels (or None for full size), got {self.max_side}")
        if self.pose_estimator not in POSE_ESTIMATOR_CHOICES:
            raise ValueError(
                f"pose_estimator must be one of {', '.join(POSE_ESTIMATOR_CHOICES)}, not {self.pose_estimator!r}"
            )
        if not 0.0 <= self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1), got {self.mask_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        low, high = (float(value) for value in self.refinement_iou)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"refinement_iou must be a (low, high) range within [0, 1], got {self.refinement_iou}")
        object.__setattr__(self, "refinement_iou", (low, high))
        if not 0.0 <= self.face_min_score <= 1.0:
            raise ValueError(f"face_min_score must be in [0, 1], got {self.face_min_score}")
        if self.quality_max_side < 32:
            raise ValueError(f"quality_max_side must be at least 32 pixels, got {self.quality_max_side}")
        size = _positive_pair("vitonhd_size", self.vitonhd_size)
        assert size is not None
        if size[0] % ALIAS_MULTIPLE or size[1] % ALIAS_MULTIPLE:
            raise ValueError(f"vitonhd_size must be multiples of {ALIAS_MULTIPLE}, got {self.vitonhd_size}")
        object.__setattr__(self, "vitonhd_size", size)
        object.__setattr__(self, "parsing_size", _positive_pair("parsing_size", self.parsing_size))
        object.__setattr__(self, "mask_size", _positive_pair("mask_size", self.mask_size))
        object.__setattr__(self, "pose_scales", _positive_floats("pose_scales", self.pose_scales))
        object.__setattr__(self, "parsing_scales", _positive_floats("parsing_scales", self.parsing_scales))

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a torch dtype."""
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def _compute(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype}

    def narrowed_roles(self) -> dict[str, tuple[str, ...]]:
        """The roles whose acceptable entries the options narrow (``pose`` to one estimator's; none for auto)."""
        if self.pose_estimator == "auto":
            return {}
        return {"pose": POSE_ESTIMATORS[self.pose_estimator]}

    def pose_config(self) -> dict[str, Any]:
        """The options the pose step's output depends on."""
        return {**self._compute(), "max_side": self.max_side, "scales": self.pose_scales}

    def parsing_config(self) -> dict[str, Any]:
        """The options the parsing step's output depends on."""
        return {
            **self._compute(),
            "max_side": self.max_side,
            "size": self.parsing_size,
            "scales": self.parsing_scales,
            "flip": self.parsing_flip,
        }

    def mask_config(self) -> dict[str, Any]:
        """The options the garment-mask step's output depends on."""
        return {
            **self._compute(),
            "max_side": self.max_side,
            "size": self.mask_size,
            "threshold": self.mask_threshold,
            "largest_component": self.mask_largest_component,
        }

    def refinement_config(self) -> dict[str, Any]:
        """The options MobileSAM's masks depend on (the IoU range only chooses between masks)."""
        return self._compute()

    def face_config(self) -> dict[str, Any]:
        """The options face restoration's output depends on."""
        return {**self._compute(), "min_score": self.face_min_score, "min_eye_distance": self.face_min_eye_distance}

    def person_mask_config(self) -> dict[str, Any]:
        """The options the person mask depends on."""
        return self._compute()

    def quality_config(self) -> dict[str, Any]:
        """The options the quality figures depend on."""
        return {**self._compute(), "max_side": self.quality_max_side}

    def tryon_config(self, pipeline: str) -> dict[str, Any]:
        """The options the try-on networks' outputs depend on for ``pipeline``."""
        if pipeline == "vitonhd":
            return {**self._compute(), "size": self.vitonhd_size, "seed": self.seed}
        return self._compute()
