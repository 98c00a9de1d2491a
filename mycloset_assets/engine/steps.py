"""The optional steps on one photo or result, as the engine and the Dagster assets both run them.

Each function takes arrays and a callable around a loaded network (or None when the step cannot run, with the
reason) and returns a typed result with its record: ``run_virtual_try_on`` passes callables that look the
network's output up in its content cache first, the assets pass the wrappers' own methods. Nothing else
decides what is prompted, kept, restored or recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..vision.agnostic import CPVTON_CLOTH_LABELS, labels_in
from ..vision.face import FaceNotFoundError, find_face
from ..vision.prompts import EmptyMaskError, SamPrompt, agree, garment_prompt, person_clothing_prompt
from ..wrappers.face import FaceRestorer
from ..wrappers.mediapipe_face import FaceResult
from ..wrappers.sam import MaskRefiner
from .options import TryOnOptions

Segment = Callable[[np.ndarray, SamPrompt], tuple[np.ndarray, float]]
"""(photo, prompt) -> (SAM's mask H x W bool, SAM's score)."""

Restore = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]
"""(result image, OpenPose-18 keypoints) -> (restored image, restored 512 x 512 face, face box x0, y0, x1, y1)."""


@dataclass(frozen=True)
class RefinedMask:
    """The mask a later step uses, what happened (``record``: the refinement's summary, or ``reason``) and SAM's
    own mask where SAM ran (``proposed``)."""

    mask: np.ndarray
    record: dict[str, Any]
    proposed: np.ndarray | None = None

    @property
    def ran(self) -> bool:
        """True when SAM produced a mask (kept or not)."""
        return self.proposed is not None


@dataclass(frozen=True)
class RestoredFace:
    """The result after face restoration (the input unchanged when it did not run), the record (``ran`` and the
    face box, or ``ran`` False and the reason) and the restored 512 x 512 face where it ran."""

    image: np.ndarray
    record: dict[str, Any]
    face: np.ndarray | None = None


def segment_with(refiner: MaskRefiner) -> Segment:
    """A :data:`Segment` running ``refiner`` directly (no cache)."""

    def segment(photo: np.ndarray, prompt: SamPrompt) -> tuple[np.ndarray, float]:
        found = refiner.segment(photo, prompt)
        return found.mask, float(found.score)

    return segment


def restore_with(restorer: FaceRestorer) -> Restore:
    """A :data:`Restore` running ``restorer`` directly (no cache)."""

    def restore(image: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        restored = restorer(image, keypoints)
        return restored.image, restored.restored_face, tuple(int(v) for v in restored.box)  # type: ignore[return-value]

    return restore


def clothing_reference(parsing: np.ndarray) -> np.ndarray:
    """The person's clothes a top replaces in the parsing: upper clothes, dress, coat (CP-VTON's ``parse_cloth``
    ids, the same in LIP-20 and CIHP-20)."""
    return labels_in(parsing, CPVTON_CLOTH_LABELS)


def _refine(
    segment: Segment | None,
    photo: np.ndarray,
    reference: np.ndarray,
    prompt: Callable[[], SamPrompt],
    iou_range: tuple[float, float],
    name: str,
    unavailable: str,
) -> RefinedMask:
    if segment is None:
        return RefinedMask(reference, {"reason": unavailable})
    try:
        sam_prompt = prompt()
    except EmptyMaskError as exc:
        return RefinedMask(reference, {"reason": f"not refined: {exc}"})
    mask, score = segment(photo, sam_prompt)
    refinement = agree(reference, mask, score, iou_range, reference_name=name)
    return RefinedMask(refinement.mask, refinement.summary(), refinement.refined)


def refine_garment_mask(
    segment: Segment | None, photo: np.ndarray, mask: np.ndarray, options: TryOnOptions, unavailable: str = ""
) -> RefinedMask:
    """SAM prompted with a box and points from the garment photo's ``mask``; its mask replaces ``mask`` only when
    their IoU lies in ``options.refinement_iou``. ``segment`` None: ``mask`` as is, ``unavailable`` the reason."""
    reference = np.asarray(mask, dtype=bool)
    return _refine(
        segment, photo, reference, lambda: garment_prompt(reference), options.refinement_iou, "garment", unavailable
    )


def refine_clothing_mask(
    segment: Segment | None,
    photo: np.ndarray,
    parsing: np.ndarray,
    keypoints: np.ndarray,
    options: TryOnOptions,
    unavailable: str = "",
) -> RefinedMask:
    """The person's clothes (:func:`clothing_reference` of ``parsing``), refined by SAM with the torso keypoints as
    extra prompts and the face as a background point, kept under the same IoU rule."""
    reference = clothing_reference(parsing)
    points = np.asarray(keypoints, dtype=np.float64)
    return _refine(
        segment,
        photo,
        reference,
        lambda: person_clothing_prompt(reference, points),
        options.refinement_iou,
        "parsing",
        unavailable,
    )


FACE_ROWS = {14: 0, 15: 1, 0: 2, 16: 4, 17: 5}
"""OpenPose-18 row -> BlazeFace keypoint: right eye, left eye, nose tip, right and left ear tragion."""


def face_alignment_keypoints(keypoints: np.ndarray, faces: FaceResult) -> tuple[np.ndarray, str]:
    """The keypoints face restoration aligns by: the pose's with the eyes, nose and ears of the best face a face
    detector found (scored with the detection's score), and ``"face_detection"``; the pose's as they are, and
    ``"pose"``, when it found none."""
    points = np.array(keypoints, dtype=np.float64)
    if not len(faces):
        return points, "pose"
    for row, index in FACE_ROWS.items():
        points[row] = (*faces.keypoints[0][index], faces.scores[0])
    return points, "face_detection"


def restore_face(
    restore: Restore | None, image: np.ndarray, keypoints: np.ndarray, options: TryOnOptions, unavailable: str = ""
) -> RestoredFace:
    """GFPGAN face restoration of a result where the pose shows the face (both eyes and the nose scoring at least
    ``options.face_min_score``, the eyes ``options.face_min_eye_distance`` pixels apart); the result unchanged
    otherwise, with the reason. ``restore`` None: nothing to restore with (``unavailable`` says why)."""
    if restore is None:
        return RestoredFace(image, {"ran": False, "reason": unavailable})
    points = np.asarray(keypoints, dtype=np.float64)
    try:
        find_face(points, min_score=options.face_min_score, min_eye_distance=options.face_min_eye_distance)
    except FaceNotFoundError as exc:
        return RestoredFace(image, {"ran": False, "reason": f"no face to restore: {exc}"})
    restored, face, box = restore(image, points)
    return RestoredFace(restored, {"ran": True, "box": [int(v) for v in box]}, face)
