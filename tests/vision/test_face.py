"""Face alignment from pose keypoints and paste-back (mycloset_assets.vision.face).

Photo points are made by applying a known similarity to the template's eyes and nose, so where they must land is
known exactly; the paste-back is compared with a plain whole-photo transcription of facexlib's recipe.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mycloset_assets.vision.face import (
    BORDER_GREY_RGB,
    FaceNotFoundError,
    align_face,
    face_template,
    find_face,
    paste_face,
    similarity_transform,
)
from mycloset_assets.vision.openpose import openpose18_to_coco17

TEMPLATE3 = face_template(512)[:3]
# (rotation in degrees, scale photo px per template px, shift x, y)
SIMILARITIES = [(0.0, 1.0, 0.0, 0.0), (-25.0, 0.4, 130.0, 40.0), (40.0, 1.7, -120.0, 60.0), (180.0, 0.25, 300.0, 250.0)]


def _similarity(degrees: float, scale: float, dx: float, dy: float) -> np.ndarray:
    angle = math.radians(degrees)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, dx], [s, c, dy]])


def _photo_points(degrees: float, scale: float, dx: float, dy: float) -> np.ndarray:
    """Right eye, left eye, nose in the photo: the template's first three points under the similarity."""
    matrix = _similarity(degrees, scale, dx, dy)
    return TEMPLATE3 @ matrix[:, :2].T + matrix[:, 2]


def _openpose18(points: np.ndarray, score: float = 0.9, ears: np.ndarray | None = None) -> np.ndarray:
    keypoints = np.tile([-1.0, -1.0, 0.0], (18, 1))
    for row, point in zip((14, 15, 0), points, strict=True):
        keypoints[row] = (*point, score)
    if ears is not None:
        keypoints[16] = (*ears[0], 0.8)
        keypoints[17] = (*ears[1], 0.8)
    return keypoints


def _coco17(points: np.ndarray, score: float = 0.9) -> np.ndarray:
    keypoints = np.zeros((17, 3))
    for row, point in zip((2, 1, 0), points, strict=True):
        keypoints[row] = (*point, score)
    return keypoints


def test_template_is_facexlibs_ffhq_512_template_scaled_by_size():
    want = [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043]]
    np.testing.assert_array_equal(face_template(512)[:4], want)
    np.testing.assert_allclose(face_template(256), face_template(512) / 2, rtol=0, atol=1e-12)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991), eq. 40-42, with the reflection fix: the reference solution the function must match."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / (s**2).sum(1).mean()
    return np.hstack([scale * rotation, (dst_mean - scale * rotation @ src_mean)[:, None]])


def test_similarity_transform_recovers_a_known_similarity_and_equals_umeyama_on_noisy_points():
    matrix = _similarity(33.0, 0.7, 12.5, -40.0)
    src = np.array([[10.0, 20.0], [200.0, 35.0], [90.0, 160.0], [40.0, 300.0]])
    np.testing.assert_allclose(similarity_transform(src, src @ matrix[:, :2].T + matrix[:, 2]), matrix, atol=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):
        src = rng.uniform(0, 500, (5, 2))
        dst = rng.uniform(0, 500, (5, 2))
        got = similarity_transform(src, dst)
        assert got.shape == (2, 3) and got.dtype == np.float64
        np.testing.assert_allclose(got, _umeyama(src, dst), atol=1e-9)
        assert np.linalg.det(got[:, :2]) > 0  # never a reflection, even for mirrored points


def test_similarity_transform_refuses_coinciding_points():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="N x 2"):
        similarity_transform(np.zeros((3, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("layout", ["openpose18", "coco17"])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_alignment_maps_eyes_and_nose_onto_the_template_and_back(layout, similarity):
    points = _photo_points(*similarity)
    keypoints = _openpose18(points) if layout == "openpose18" else _coco17(points)
    landmarks = find_face(keypoints, layout)
    assert landmarks.layout == layout
    np.testing.assert_array_equal(landmarks.points, points)
    alignment = align_face(landmarks)
    assert alignment.size == 512 and alignment.matrix.shape == alignment.inverse.shape == (2, 3)
    assert np.abs(alignment.to_template(points) - TEMPLATE3).max() < 1.0
    np.testing.assert_allclose(alignment.to_template(points), TEMPLATE3, atol=1e-9)
    np.testing.assert_allclose(alignment.to_photo(alignment.to_template(points)), points, rtol=0, atol=1e-6)
    np.testing.assert_allclose(alignment.inverse, _similarity(*similarity), atol=1e-9)


def test_alignment_of_a_smaller_crop_uses_the_scaled_template():
    points = _photo_points(-10.0, 0.5, 80.0, 90.0)
    alignment = align_face(find_face(_openpose18(points)), size=256)
    assert alignment.size == 256
    np.testing.assert_allclose(alignment.to_template(points), TEMPLATE3 / 2, atol=1e-9)


def test_openpose18_and_its_coco17_conversion_give_the_same_alignment():
    keypoints = _openpose18(_photo_points(15.0, 0.6, 100.0, 30.0), ears=np.array([[90.0, 200.0], [260.0, 190.0]]))
    openpose = find_face(keypoints, "openpose18")
    coco = find_face(openpose18_to_coco17(keypoints), "coco17")
    np.testing.assert_array_equal(coco.points, openpose.points)
    np.testing.assert_array_equal(coco.right_ear, [90.0, 200.0])
    np.testing.assert_array_equal(coco.left_ear, [260.0, 190.0])
    np.testing.assert_array_equal(align_face(coco).matrix, align_face(openpose).matrix)


def _dots(height: int, width: int, points: np.ndarray, sigma: float) -> np.ndarray:
    """A black RGB photo with a white Gaussian dot centred exactly on each (sub-pixel) point."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    value = np.zeros((height, width))
    for x, y in points:
        value = np.maximum(value, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return np.repeat(np.rint(value * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _centroid(image: np.ndarray, point: np.ndarray, radius: int) -> np.ndarray:
    x, y = np.rint(point).astype(int)
    window = image[y - radius : y + radius + 1, x - radius : x + radius + 1, 0].astype(np.float64)
    ys, xs = np.mgrid[y - radius : y + radius + 1, x - radius : x + radius + 1]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


@pytest.mark.parametrize("similarity", [(-20.0, 0.45, 110.0, 30.0), (12.0, 0.3, 60.0, 80.0)])
def test_crop_puts_dots_at_the_eyes_and_nose_on_the_template_positions(similarity):
    points = _photo_points(*similarity)
    photo = _dots(280, 320, points, sigma=1.5)
    alignment = align_face(find_face(_openpose18(points)))
    crop = alignment.crop(photo)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    for point, want in zip(points, TEMPLATE3, strict=True):
        assert np.abs(_centroid(crop, want, radius=20) - want).max() < 1.0, point


def test_crop_fills_outside_the_photo_with_facexlibs_grey_in_rgb_order():
    points = _photo_points(0.0, 0.5, -60.0, -70.0)  # the face's top-left quarter lies outside the photo
    crop = align_face(find_face(_openpose18(points))).crop(np.full((200, 200, 3), 7, np.uint8))
    assert tuple(crop[0, 0]) == BORDER_GREY_RGB == (132, 133, 135)
    assert tuple(crop[511, 511]) == (7, 7, 7)


def test_landmarks_report_scores_ears_and_eye_distance():
    points = np.array([[100.0, 100.0], [130.0, 100.0], [115.0, 118.0]])
    keypoints = _openpose18(points, score=0.8)
    keypoints[16] = (90.0, 105.0, 0.7)
    landmarks = find_face(keypoints)
    np.testing.assert_array_equal(landmarks.right_ear, [90.0, 105.0])
    assert landmarks.left_ear is None
    assert landmarks.eye_distance == 30.0
    assert landmarks.scores == pytest.approx(
        {"nose": 0.8, "right_eye": 0.8, "left_eye": 0.8, "right_ear": 0.7, "left_ear": 0.0}
    )


FRONTAL = np.array([[100.0, 100.0], [130.0, 100.0], [115.0, 118.0]])


def test_a_missing_eye_is_named():
    keypoints = _openpose18(FRONTAL)
    keypoints[14] = (-1, -1, 0)
    with pytest.raises(FaceNotFoundError, match=r"^the right eye is missing from the keypoints$"):
        find_face(keypoints)


def test_a_back_view_names_every_missing_part():
    keypoints = np.tile([-1.0, -1.0, 0.0], (18, 1))
    keypoints[16] = (90.0, 100.0, 0.9)
    with pytest.raises(FaceNotFoundError) as error:
        find_face(keypoints)
    assert str(error.value) == "the right eye, the left eye and the nose are missing from the keypoints"


def test_non_finite_keypoints_count_as_missing():
    keypoints = _coco17(FRONTAL)
    keypoints[0, 0] = np.nan
    with pytest.raises(FaceNotFoundError, match="the nose is missing"):
        find_face(keypoints, "coco17")


def test_a_low_confidence_eye_is_named_with_its_score():
    keypoints = _openpose18(FRONTAL)
    keypoints[15, 2] = 0.12
    with pytest.raises(FaceNotFoundError) as error:
        find_face(keypoints, min_score=0.3)
    assert str(error.value) == "the left eye's score 0.12 is below min_score 0.3"
    assert isinstance(error.value, ValueError)
    assert find_face(keypoints, min_score=0.1).scores["left_eye"] == 0.12


def test_a_face_too_small_is_refused_with_its_size():
    keypoints = _openpose18(np.array([[100.0, 100.0], [106.0, 100.0], [103.0, 104.0]]))
    with pytest.raises(FaceNotFoundError) as error:
        find_face(keypoints, min_eye_distance=12)
    assert str(error.value) == "the face is 6 px between the eyes, below min_eye_distance 12 px"
    assert find_face(keypoints, min_eye_distance=6).eye_distance == 6.0


def test_swapped_eyes_are_refused_and_a_rotated_face_is_not():
    swapped = _openpose18(FRONTAL[[1, 0, 2]])
    with pytest.raises(FaceNotFoundError, match="the eyes are swapped or the face is turned away"):
        find_face(swapped)
    upside_down = _openpose18(_photo_points(180.0, 0.3, 300.0, 300.0))
    assert find_face(upside_down).right_eye[0] > find_face(upside_down).left_eye[0]


def test_keypoint_shapes_and_layouts_are_checked():
    with pytest.raises(ValueError, match="pass layout='coco17'"):
        find_face(_coco17(FRONTAL), "openpose18")
    with pytest.raises(ValueError, match=r"e\.g\. keypoints\[0\]"):
        find_face(_openpose18(FRONTAL)[None], "openpose18")
    with pytest.raises(ValueError, match="unknown keypoint layout 'body25'"):
        find_face(_openpose18(FRONTAL), "body25")


def _reference_paste(image: np.ndarray, face: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """facexlib ``paste_faces_to_input_image`` (upscale 1, square mask) on the whole photo, blend rounded."""
    height, width = image.shape[:2]
    restored = cv2.warpAffine(face, inverse, (width, height))
    mask = cv2.warpAffine(np.ones(face.shape[:2], np.float32), inverse, (width, height))
    eroded = cv2.erode(mask, np.ones((2, 2), np.uint8))
    edge = int(np.sum(eroded) ** 0.5) // 20
    centre = cv2.erode(eroded, np.ones((2 * edge, 2 * edge), np.uint8))
    soft = cv2.GaussianBlur(centre, (2 * edge + 1, 2 * edge + 1), 0)[:, :, None]
    blended = soft * (eroded[:, :, None] * restored) + (1 - soft) * image
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), soft[:, :, 0]


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# (similarity, photo height, width): inside the photo, rotated and small, cut by the top-left corner
PASTES = [
    ((-20.0, 0.45, 110.0, 30.0), 280, 320),
    ((35.0, 0.15, 90.0, 40.0), 150, 170),
    ((0.0, 0.5, -90.0, -70.0), 200, 240),
]


@pytest.mark.parametrize(("similarity", "height", "width"), PASTES)
def test_paste_changes_nothing_outside_the_feathered_box_and_matches_facexlibs_recipe(similarity, height, width):
    photo = _noise((height, width, 3), 1)
    face = _noise((512, 512, 3), 2)
    alignment = align_face(find_face(_openpose18(_photo_points(*similarity)), min_eye_distance=1))
    result = paste_face(photo, face, alignment)
    x0, y0, x1, y1 = result.box
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    assert result.mask.shape == (height, width) and result.mask.dtype == np.float32
    outside = np.ones((height, width), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(result.image[outside], photo[outside])
    assert np.all(result.mask[outside] == 0) and result.mask.min() >= 0 and result.mask.max() <= 1
    rows, cols = np.nonzero(result.mask)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == result.box
    inside = result.image[y0:y1, x0:x1] != photo[y0:y1, x0:x1]
    assert inside.any(axis=2).mean() > 0.5
    want_image, want_mask = _reference_paste(photo, face, alignment.inverse)
    np.testing.assert_allclose(result.mask, want_mask, rtol=0, atol=1e-4)
    assert np.abs(result.image.astype(int) - want_image).max() <= 1  # cv2's fixed-point warp of a sub-window


def test_paste_of_a_uniform_face_is_that_colour_where_the_mask_is_one():
    photo = np.zeros((240, 260, 3), np.uint8)
    alignment = align_face(find_face(_openpose18(_photo_points(10.0, 0.4, 40.0, 20.0))))
    result = paste_face(photo, np.full((512, 512, 3), (200, 100, 50), np.uint8), alignment)
    full = result.mask == 1
    assert full.sum() > 0.4 * (0.4 * 512) ** 2
    np.testing.assert_array_equal(result.image[full], np.tile([200, 100, 50], (int(full.sum()), 1)))


def test_paste_of_a_face_outside_the_photo_changes_nothing():
    photo = _noise((60, 80, 3), 3)
    alignment = align_face(find_face(_openpose18(_photo_points(0.0, 0.2, 500.0, 500.0))))
    result = paste_face(photo, _noise((512, 512, 3), 4), alignment)
    assert result.box == (0, 0, 0, 0)
    np.testing.assert_array_equal(result.image, photo)
    assert not result.mask.any()


def test_paste_checks_the_face_size():
    alignment = align_face(find_face(_openpose18(FRONTAL)))
    with pytest.raises(ValueError, match="512 x 512 aligned crop"):
        paste_face(np.zeros((50, 50, 3), np.uint8), np.zeros((256, 256, 3), np.uint8), alignment)
    with pytest.raises(ValueError, match="RGB uint8 H x W x 3"):
        paste_face(np.zeros((50, 50), np.uint8), np.zeros((512, 512, 3), np.uint8), alignment)
