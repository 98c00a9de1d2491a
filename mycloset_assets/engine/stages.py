"""The engine's steps on plain arrays: photos in, named arrays out (what the cache stores and results hold).

Pose, parsing and garment masks run on working copies of the photos (longer side at most ``max_side``) and
come back in the photos' pixels: keypoints by pixel centres, label maps and masks by nearest neighbour.
The try-on steps hand the wrappers of :mod:`mycloset_assets.wrappers.tryon` the photos at full size, so the
network frame is cut from the photo itself, and turn their results into the arrays of a ``TryOnResult``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..checkpoints import LoadedModel
from ..vision.agnostic import (
    BODY25_NAMES,
    VITONHD_GROUPS,
    VITONHD_REQUIRED_KEYPOINTS,
    body25_from_openpose18,
    to_network_range,
)
from ..vision.garment import cloth_seg_mask
from ..vision.parsing import ParsingResult, get_label_set, label_set_for
from ..vision.quality import mask_iou
from ..wrappers.base import CompleteModelWrapper
from ..wrappers.garment import ClothSegmenter, SaliencyMasker
from ..wrappers.mediapipe_pose import POSE_LANDMARKS, BlazePoseEstimator, BlazePoseResult
from ..wrappers.mediapipe_segmentation import SelfieSegmenter, person_mask
from ..wrappers.openpose import OpenPoseBodyWrapper
from ..wrappers.tryon import CpVtonTryOn, VitonHdTryOn
from .errors import PersonNotFoundError
from .options import TryOnOptions

OPENPOSE18 = 18
MISSING_KEYPOINTS = np.tile(np.array([-1.0, -1.0, 0.0]), (OPENPOSE18, 1))
BLAZEPOSE_MIN_VISIBILITY = 0.5
VITONHD13_NAMES: tuple[str, ...] = tuple(name for name, _ in VITONHD_GROUPS)
DEFAULT_PARSING_SET = "LIP-20"
TRYON_ARRAYS = (
    "agnostic",
    "grid",
    "theta",
    "warped_garment",
    "warped_mask",
    "rendered",
    "composition_mask",
    "tryon_frame",
    "tryon",
)
EXTRA_PREFIX = "extra."

Arrays = dict[str, np.ndarray]
PoseEstimator = OpenPoseBodyWrapper | BlazePoseEstimator


def working_copy(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` shrunk (area interpolation) so that its longer side is at most ``max_side``; as is otherwise."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def points_to_photo(points: np.ndarray, work_size: tuple[int, int], photo_size: tuple[int, int]) -> np.ndarray:
    """... x K x 3 keypoints (x, y, score) in a working copy's pixels -> the photo's (pixel centres); missing
    keypoints (score <= 0) stay (-1, -1, 0)."""
    mapped = np.array(points, dtype=np.float64)
    if work_size == photo_size or mapped.size == 0:
        return mapped
    sy, sx = photo_size[0] / work_size[0], photo_size[1] / work_size[1]
    present = mapped[..., 2] > 0
    mapped[..., 0] = np.where(present, (mapped[..., 0] + 0.5) * sx - 0.5, -1.0)
    mapped[..., 1] = np.where(present, (mapped[..., 1] + 0.5) * sy - 0.5, -1.0)
    return mapped


def labels_to_photo(labels: np.ndarray, photo_size: tuple[int, int]) -> np.ndarray:
    """A working copy's uint8 label map (or bool mask) at the photo's size, nearest neighbour."""
    if labels.shape[:2] == photo_size:
        return labels
    resized = cv2.resize(labels.astype(np.uint8), (photo_size[1], photo_size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized > 0 if labels.dtype == bool else resized


# pose ------------------------------------------------------------------------------------------------------


def pose_estimator(
    pose: LoadedModel, detector: LoadedModel | None, *, scales: tuple[float, ...] | None
) -> PoseEstimator:
    """The estimator of the pose role's network: BlazePose when its detector partner is given (``pose`` is then
    the landmark network), else OpenPose's body wrapper at ``scales`` (None: the entry's). Cheap to make: both
    only hold their networks."""
    if detector is not None:
        return BlazePoseEstimator(detector, pose)
    return OpenPoseBodyWrapper(pose, scales=scales)


def blazepose_openpose18(result: BlazePoseResult, image_size: tuple[int, int]) -> np.ndarray:
    """BlazePose's people as OpenPose-18 P x 18 x 3 in the image's pixels, a keypoint with visibility below
    ``BLAZEPOSE_MIN_VISIBILITY`` or outside the image marked missing (-1, -1, 0), as OpenPose reports the
    parts it does not find."""
    points = np.array(result.openpose18, dtype=np.float64).reshape(-1, OPENPOSE18, 3)
    height, width = image_size
    x, y, visibility = points[..., 0], points[..., 1], points[..., 2]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    points[~(inside & (visibility >= BLAZEPOSE_MIN_VISIBILITY))] = MISSING_KEYPOINTS[0]
    return points


def _found_people(estimator: PoseEstimator, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, Arrays]]:
    """Per image: OpenPose-18 people (image pixels), their scores, and the estimator's own arrays."""
    if isinstance(estimator, BlazePoseEstimator):
        results = [estimator.estimate(image) for image in images]
        return [
            (blazepose_openpose18(result, image.shape[:2]), result.scores, {"landmarks": result.landmarks})
            for image, result in zip(images, results, strict=True)
        ]
    return [(found.keypoints, found.scores, {}) for found in estimator(images)]


def detect_poses(estimator: PoseEstimator, photos: list[np.ndarray], max_side: int | None) -> list[Arrays]:
    """Per photo: ``people`` P x 18 x 3 (OpenPose-18, photo pixels, the reference's order) and ``keypoints``
    18 x 3, the person with the highest score (all missing when nobody was found), whichever estimator runs;
    BlazePose adds ``people_landmarks`` P x 33 x 4 (x, y, visibility, presence; photo pixels) and
    ``landmarks``, the best person's 33 x 4 (0 x 4 when nobody was found)."""
    work = [working_copy(photo, max_side) for photo in photos]
    results = []
    for photo, small, (points, scores, own) in zip(photos, work, _found_people(estimator, work), strict=True):
        people = points_to_photo(points, small.shape[:2], photo.shape[:2]).reshape(-1, OPENPOSE18, 3)
        best = people[int(np.argmax(scores))] if len(people) else MISSING_KEYPOINTS
        arrays = {"people": people, "keypoints": np.array(best, dtype=np.float64)}
        if "landmarks" in own:
            landmarks = np.asarray(own["landmarks"], dtype=np.float64)
            placed = points_to_photo(landmarks[..., :3], small.shape[:2], photo.shape[:2])
            everyone = np.concatenate([placed, landmarks[..., 3:]], axis=-1).reshape(-1, POSE_LANDMARKS, 4)
            arrays["people_landmarks"] = everyone
            arrays["landmarks"] = everyone[int(np.argmax(scores))] if len(everyone) else np.zeros((0, 4))
        results.append(arrays)
    return results


def person_masks(segmenter: SelfieSegmenter, photos: list[np.ndarray]) -> list[Arrays]:
    """Per photo: ``person_mask`` H x W uint8, 255 where the selfie segmentation's probability is over 0.5."""
    return [{"person_mask": person_mask(probability)} for probability in segmenter(photos)]


def person_mask_figures(mask: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """A person mask's ``person_fraction`` (share of the photo) and ``parsing_iou`` (IoU with the parsing's
    non-background labels; None when both are empty, nothing to compare), to four places."""
    person, parsed = np.asarray(mask) > 0, np.asarray(labels) > 0
    compared = person.any() or parsed.any()
    return {
        "person_fraction": round(float(person.mean()), 4),
        "parsing_iou": round(mask_iou(person, parsed), 4) if compared else None,
    }


def missing_vitonhd_keypoints(keypoints: np.ndarray) -> list[str]:
    """BODY_25 names of the keypoints VITON-HD needs (neck, shoulders, hips) that ``keypoints`` lacks."""
    body25 = body25_from_openpose18(keypoints)
    return [BODY25_NAMES[i] for i in VITONHD_REQUIRED_KEYPOINTS if body25[i, 0] == 0 and body25[i, 1] == 0]


def check_vitonhd_pose(keypoints: np.ndarray, photo: str) -> None:
    """Raise PersonNotFoundError when VITON-HD cannot build its person representation from ``keypoints``."""
    missing = missing_vitonhd_keypoints(keypoints)
    if missing:
        found = int((np.asarray(keypoints)[:, 2] > 0).sum())
        raise PersonNotFoundError(
            f"{photo}: VITON-HD needs the neck, both shoulders and both hips of one person; the pose has {found} "
            f"of 18 keypoints and lacks {', '.join(missing)}. Use a photo showing one person down to the hips, "
            "pass keypoints= yourself, or run the cpvton pipeline"
        )


# parsing ---------------------------------------------------------------------------------------------------


def parsing_settings(family: str, options: TryOnOptions) -> dict[str, Any]:
    """Wrapper arguments for a parsing family from the options (only the ones set)."""
    settings: dict[str, Any] = {}
    if family == "schp" and options.parsing_size is not None:
        settings["input_size"] = options.parsing_size
    if family == "graphonomy" and options.parsing_scales is not None:
        settings["scales"] = options.parsing_scales
    if options.parsing_flip is not None:
        settings["flip"] = options.parsing_flip
    return settings


def parse_people(
    wrapper: CompleteModelWrapper[ParsingResult], photos: list[np.ndarray], max_side: int | None
) -> list[Arrays]:
    """Per photo: ``parsing`` H x W uint8 label ids (LIP-20 / CIHP-20) at the photo's size."""
    work = [working_copy(photo, max_side) for photo in photos]
    return [
        {"parsing": labels_to_photo(result.labels.astype(np.uint8), photo.shape[:2])}
        for photo, result in zip(photos, wrapper(work), strict=True)
    ]


def parsing_names(entry_labels: dict[str, Any] | None) -> tuple[str, ...]:
    """Class names of a parsing entry's label set (LIP-20's when the caller gave the parsing)."""
    if entry_labels:
        return label_set_for(entry_labels).names
    return get_label_set(DEFAULT_PARSING_SET).names


# garment masks ---------------------------------------------------------------------------------------------


def mask_wrapper(
    loaded: LoadedModel, *, size: tuple[int, int] | None, threshold: float, batch_size: int
) -> CompleteModelWrapper[Any]:
    """U2Net cloth segmentation or saliency, by the entry's task, at ``size`` (None: the entry's)."""
    input_size = size if size is not None else "entry"
    if loaded.entry.task == "cloth_segmentation":
        return ClothSegmenter(loaded, input_size=input_size, batch_size=batch_size)
    return SaliencyMasker(loaded, input_size=input_size, threshold=threshold, batch_size=batch_size)


def mask_garments(
    wrapper: CompleteModelWrapper[Any], photos: list[np.ndarray], max_side: int | None, largest: bool
) -> list[Arrays]:
    """Per garment photo: ``garment_mask`` H x W bool at the photo's size (every garment class of a cloth
    segmentation, or the salient object), optionally its largest connected region only."""
    work = [working_copy(photo, max_side) for photo in photos]
    results = []
    for photo, found in zip(photos, wrapper(work), strict=True):
        if isinstance(found, ParsingResult):
            mask = cloth_seg_mask(found.labels, largest_only=largest)
        else:
            mask = found.mask(largest_only=largest)
        results.append({"garment_mask": labels_to_photo(mask, photo.shape[:2])})
    return results


# try-on ----------------------------------------------------------------------------------------------------


def cpvton_arrays(result: CpVtonTryOn) -> Arrays:
    """The arrays of a CP-VTON run (see ``TryOnResult``)."""
    warp = result.warp
    return {
        "agnostic": warp.agnostic.array(),
        "grid": warp.grid,
        "theta": warp.theta,
        "warped_garment": warp.warped_garment,
        "warped_mask": warp.warped_mask,
        "rendered": result.rendered,
        "composition_mask": result.composition_mask,
        "tryon_frame": result.tryon,
        "tryon": result.tryon_photo,
        f"{EXTRA_PREFIX}pose_image": warp.agnostic.pose_image,
    }


def vitonhd_arrays(result: VitonHdTryOn) -> Arrays:
    """The arrays of a VITON-HD run (see ``TryOnResult``): the final image keeps the photo's pixels outside
    the synthesised region."""
    warp = result.warp
    segmentation = warp.segmentation
    return {
        "agnostic": to_network_range(segmentation.image_agnostic),
        "grid": warp.grid,
        "theta": warp.theta,
        "warped_garment": warp.warped_garment,
        "warped_mask": warp.warped_mask,
        "rendered": result.tryon,
        "composition_mask": result.synthesised,
        "tryon_frame": result.tryon,
        "tryon": result.pasted_photo,
        f"{EXTRA_PREFIX}parse_agnostic": segmentation.parse_agnostic,
        f"{EXTRA_PREFIX}pose_image": segmentation.pose_image,
        f"{EXTRA_PREFIX}seg_labels": segmentation.labels,
        f"{EXTRA_PREFIX}misalignment": result.misalignment,
    }
