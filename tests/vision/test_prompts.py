"""SAM prompts from a garment mask and from a drawn person's clothing mask and OpenPose-18 keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mycloset_assets.vision.prompts import (
    EmptyMaskError,
    Refinement,
    SamPrompt,
    agree,
    garment_prompt,
    input_shape,
    person_clothing_prompt,
    scale_coords,
    scale_prompt,
)
from mycloset_assets.vision.quality import mask_iou

HEIGHT, WIDTH = 240, 180


def person_keypoints() -> np.ndarray:
    """OpenPose-18 keypoints of the drawn person (x, y, score); the person faces the camera, so their right side
    is on the image's left."""
    points = {
        0: (90, 42),  # nose
        1: (90, 68),  # neck
        2: (66, 74),  # right shoulder
        3: (50, 110),
        4: (50, 145),  # right wrist
        5: (114, 74),  # left shoulder
        6: (130, 110),
        7: (130, 145),  # left wrist
        8: (74, 158),  # right hip
        9: (76, 198),  # right knee
        10: (76, 232),
        11: (106, 158),  # left hip
        12: (104, 198),  # left knee
        13: (104, 232),
        14: (83, 36),  # right eye
        15: (97, 36),  # left eye
        16: (74, 40),  # right ear
        17: (106, 40),  # left ear
    }
    keypoints = np.zeros((18, 3))
    for index, (x, y) in points.items():
        keypoints[index] = (x, y, 0.9)
    return keypoints


def draw_person() -> dict[str, np.ndarray]:
    """Part masks of a person-like figure: head, upper clothes (the torso), arms, pants (two legs)."""
    head = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(head, (90, 40), 22, 1, -1)
    upper = np.zeros((HEIGHT, WIDTH), bool)
    upper[70:161, 60:121] = True
    arms = np.zeros((HEIGHT, WIDTH), bool)
    arms[72:150, 40:59] = True
    arms[72:150, 122:141] = True
    pants = np.zeros((HEIGHT, WIDTH), bool)
    pants[161:, 64:89] = True
    pants[161:, 92:117] = True
    return {"head": head.astype(bool), "upper": upper, "arms": arms, "pants": pants}


def inside(mask: np.ndarray, points: np.ndarray) -> list[bool]:
    return [bool(mask[int(round(y)), int(round(x))]) for x, y in points]


def covers(box: np.ndarray, points: np.ndarray) -> bool:
    return bool(((points >= box[:2]) & (points <= box[2:])).all())


def mask_corners(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], dtype=float)


def tshirt(height: int = 200, width: int = 200) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    outline = [
        (60, 30),
        (140, 30),
        (185, 70),
        (160, 95),
        (140, 80),
        (140, 180),
        (60, 180),
        (60, 80),
        (40, 95),
        (15, 70),
    ]
    cv2.fillPoly(mask, [np.array(outline, np.int32)], 1)
    return mask.astype(bool)


def test_upper_prompt_of_a_drawn_person() -> None:
    parts, keypoints = draw_person(), person_keypoints()
    prompt = person_clothing_prompt(parts["upper"], keypoints)
    assert prompt.points.shape == (4, 2) and prompt.points.dtype == np.float64
    assert prompt.labels.dtype == np.int64 and prompt.labels.tolist() == [1, 1, 1, 1]
    torso = keypoints[[1, 2, 5, 8, 11], :2]
    assert covers(prompt.box, mask_corners(parts["upper"])) and covers(prompt.box, torso)
    # the box: mask and torso keypoints span x 60..120, y 68..160; 5% of the larger side (92) on each side
    np.testing.assert_allclose(prompt.box, [60 - 4.6, 68 - 4.6, 120 + 4.6, 160 + 4.6])
    # neck to mid-hip, right shoulder to right hip, left shoulder to left hip, then the deepest mask pixel
    np.testing.assert_allclose(prompt.points[:3], [[90, 113], [70, 116], [110, 116]])
    assert inside(parts["upper"], prompt.points) == [True] * 4
    assert prompt.points[3].tolist() == [90.0, 115.0]  # the centre of the 61 x 91 rectangle
    # the face lies above the torso box: no background point
    assert prompt.background.shape == (0, 2)


def test_face_inside_the_box_becomes_background() -> None:
    """A hoodie: the clothing mask rings the face, so the box covers it and the face points say 'not this'."""
    parts, keypoints = draw_person(), person_keypoints()
    hood = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(hood, (90, 40), 32, 1, -1)
    hoodie = parts["upper"] | (hood.astype(bool) & ~parts["head"])
    prompt = person_clothing_prompt(hoodie, keypoints)
    assert prompt.labels.tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    np.testing.assert_array_equal(prompt.background, keypoints[[0, 14, 15, 16, 17], :2])
    assert inside(hoodie, prompt.background) == [False] * 5
    assert inside(hoodie, prompt.foreground) == [True] * 4
    assert covers(prompt.box, prompt.points) and covers(prompt.box, mask_corners(hoodie))


def test_low_scores_and_missing_keypoints_are_ignored() -> None:
    parts, keypoints = draw_person(), person_keypoints()
    keypoints[[2, 5], 2] = 0.05  # shoulders below min_score
    keypoints[1] = 0.0  # the neck is missing
    prompt = person_clothing_prompt(parts["upper"], keypoints)
    assert prompt.labels.tolist() == [1]  # only the interior maximum is left
    np.testing.assert_allclose(prompt.box, [55.5, 65.5, 124.5, 164.5])  # 5% of 90
    looser = person_clothing_prompt(parts["upper"], keypoints, min_score=0.05)
    np.testing.assert_allclose(looser.points[:2], [[70, 116], [110, 116]])


def test_keypointless_prompt_comes_from_the_mask() -> None:
    parts = draw_person()
    prompt = person_clothing_prompt(parts["upper"], np.zeros((18, 3)))
    assert prompt.points.tolist() == [[90.0, 115.0]] and prompt.labels.tolist() == [1]
    np.testing.assert_allclose(prompt.box, [55.5, 65.5, 124.5, 164.5])  # 5% of 90


def test_lower_prompt_uses_hips_and_knees() -> None:
    parts, keypoints = draw_person(), person_keypoints()
    prompt = person_clothing_prompt(parts["pants"], keypoints, "lower")
    assert covers(prompt.box, keypoints[[8, 9, 11, 12], :2]) and covers(prompt.box, mask_corners(parts["pants"]))
    # the mid-hip to mid-knee midpoint falls in the gap between the legs: only the two thigh midpoints
    np.testing.assert_allclose(prompt.points[:2], [[75, 178], [105, 178]])
    assert prompt.labels.tolist() == [1, 1, 1]
    assert inside(parts["pants"], prompt.points) == [True] * 3
    assert prompt.box[3] == HEIGHT - 1  # clipped to the photo


def test_full_prompt_covers_torso_and_legs() -> None:
    parts, keypoints = draw_person(), person_keypoints()
    dress = parts["upper"].copy()
    dress[150:215, 62:119] = True
    prompt = person_clothing_prompt(dress, keypoints, "full")
    assert covers(prompt.box, keypoints[[1, 2, 5, 8, 9, 11, 12], :2])
    assert prompt.labels.tolist() == [1] * 7
    assert inside(dress, prompt.points) == [True] * 7


def test_bad_inputs_say_what_to_do() -> None:
    keypoints = person_keypoints()
    with pytest.raises(EmptyMaskError, match="the clothing mask is empty, so there is nothing for SAM to refine"):
        person_clothing_prompt(np.zeros((HEIGHT, WIDTH), bool), keypoints)
    with pytest.raises(EmptyMaskError, match="the garment mask is empty"):
        garment_prompt(np.zeros((10, 10), bool))
    assert issubclass(EmptyMaskError, ValueError)
    mask = draw_person()["upper"]
    with pytest.raises(ValueError, match="OpenPose-18, 18 x 3"):
        person_clothing_prompt(mask, keypoints[:17])
    with pytest.raises(ValueError, match="unknown garment category 'shoes'; use one of upper, lower, full"):
        person_clothing_prompt(mask, keypoints, "shoes")


def test_garment_prompt_on_a_tshirt() -> None:
    mask = tshirt()
    prompt = garment_prompt(mask)
    # mask x 15..185, y 30..180: 5% of 170 = 8.5 on each side, clipped at the photo's edge (199)
    np.testing.assert_allclose(prompt.box, [6.5, 21.5, 193.5, 188.5])
    assert prompt.labels.tolist() == [1, 1, 1, 0, 0]
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    deepest = distance.max()
    x, y = prompt.foreground[0].astype(int)
    assert distance[y, x] == deepest
    assert inside(mask, prompt.foreground) == [True] * 3
    assert all(distance[int(y), int(x)] >= deepest / 2 for x, y in prompt.foreground)
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(prompt.foreground) for b in prompt.foreground[i + 1 :]]
    assert min(gaps) >= deepest
    # background: the gaps under the sleeves, one on each side, inside the box
    assert inside(mask, prompt.background) == [False, False]
    assert covers(prompt.box, prompt.points)
    assert sorted(prompt.background[:, 0] < 100) == [False, True]
    assert (prompt.background[:, 1] > 100).all()


def test_garment_prompt_of_a_filled_box_has_no_background() -> None:
    mask = np.zeros((50, 80), bool)
    mask[:, 30:80] = True  # touches three edges of the photo
    prompt = garment_prompt(mask, foreground=1)
    np.testing.assert_allclose(prompt.box, [30 - 2.45, 0, 79, 49])
    assert prompt.labels.tolist() == [1]
    # the photo's edge counts as outside: the deepest point is mid-height, away from the right edge
    assert prompt.points.tolist() == [[54.0, 24.0]]


def test_prompt_validation() -> None:
    prompt = SamPrompt([[1, 2]], [1], [0, 0, 5, 5])
    assert (prompt.points.dtype, prompt.labels.dtype, prompt.box.dtype) == (np.float64, np.int64, np.float64)
    assert SamPrompt(np.empty((0, 2)), [], [0, 0, 3, 3]).points.shape == (0, 2)
    with pytest.raises(ValueError, match="one label per point"):
        SamPrompt([[1, 2]], [1, 0])
    with pytest.raises(ValueError, match="1 \\(foreground\\) or 0 \\(background\\)"):
        SamPrompt([[1, 2]], [2])
    with pytest.raises(ValueError, match="x0 <= x1"):
        SamPrompt([[1, 2]], [1], [5, 0, 0, 5])
    with pytest.raises(ValueError, match="a box or at least one point"):
        SamPrompt(np.empty((0, 2)), [])


def test_coordinates_reach_the_encoder_frame_as_resize_longest_side() -> None:
    assert input_shape(HEIGHT, WIDTH) == (1024, 768)
    assert input_shape(480, 640) == (768, 1024)
    assert input_shape(1000, 333) == (1024, 341)  # 340.992 rounds half up
    np.testing.assert_allclose(scale_coords(np.array([[45.0, 60.0]]), (HEIGHT, WIDTH)), [[192.0, 256.0]])
    # the short side scales by its rounded size: 333 -> 341, not by 1024 / 1000
    np.testing.assert_allclose(scale_coords(np.array([[333.0, 500.0]]), (1000, 333)), [[341.0, 512.0]])
    prompt = scale_prompt(SamPrompt([[30, 60]], [1], [15, 30, 90, 120]), (HEIGHT, WIDTH))
    np.testing.assert_allclose(prompt.points, [[128.0, 256.0]])
    np.testing.assert_allclose(prompt.box, [64.0, 128.0, 384.0, 512.0])


def test_agree_keeps_sam_within_the_range() -> None:
    reference = np.zeros((10, 10), bool)
    reference[:, :] = True
    half = reference.copy()
    half[5:] = False
    result = agree(reference, half, 0.9)
    assert isinstance(result, Refinement)
    assert (result.iou, result.kept, result.score) == (0.5, True, 0.9)
    assert result.mask is half
    assert result.reason == "IoU 0.500 with the reference mask is within [0.5, 1]: kept SAM's mask"

    less = half.copy()
    less[4, 9] = False  # 49 of 100 pixels
    result = agree(reference, less, 0.8, reference_name="parsing")
    assert (result.iou, result.kept) == (0.49, False)
    assert result.mask is reference
    assert result.reason == "IoU 0.490 with the parsing mask is below 0.5: kept the parsing mask"
    assert result.iou == mask_iou(less, reference)


def test_agree_upper_bound_is_inclusive_and_optional() -> None:
    reference = np.zeros((8, 8), bool)
    reference[2:6, 2:6] = True
    same = reference.copy()
    assert agree(reference, same, 0.7).kept
    result = agree(reference, same, 0.7, (0.5, 0.98))
    assert (result.iou, result.kept) == (1.0, False)
    assert (
        result.reason
        == "IoU 1.000 with the reference mask is above 0.98: SAM changed too little, kept the reference mask"
    )
    assert agree(reference, same, 0.7, (1.0, 1.0)).kept
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        agree(reference, same, 0.7, (0.8, 0.5))
    with pytest.raises(ValueError, match="different sizes"):
        agree(reference, same[:4], 0.7)
