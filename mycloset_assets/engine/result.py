"""What a try-on run returns: every intermediate as a plain array, the models used and what each step cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..monitoring import StepMetrics
from .stages import EXTRA_PREFIX, TRYON_ARRAYS


@dataclass(frozen=True)
class ModelInfo:
    """The checkpoint that filled a role: registry entry, file sha256, path as found (or as stored), and in words
    whether the file is a published one, synthesized by this project or unknown (``checkpoints.provenance``)."""

    entry: str
    sha256: str
    path: str
    provenance: str = ""

    def to_dict(self) -> dict[str, str]:
        """``{entry, sha256, path, provenance}`` as report.json lists a model."""
        return {"entry": self.entry, "sha256": self.sha256, "path": self.path, "provenance": self.provenance}


@dataclass(eq=False)
class TryOnResult:
    """One person in one garment, with every intermediate. Arrays are read-only (they may be cache entries).

    Sizes: the person photo is H x W, the garment photo Hg x Wg (display orientation, as ``load_image``
    decodes them); the network frame is h x w (CP-VTON 256 x 192; VITON-HD its working size, 1024 x 768 by
    default), the photo letterboxed into it (centred white padding to the frame's aspect ratio).

    - ``person`` H x W x 3, ``garment`` Hg x Wg x 3: the decoded photos (uint8 RGB).
    - ``keypoints`` 18 x 3 float64: OpenPose-18 (x, y, score) in person pixels of the person the try-on
      used (the best-scoring one); missing parts (-1, -1, 0). ``people`` P x 18 x 3: everyone found (P >= 0).
    - ``parsing`` H x W uint8: label ids, names in ``parsing_names`` (LIP-20 / CIHP-20).
    - ``garment_mask`` Hg x Wg bool.
    - ``agnostic`` float32 C x h x w in [-1, 1]: the person representation the try-on networks read
      (CP-VTON: 22 channels = body shape, head RGB, 18 keypoint maps; VITON-HD: 3 channels, the image
      agnostic).
    - ``grid`` h x w x 2 float32: the TPS sampling grid (x, y; [-1, 1] spans the garment frame);
      ``theta`` (50,) float32: the TPS control-point offsets.
    - ``warped_garment`` h x w x 3 uint8; ``warped_mask`` h x w float32 in [0, 1].
    - ``rendered`` h x w x 3 uint8: the person the generator rendered (CP-VTON's TOM rendering; VITON-HD's
      ALIAS output). ``composition_mask`` h x w float32 in [0, 1]: where the result takes the warped garment
      (CP-VTON) or what the network synthesised (VITON-HD, 0/1).
    - ``tryon_frame`` h x w x 3 uint8: the result in the frame; ``tryon`` H x W x 3 uint8: the final image
      at the person photo's size (VITON-HD keeps the photo's pixels outside the synthesised region).
    - ``extras``: pipeline-specific maps: ``pose_image`` (CP-VTON h x w float32 in [-1, 1]; VITON-HD the
      h x w x 3 uint8 OpenPose rendering), VITON-HD ``parse_agnostic`` and ``seg_labels`` (h x w uint8) and
      ``misalignment`` (h x w float32 in [0, 1]). The optional steps add ``clothing_mask`` (H x W bool: the
      person's clothes the garment replaces, MobileSAM's when kept), ``sam_garment_mask`` (Hg x Wg) and
      ``sam_clothing_mask`` (H x W: what MobileSAM returned, kept or not), ``tryon_before_restoration`` (H x W x 3)
      and ``restored_face`` (512 x 512 x 3, GFPGAN's output in its aligned frame), ``person_mask`` (H x W uint8
      0/255, MediaPipe's selfie segmentation).

    ``models``: role -> :class:`ModelInfo` of the checkpoints used; ``skipped``: files of the checkpoint
    folder that could not be used -> ``"verdict: reason"``; ``steps``: the monitor's metrics (in a batch,
    of the whole batch); ``cached``: the stages (``pose``, ``parsing``, ``garment_mask``, ``tryon``) answered
    by the cache; ``notes``: warnings a user should read (e.g. nobody found in the person photo).

    ``optional_steps``: ``person_mask``, ``mask_refinement``, ``face_restoration`` and ``quality`` -> ``{"ran":
    bool, "reason": str, ...}`` (what the step did, or why it was skipped); ``quality``: the quality report
    (quality.json, see :func:`mycloset_assets.engine.quality.quality_report`) when the quality step ran.
    ``pose_estimator``: ``"openpose"`` or ``"blazepose"``, the estimator that found the keypoints (None when they
    were given); BlazePose adds ``pose_landmarks`` (33 x 4: x, y, visibility, presence in person pixels) to ``extras``.
    """

    pipeline: str
    person: np.ndarray
    garment: np.ndarray
    keypoints: np.ndarray
    people: np.ndarray
    parsing: np.ndarray
    parsing_names: tuple[str, ...]
    garment_mask: np.ndarray
    agnostic: np.ndarray
    grid: np.ndarray
    theta: np.ndarray
    warped_garment: np.ndarray
    warped_mask: np.ndarray
    rendered: np.ndarray
    composition_mask: np.ndarray
    tryon_frame: np.ndarray
    tryon: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    steps: list[StepMetrics] = field(default_factory=list)
    cached: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    optional_steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality: dict[str, Any] | None = None
    pose_estimator: str | None = None

    @property
    def cache_hit(self) -> bool:
        """True when every computed stage came from the cache (no network ran for this result)."""
        return "tryon" in self.cached and all(
            stage in self.cached for stage in ("pose", "parsing", "garment_mask") if stage in self.models
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (extras as ``extra.NAME``), e.g. for ``np.savez``."""
        named = {
            "person": self.person,
            "garment": self.garment,
            "keypoints": self.keypoints,
            "people": self.people,
            "parsing": self.parsing,
            "garment_mask": self.garment_mask,
        }
        named.update({name: getattr(self, name) for name in TRYON_ARRAYS})
        named.update({f"{EXTRA_PREFIX}{name}": value for name, value in self.extras.items()})
        return named

    def report(self, outputs: Mapping[str, str] | None = None) -> dict[str, Any]:
        """report.json: ``pipeline``, ``models``, ``steps``, ``skipped``, ``outputs`` (INTERFACES.md), and
        ``optional_steps`` (which optional steps ran, which were skipped and why) and ``pose_estimator``."""
        return {
            "pipeline": self.pipeline,
            "pose_estimator": self.pose_estimator,
            "models": {role: info.to_dict() for role, info in self.models.items()},
            "steps": [step.to_report() for step in self.steps],
            "skipped": dict(self.skipped),
            "outputs": dict(outputs or {}),
            "optional_steps": {name: dict(record) for name, record in self.optional_steps.items()},
        }
