"""Face alignment from pose keypoints and paste-back, for face restoration (GFPGAN v1.4).

GFPGAN's reference pipeline (TencentARC/GFPGAN ``GFPGANer`` with xinntao/facexlib ``FaceRestoreHelper``) detects
five landmarks with RetinaFace, warps them onto the FFHQ 512 x 512 template, restores the crop and pastes it back
with the inverse transform and a feathered mask. Here the landmarks come from the pose keypoints the pipeline
already has (OpenPose-18 or COCO-17), which give the eyes and the nose only, so the alignment is the least-squares
similarity (rotation, uniform scale, translation; no reflection) of those three points onto the template's first
three points. The paste-back mask is facexlib's square-mask recipe (no face parsing), computed only in the face's
window so that the rest of the photo is untouched byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

TEMPLATE_SIZE = 512
# facexlib FaceRestoreHelper.face_template (five points, 512 x 512): the eye at image-left (the subject's right
# eye), the eye at image-right, the nose tip, the mouth corner at image-left, the mouth corner at image-right.
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
# FaceRestoreHelper.align_warp_face's constant border, (135, 133, 132) in its BGR images, here in RGB order.
BORDER_GREY_RGB = (132, 133, 135)

# Keypoint rows of the face parts in each layout (checkpoints keypoints.json): OpenPose-18 Nose 0, REye 14,
# LEye 15, REar 16, LEar 17; COCO-17 nose 0, left_eye 1, right_eye 2, left_ear 3, right_ear 4.
LAYOUTS: dict[str, dict[str, int]] = {
    "openpose18": {"nose": 0, "right_eye": 14, "left_eye": 15, "right_ear": 16, "left_ear": 17},
    "coco17": {"nose": 0, "left_eye": 1, "right_eye": 2, "left_ear": 3, "right_ear": 4},
}
LAYOUT_PARTS = {"openpose18": 18, "coco17": 17}
REQUIRED_PARTS = ("right_eye", "left_eye", "nose")


class FaceNotFoundError(ValueError):
    """The keypoints hold no face that can be aligned. The message is the bare reason ("the right eye is missing
    from the keypoints"), for a caller to prefix with what it skipped."""


@dataclass(frozen=True)
class FaceLandmarks:
    """The face parts of one person in photo pixels: ``right_eye``, ``left_eye``, ``nose`` (x, y float64);
    ``right_ear`` / ``left_ear`` (x, y, or ``None`` when missing or below the score threshold); ``scores``:
    each part's keypoint score (0 when missing); ``layout``: the keypoint layout they came from."""

    right_eye: np.ndarray
    left_eye: np.ndarray
    nose: np.ndarray
    right_ear: np.ndarray | None
    left_ear: np.ndarray | None
    scores: dict[str, float]
    layout: str

    @property
    def points(self) -> np.ndarray:
        """3 x 2: right eye, left eye, nose, in the order of the template's first three points."""
        return np.stack([self.right_eye, self.left_eye, self.nose])

    @property
    def eye_distance(self) -> float:
        """Pixels between the eyes."""
        return float(np.hypot(*(self.left_eye - self.right_eye)))


def _format(value: float) -> str:
    return f"{round(value, 2):g}"


def _joined(names: list[str]) -> str:
    phrases = [f"the {name.replace('_', ' ')}" for name in names]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _face_rows(keypoints: np.ndarray, layout: str) -> dict[str, np.ndarray]:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}: use one of {sorted(LAYOUTS)}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    parts = LAYOUT_PARTS[layout]
    if keypoints.shape != (parts, 3):
        other = [name for name, count in LAYOUT_PARTS.items() if keypoints.shape == (count, 3)]
        hint = f"; these look like {other[0]} keypoints: pass layout={other[0]!r}" if other else ""
        raise ValueError(
            f"layout {layout!r} needs one person's keypoints as {parts} x 3 rows (x, y, score), got shape "
            f"{keypoints.shape} (for several people pass one of them, e.g. keypoints[0]){hint}"
        )
    return {name: keypoints[row] for name, row in LAYOUTS[layout].items()}


def find_face(
    keypoints: np.ndarray, layout: str = "openpose18", min_score: float = 0.3, min_eye_distance: float = 8.0
) -> FaceLandmarks:
    """The eyes, nose and ears of one person's keypoints (rows of x, y, score; a missing part has score 0,
    OpenPose's ``(-1, -1, 0)``).

    Raises :class:`FaceNotFoundError` when an eye or the nose is missing or scored below ``min_score``, when the
    eyes are closer than ``min_eye_distance`` pixels (too small a face to restore), or when the subject's right
    eye is not on the image-left of the left eye as seen from the nose (a face turned away or swapped eyes).
    Ears are reported, never required.
    """
    rows = _face_rows(keypoints, layout)
    scores = {name: float(row[2]) if np.all(np.isfinite(row)) else 0.0 for name, row in rows.items()}
    missing = [name for name in REQUIRED_PARTS if scores[name] <= 0]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise FaceNotFoundError(f"{_joined(missing)} {verb} missing from the keypoints")
    weak = [name for name in REQUIRED_PARTS if scores[name] < min_score]
    if weak:
        reasons = [
            f"the {name.replace('_', ' ')}'s score {_format(scores[name])} is below min_score {_format(min_score)}"
            for name in weak
        ]
        raise FaceNotFoundError("; ".join(reasons))
    right_eye, left_eye, nose = (rows[name][:2].copy() for name in REQUIRED_PARTS)
    ears = {name: rows[name][:2].copy() if scores[name] >= min_score else None for name in ("right_ear", "left_ear")}
    landmarks = FaceLandmarks(right_eye, left_eye, nose, ears["right_ear"], ears["left_ear"], scores, layout)
    if landmarks.eye_distance < min_eye_distance:
        raise FaceNotFoundError(
            f"the face is {_format(landmarks.eye_distance)} px between the eyes, below "
            f"min_eye_distance {_format(min_eye_distance)} px"
        )
    eyes = left_eye - right_eye
    down = nose - (left_eye + right_eye) / 2
    if eyes[0] * down[1] - eyes[1] * down[0] < 0:
        raise FaceNotFoundError(
            "the eyes are swapped or the face is turned away (seen from the nose, the right "
            "eye is on the image-right of the left eye); check the keypoint layout"
        )
    return landmarks


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 float64 similarity (rotation, uniform scale, translation, no reflection) that maps the N x 2
    ``src`` points onto ``dst`` with the least squared error (Umeyama's solution; in 2-D the linear least
    squares over ``[[a, -b], [b, a]]`` and a shift is the same minimiser)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two N x 2 point sets of the same shape with N >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    spread = float(np.sum(s * s))
    if spread <= 0 or not math.isfinite(spread):
        raise ValueError(f"the source points coincide or are not finite ({src.tolist()}): no similarity maps them")
    a = float(np.sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1])) / spread
    b = float(np.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])) / spread
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def _invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -linear @ matrix[:, 2:]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1] != 2:
        raise ValueError(f"points must be ... x 2 (x, y), got shape {points.shape}")
    return points @ matrix[:, :2].T + matrix[:, 2]


def _check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(
            f"expected {name} as an RGB uint8 H x W x 3 array (use mycloset_assets.vision.images.load_image), "
            f"got {described}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return image


def face_template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The 5 x 2 FFHQ template for a ``size`` x ``size`` crop (facexlib scales the 512 one by ``size / 512``)."""
    return FFHQ_TEMPLATE_512 * (size / TEMPLATE_SIZE)


@dataclass(frozen=True)
class FaceAlignment:
    """A photo -> aligned-crop similarity: ``matrix`` (2 x 3, photo pixels -> template pixels), ``inverse``
    (2 x 3, template -> photo) and the crop's ``size``."""

    matrix: np.ndarray
    inverse: np.ndarray
    size: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The ``size`` x ``size`` x 3 uint8 aligned face of the RGB ``image`` (bilinear ``cv2.warpAffine``).

        Outside the photo the crop is the constant grey (132, 133, 135) RGB, facexlib's (135, 133, 132) BGR of
        ``align_warp_face``'s default ``border_mode='constant'``: the border GFPGANer feeds the network, so a
        face at the photo's edge gets the input the reference gives it.
        """
        image = _check_rgb(image)
        return cv2.warpAffine(
            image,
            self.matrix,
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=BORDER_GREY_RGB,
        )

    def to_template(self, points: np.ndarray) -> np.ndarray:
        """... x 2 photo points (x, y) -> the aligned crop's pixels."""
        return _apply(self.matrix, points)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """... x 2 aligned-crop points (x, y) -> the photo's pixels."""
        return _apply(self.inverse, points)


def align_face(landmarks: FaceLandmarks, size: int = TEMPLATE_SIZE) -> FaceAlignment:
    """The similarity that puts the right eye, left eye and nose onto the template's first three points for a
    ``size`` x ``size`` crop."""
    if size <= 0:
        raise ValueError(f"the crop size must be a positive number of pixels, got {size}")
    matrix = similarity_transform(landmarks.points, face_template(size)[:3])
    return FaceAlignment(matrix=matrix, inverse=_invert(matrix), size=int(size))


@dataclass(frozen=True)
class PasteResult:
    """The photo with a face pasted back: ``image`` (H x W x 3 uint8), ``box`` (x0, y0, x1, y1; x1, y1 exclusive)
    the bounding box of the mask's nonzero pixels, all (0, 0, 0, 0) when the face lies outside the photo;
    ``mask`` H x W float32 in [0, 1], the blending weight of the face. Pixels outside ``box`` are the input's."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


def _window(alignment: FaceAlignment, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The photo window (x0, y0, x1, y1) that holds every pixel the warped face and its mask can reach, with a
    zero margin wide enough that eroding and blurring in the window equals doing it on the whole photo."""
    size = alignment.size
    corners = alignment.to_photo(np.array([[-1.0, -1.0], [size, -1.0], [size, size], [-1.0, size]]))
    low, high = np.floor(corners.min(axis=0)), np.ceil(corners.max(axis=0))
    margin = int(math.sqrt(max(float(np.prod(high - low)), 0.0))) // 20 + 4
    x0, y0 = (int(max(v - margin, 0)) for v in low)
    x1, y1 = int(min(high[0] + margin + 1, width)), int(min(high[1] + margin + 1, height))
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def feathered_mask(alignment: FaceAlignment, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """facexlib's paste-back weights (``paste_faces_to_input_image``, upscale 1, no face parsing) in the photo
    ``window``: (the warped square mask eroded by 2 x 2, which removes the black warp border; the soft mask).

    The soft mask erodes that mask by ``2 * w`` and blurs it with a ``(2 * w + 1)``-wide Gaussian, where
    ``w = int(sqrt(mask area)) // 20``, so the seam widens with the face. With ``w = 0`` (a face under 20 px) it
    is the eroded mask itself (facexlib's empty kernel would erode by 3 x 3). The blur's float rounding (1 + 1e-7)
    is clipped to [0, 1].
    """
    x0, y0, x1, y1 = window
    inverse = alignment.inverse.copy()
    inverse[:, 2] -= (x0, y0)
    ones = np.ones((alignment.size, alignment.size), dtype=np.float32)
    warped = cv2.warpAffine(ones, inverse, (x1 - x0, y1 - y0))
    eroded = cv2.erode(warped, np.ones((2, 2), np.uint8))
    edge = int(float(np.sum(eroded)) ** 0.5) // 20
    if edge == 0:
        return eroded, eroded.copy()
    centre = cv2.erode(eroded, np.ones((2 * edge, 2 * edge), np.uint8))
    soft = cv2.GaussianBlur(centre, (2 * edge + 1, 2 * edge + 1), 0)
    return eroded, np.clip(soft, 0, 1, out=soft)


def paste_face(image: np.ndarray, face: np.ndarray, alignment: FaceAlignment) -> PasteResult:
    """Warp the (restored) aligned ``face`` back into the RGB ``image`` with ``alignment.inverse`` and blend it
    with :func:`feathered_mask`: ``soft * (eroded * face) + (1 - soft) * image``.

    Only the face's window is computed; every pixel outside the returned box is the input's, byte for byte.
    One deliberate difference from facexlib: the blend is rounded to uint8, not truncated (truncation darkens
    by half a level on average and turns an unchanged pixel under a fractional weight one level darker).
    """
    image = _check_rgb(image)
    face = _check_rgb(face, "face")
    if face.shape[:2] != (alignment.size, alignment.size):
        raise ValueError(f"the face must be the {alignment.size} x {alignment.size} aligned crop, got {face.shape}")
    height, width = image.shape[:2]
    pasted = image.copy()
    mask = np.zeros((height, width), dtype=np.float32)
    window = _window(alignment, height, width)
    if window is None:
        return PasteResult(image=pasted, box=(0, 0, 0, 0), mask=mask)
    x0, y0, x1, y1 = window
    eroded, soft = feathered_mask(alignment, window)
    rows, cols = np.nonzero(soft > 0)
    if len(rows) == 0:
        return PasteResult(image=pasted, box=(0, 0, 0, 0), mask=mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    inverse = alignment.inverse.copy()
    inverse[:, 2] -= (x0 + left, y0 + top)
    warped_face = cv2.warpAffine(face, inverse, (int(right - left), int(bottom - top))).astype(np.float32)
    weight = soft[top:bottom, left:right, None]
    region = image[y0 + top : y0 + bottom, x0 + left : x0 + right].astype(np.float32)
    blended = weight * (eroded[top:bottom, left:right, None] * warped_face) + (1 - weight) * region
    box = (int(x0 + left), int(y0 + top), int(x0 + right), int(y0 + bottom))
    pasted[box[1] : box[3], box[0] : box[2]] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    mask[box[1] : box[3], box[0] : box[2]] = soft[top:bottom, left:right]
    return PasteResult(image=pasted, box=box, mask=mask)
