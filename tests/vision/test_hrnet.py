"""HRNet post-processing against the reference's rules: decoding, affine crops, flip test, scale fusion, checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.vision.hrnet import (
    COCO17_SYMMETRIC_LIMBS,
    affine_matrix,
    box_to_center_scale,
    crop_person,
    decode_heatmaps,
    flip_back,
    fuse_flip,
    fuse_scales,
    heatmap_to_image,
    shift_right_one_pixel,
    validate_keypoints,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
TABLES = json.loads((FIXTURES / "keypoints.json").read_text())
NAMES = TABLES["coco17"]
FLIP_PAIRS = TABLES["coco17_flip_pairs"]


def expected_decode(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray, refine: bool) -> np.ndarray:
    """The reference's rules written out in float64 loops: first maximum in row-major order, (0, 0) when the
    maximum is not positive, quarter-pixel shift inside ``1 < p < size - 1``, then ``c + (p - size / 2) * s``
    with ``s = scale_x * 200 / w`` for x and y alike."""
    n, k, h, w = heatmaps.shape
    out = np.zeros((n, k, 2))
    for i in range(n):
        s = float(scale[i][0]) * 200 / w
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            best, bx, by = -math.inf, 0, 0
            for y in range(h):
                for x in range(w):
                    if hm[y, x] > best:
                        best, bx, by = hm[y, x], x, y
            x, y = (float(bx), float(by)) if best > 0 else (0.0, 0.0)
            if refine and 1 < x < w - 1 and 1 < y < h - 1:
                px, py = int(x), int(y)
                x += 0.25 * np.sign(hm[py, px + 1] - hm[py, px - 1])
                y += 0.25 * np.sign(hm[py + 1, px] - hm[py - 1, px])
            out[i, j] = (float(center[i][0]) + (x - w / 2) * s, float(center[i][1]) + (y - h / 2) * s)
    return out


def assert_decoded(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray, refine: bool = True) -> None:
    coords, maxvals = decode_heatmaps(heatmaps, center, scale, refine=refine)
    assert coords.dtype == np.float32 and maxvals.dtype == heatmaps.dtype
    np.testing.assert_array_equal(maxvals[..., 0], heatmaps.reshape(*heatmaps.shape[:2], -1).max(axis=2))
    np.testing.assert_allclose(coords, expected_decode(heatmaps, center, scale, refine), rtol=1e-6, atol=1e-6)


def single_map(height: int = 64, width: int = 48) -> np.ndarray:
    return np.zeros((1, 1, height, width), dtype=np.float32)


# --- decoding -------------------------------------------------------------------------------------------------


def test_peak_on_a_non_square_map_decodes_to_hand_computed_image_coordinates():
    hm = single_map()  # 64 high, 48 wide
    hm[0, 0, 10, 30] = 1.0  # row 10 (y), column 30 (x)
    hm[0, 0, 10, 31], hm[0, 0, 10, 29] = 0.5, 0.2  # right neighbour higher: x + 0.25
    hm[0, 0, 11, 30], hm[0, 0, 9, 30] = 0.1, 0.3  # upper neighbour higher: y - 0.25
    center, scale = np.array([[100.0, 200.0]], np.float32), np.array([[1.5, 2.0]], np.float32)
    coords, maxvals = decode_heatmaps(hm, center, scale)
    # s = 1.5 * 200 / 48 = 6.25; x = 100 + (30.25 - 24) * 6.25, y = 200 + (9.75 - 32) * 6.25
    np.testing.assert_array_equal(coords, [[[139.0625, 60.9375]]])
    np.testing.assert_array_equal(maxvals, [[[1.0]]])
    unrefined, _ = decode_heatmaps(hm, center, scale, refine=False)
    np.testing.assert_array_equal(unrefined, [[[137.5, 62.5]]])


@pytest.mark.parametrize(
    ("x", "y", "shifted"),
    [
        (1, 30, False),  # px = 1 is not > 1
        (46, 30, True),  # px = w - 2 < w - 1
        (47, 30, False),  # px = w - 1
        (0, 30, False),
        (20, 1, False),  # py = 1
        (20, 63, False),  # py = h - 1
        (20, 62, True),
        (2, 2, True),
    ],
)
def test_quarter_pixel_shift_only_strictly_inside_the_border(x, y, shifted):
    hm = single_map()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if 0 <= y + dy < 64 and 0 <= x + dx < 48:
                hm[0, 0, y + dy, x + dx] = 0.5 + 0.1 * dx + 0.05 * dy  # higher to the right and below
    hm[0, 0, y, x] = 1.0
    coords, _ = decode_heatmaps(hm, np.array([[24.0, 32.0]]), np.array([[0.24, 0.32]]))  # s = 1: identity frame
    offset = 0.25 if shifted else 0.0
    np.testing.assert_array_equal(coords[0, 0], [x + offset, y + offset])


def test_ties_take_the_first_maximum_in_row_major_order_and_equal_neighbours_do_not_shift():
    hm = np.zeros((1, 3, 64, 48), dtype=np.float32)
    hm[0, 0, 5, 40] = hm[0, 0, 7, 3] = 2.0  # earlier row wins although its x is larger
    hm[0, 1, 5, 20] = hm[0, 1, 5, 10] = 2.0  # same row: smaller x wins
    hm[0, 2, 20, 10] = 1.0
    hm[0, 2, 20, 9] = hm[0, 2, 20, 11] = 0.5  # equal left and right neighbours: no x shift
    hm[0, 2, 19, 10] = hm[0, 2, 21, 10] = 0.3  # equal upper and lower neighbours: no y shift
    coords, maxvals = decode_heatmaps(hm, np.array([[24.0, 32.0]]), np.array([[0.24, 0.32]]))
    np.testing.assert_array_equal(coords[0], [[40.0, 5.0], [10.0, 5.0], [10.0, 20.0]])
    np.testing.assert_array_equal(maxvals[0, :, 0], [2.0, 2.0, 1.0])


def test_maps_without_a_positive_maximum_decode_to_the_crop_corner():
    hm = np.full((1, 2, 64, 48), -1.0, dtype=np.float32)
    hm[0, 1, 30, 20] = 0.0  # maximum 0 is not > 0
    hm[0, 1, 31, 20] = -0.5
    coords, maxvals = decode_heatmaps(hm, np.array([[100.0, 50.0]]), np.array([[0.48, 0.64]]))
    # heatmap (0, 0) -> 100 + (0 - 24) * 2, 50 + (0 - 32) * 2 (s = 96 / 48)
    np.testing.assert_array_equal(coords[0], [[52.0, -14.0], [52.0, -14.0]])
    np.testing.assert_array_equal(maxvals[0, :, 0], [-1.0, 0.0])


@pytest.mark.parametrize(("height", "width"), [(64, 48), (96, 72), (9, 13)])
@pytest.mark.parametrize("refine", [True, False])
def test_random_maps_match_the_reference_rules(height, width, refine):
    rng = np.random.default_rng(height * width)
    hm = rng.standard_normal((3, 17, height, width)).astype(np.float32)
    hm[1] = np.round(hm[1])  # many ties and equal neighbours
    hm[2, :4] = -np.abs(hm[2, :4])  # no positive maximum
    boxes = [(12.0, 40.5, 80.0, 190.0), (300.0, 7.0, 220.0, 90.0), (0.0, 0.0, 640.0, 480.0)]
    centers, scales = zip(*(box_to_center_scale(b, (192, 256)) for b in boxes), strict=True)
    assert_decoded(hm, np.stack(centers), np.stack(scales), refine)


def test_reference_network_heatmaps_decode_as_the_reference_rules():
    with np.load(FIXTURES / "parity" / "hrnet_w32_coco_256x192.npz") as data:
        heatmaps = data["heatmaps"]
    center, scale = box_to_center_scale((35.0, 22.0, 150.0, 300.0), (192, 256))
    assert_decoded(heatmaps, center[None], scale[None])


def test_torch_tensors_decode_like_arrays_and_float64_keeps_its_dtype():
    hm = np.random.default_rng(3).random((2, 17, 64, 48), dtype=np.float32)
    center, scale = np.array([[50.0, 60.0], [10.0, 20.0]]), np.array([[1.0, 1.3], [0.5, 0.7]])
    from_array = decode_heatmaps(hm, center, scale)
    from_tensor = decode_heatmaps(torch.from_numpy(hm), center, scale)
    for a, b in zip(from_array, from_tensor, strict=True):
        np.testing.assert_array_equal(a, b)
    coords, maxvals = decode_heatmaps(hm.astype(np.float64), center, scale)
    assert (coords.dtype, maxvals.dtype) == (np.float32, np.float64)
    np.testing.assert_array_equal(coords, from_array[0])


def test_no_people_decode_to_empty_arrays():
    coords, maxvals = decode_heatmaps(np.zeros((0, 17, 64, 48), np.float32), np.zeros((0, 2)), np.zeros((0, 2)))
    assert (coords.shape, coords.dtype, maxvals.shape, maxvals.dtype) == (
        (0, 17, 2),
        np.float32,
        (0, 17, 1),
        np.float32,
    )


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"heatmaps must be N x K x h x w, got shape \(17, 64, 48\)"):
        decode_heatmaps(np.zeros((17, 64, 48), np.float32), np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"N = 2 heatmap sets, got \(1, 2\) and \(2, 2\)"):
        decode_heatmaps(np.zeros((2, 17, 8, 6), np.float32), np.zeros((1, 2)), np.ones((2, 2)))


# --- boxes, affine transforms, crops --------------------------------------------------------------------------


def test_box_to_center_scale_grows_to_the_input_aspect_ratio_and_pads():
    center, scale = box_to_center_scale((0, 0, 30, 200), (192, 256))  # too narrow: w = 200 * 0.75 = 150
    assert center.dtype == scale.dtype == np.float32
    np.testing.assert_array_equal(center, [15.0, 100.0])
    np.testing.assert_array_equal(scale, [0.9375, 1.25])  # (150, 200) / 200 * 1.25
    center, scale = box_to_center_scale((10, 20, 100, 100), (192, 256))  # too wide: h = 100 / 0.75
    np.testing.assert_array_equal(center, [60.0, 70.0])
    np.testing.assert_allclose(scale, [0.625, 100 / 0.75 / 200 * 1.25], rtol=1e-7)
    _, scale = box_to_center_scale((5, 5, 75, 100), (192, 256), padding=1.0)  # already 3:4
    np.testing.assert_allclose(scale, [0.375, 0.5], rtol=1e-7)


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (0, 0, 10, -1)])
def test_degenerate_boxes_are_refused(box):
    with pytest.raises(ValueError, match="must have a positive width and height"):
        box_to_center_scale(box, (192, 256))


def test_affine_matrix_is_the_closed_form_crop_and_inverts():
    center, scale, size = np.array([123.5, 77.25], np.float32), np.array([1.7, 2.4], np.float32), (192, 256)
    zoom = size[0] / (float(scale[0]) * 200)  # only scale_x enters
    forward = affine_matrix(center, scale, size)
    expected = [[zoom, 0, size[0] / 2 - center[0] * zoom], [0, zoom, size[1] / 2 - center[1] * zoom]]
    np.testing.assert_allclose(forward, expected, rtol=1e-6, atol=1e-5)  # float32 points, as the reference
    inverse = affine_matrix(center, scale, size, inverse=True)
    points = np.random.default_rng(0).uniform(-50, 400, (20, 2))
    there = points @ forward[:, :2].T + forward[:, 2]
    np.testing.assert_allclose(there @ inverse[:, :2].T + inverse[:, 2], points, rtol=0, atol=1e-9)


def test_crop_at_unit_zoom_is_an_exact_window_of_the_image():
    image = np.random.default_rng(1).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    center, scale = np.array([50.0, 60.0], np.float32), np.array([32 / 200, 48 / 200], np.float32)
    crop = crop_person(image, center, scale, (32, 48))
    assert crop.shape == (48, 32, 3)
    np.testing.assert_array_equal(crop, image[36:84, 34:66])
    corner = crop_person(image, np.array([0.0, 0.0], np.float32), scale, (32, 48))
    np.testing.assert_array_equal(corner[:24, :16], 0)  # outside the image: zeros
    np.testing.assert_array_equal(corner[24:, 16:], image[:24, :16])


def test_image_point_to_crop_to_heatmap_and_back_round_trips():
    """A point mapped into the 256 x 192 input and divided by the stride 4 decodes back to itself."""
    center, scale = box_to_center_scale((40.0, 15.0, 130.0, 260.0), (192, 256))
    forward = affine_matrix(center, scale, (192, 256))
    points = np.array([[40.0, 15.0], [170.0, 275.0], [105.0, 145.0], [-30.0, 500.0]])
    in_heatmap = (points @ forward[:, :2].T + forward[:, 2]) / 4
    np.testing.assert_allclose(heatmap_to_image(in_heatmap, center, scale, (48, 64)), points, atol=1e-9)


# --- flip test ------------------------------------------------------------------------------------------------


def test_flip_pairs_swap_left_and_right_names():
    assert len(FLIP_PAIRS) == 8
    for left, right in FLIP_PAIRS:
        assert NAMES[left].replace("left_", "right_") == NAMES[right]
    swap = {a: b for pair in FLIP_PAIRS for a, b in (pair, pair[::-1])}
    for left_limb, right_limb in COCO17_SYMMETRIC_LIMBS:
        assert (swap[left_limb[0]], swap[left_limb[1]]) == right_limb
        assert all(NAMES[i].startswith("left_") for i in left_limb)


def test_flip_back_mirrors_each_map_and_swaps_the_pairs():
    flipped = np.random.default_rng(2).random((2, 17, 8, 6), dtype=np.float32)
    back = flip_back(flipped, FLIP_PAIRS)
    swap = {a: b for pair in FLIP_PAIRS for a, b in (pair, pair[::-1])}
    for k in range(17):
        source = swap.get(k, k)
        for x in range(6):
            np.testing.assert_array_equal(back[:, k, :, x], flipped[:, source, :, 5 - x])
    assert swap.get(0) is None  # the nose keeps its channel


def test_one_pixel_shift_keeps_column_zero():
    maps = np.array([[[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]], dtype=np.float32)
    np.testing.assert_array_equal(shift_right_one_pixel(maps), [[[[1, 1, 2, 3], [5, 5, 6, 7]]]])


@pytest.mark.parametrize("shift", [True, False])
def test_flip_fusion_is_the_mean_with_the_flipped_back_shifted_maps(shift):
    rng = np.random.default_rng(4)
    maps = rng.random((2, 17, 8, 6), dtype=np.float32)
    flipped = rng.random((2, 17, 8, 6), dtype=np.float32)
    fused = fuse_flip(maps, flipped, FLIP_PAIRS, shift=shift)
    swap = {a: b for pair in FLIP_PAIRS for a, b in (pair, pair[::-1])}
    for k in range(17):
        for x in range(6):
            column = max(x - 1, 0) if shift else x  # the flipped-back column this output column takes
            want = (maps[:, k, :, x] + flipped[:, swap.get(k, k), :, 5 - column]) * np.float32(0.5)
            np.testing.assert_array_equal(fused[:, k, :, x], want)


def test_a_mirrored_peak_fuses_onto_the_original_peak():
    """The mirrored crop's left-eye peak at column w - 1 - x lands, after flip back and the shift, on the right
    eye at column x + 1: the stride-4 misalignment the reference's shift compensates."""
    maps = np.zeros((1, 17, 16, 12), dtype=np.float32)
    flipped = np.zeros_like(maps)
    flipped[0, 1, 5, 12 - 1 - 4] = 1.0
    fused = fuse_flip(maps, flipped, FLIP_PAIRS)
    assert np.argwhere(fused[0] > 0).tolist() == [[2, 5, 5]]


# --- multi-scale fusion ---------------------------------------------------------------------------------------


def ramp_maps(factor: float, height: int, width: int, center: np.ndarray, scale_x: float) -> np.ndarray:
    """Maps whose value is the image-space function 0.3 X - 0.2 Y + 5 at each heatmap pixel of the crop."""
    step = scale_x * 200 * factor / width
    xs = center[0] + (np.arange(width) - width / 2) * step
    ys = center[1] + (np.arange(height) - height / 2) * step
    values = 0.3 * xs[None, :] - 0.2 * ys[:, None] + 5
    return np.broadcast_to(values, (2, 3, height, width)).astype(np.float32)


def test_one_scale_at_factor_one_is_returned_unchanged():
    maps = np.random.default_rng(5).random((2, 17, 64, 48), dtype=np.float32)
    np.testing.assert_array_equal(fuse_scales([maps], [1.0]), maps)
    np.testing.assert_array_equal(fuse_scales([maps, maps], [1.0, 1.0]), maps)


def test_scale_fusion_maps_every_scale_to_the_same_image_points():
    center, scale_x = np.array([140.0, 210.0]), 1.2
    sets = [(1.0, 64, 48), (1.5, 32, 24), (0.8, 64, 48), (1.25, 80, 60)]
    maps = [ramp_maps(f, h, w, center, scale_x) for f, h, w in sets]
    fused = fuse_scales(maps, [f for f, _, _ in sets])
    assert fused.shape == (2, 3, 64, 48) and fused.dtype == np.float32
    expected = ramp_maps(1.0, 64, 48, center, scale_x)
    # bilinear sampling reproduces a linear function wherever every scale's map covers the point
    u, v = np.meshgrid(np.arange(48), np.arange(64))
    covered = np.ones((64, 48), dtype=bool)
    for f, h, w in sets:
        ratio = w / (48 * f)
        x, y = w / 2 + (u - 24) * ratio, h / 2 + (v - 32) * ratio
        covered &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    assert 500 < covered.sum() < 64 * 48  # the 0.8 crop misses the border of the factor-1 frame
    np.testing.assert_allclose(fused[:, :, covered], expected[:, :, covered], rtol=0, atol=1e-3)


def test_fused_peaks_of_two_resolutions_decode_at_the_shared_point():
    full, half = np.zeros((1, 1, 64, 48), np.float32), np.zeros((1, 1, 32, 24), np.float32)
    full[0, 0, 30, 20] = 1.0
    half[0, 0, 15, 10] = 1.0  # the same image point at half the heatmap resolution
    fused = fuse_scales([full, half], [1.0, 1.0])
    assert fused[0, 0, 30, 20] == 1.0 and fused.sum() == pytest.approx(1.0 + 0.5 * 3)  # half map spread 2x
    coords, _ = decode_heatmaps(fused, np.array([[24.0, 32.0]]), np.array([[0.24, 0.32]]), refine=False)
    np.testing.assert_array_equal(coords[0, 0], [20.0, 30.0])


def test_scale_fusion_rejects_bad_arguments():
    maps = np.zeros((1, 17, 8, 6), np.float32)
    with pytest.raises(ValueError, match="need one factor per heatmap set, got 2 sets and 1 factors"):
        fuse_scales([maps, maps], [1.0])
    with pytest.raises(ValueError, match=r"scale factors must be positive, got \[1.0, 0.0\]"):
        fuse_scales([maps, maps], [1.0, 0.0])
    with pytest.raises(ValueError, match="heatmaps to resample must be at least 2 x 2, got 8 x 1"):
        fuse_scales([maps, maps[..., :1]], [1.0, 1.0])


# --- keypoint validation --------------------------------------------------------------------------------------

STANDING = np.array(
    [
        [100, 40],  # nose
        [95, 35],
        [105, 35],  # eyes
        [90, 38],
        [110, 38],  # ears
        [80, 70],
        [120, 70],  # shoulders
        [75, 110],
        [125, 110],  # elbows
        [72, 145],
        [128, 145],  # wrists
        [88, 150],
        [112, 150],  # hips
        [86, 200],
        [114, 200],  # knees
        [85, 250],
        [115, 250],  # ankles
    ],
    dtype=np.float32,
)


def check(keypoints: np.ndarray = STANDING, scores: np.ndarray | None = None, **kwargs):
    scores = np.full(17, 0.9, np.float32) if scores is None else scores
    return validate_keypoints(keypoints, scores, image_height=300, image_width=200, names=NAMES, **kwargs)


def test_a_plausible_person_passes_every_rule():
    result = check()
    assert result.valid.dtype == bool and result.valid.all() and result.rejections == []


def test_low_scores_are_rejected_with_the_score():
    scores = np.full(17, 0.9, np.float32)
    scores[0], scores[15] = 0.1, np.nan
    result = check(scores=scores)
    assert np.flatnonzero(~result.valid).tolist() == [0, 15]
    (nose, ankle) = result.rejections
    assert (nose.keypoint, nose.name, nose.rule, nose.limit) == (0, "nose", "confidence", 0.2)
    assert nose.value == pytest.approx(0.1) and nose.message == "score 0.1 < 0.2"
    assert (ankle.name, ankle.rule) == ("left_ankle", "confidence") and math.isnan(ankle.value)


def test_points_outside_the_pixel_area_are_rejected_with_their_distance():
    points = STANDING.copy()
    points[1] = (-3.0, 35.0)  # 2.5 px left of the -0.5 edge
    points[2] = (199.5, 299.5)  # on the far corner: inside
    points[3] = (202.5, 303.5)  # (3, 4) beyond the far corner: 5 px
    points[4] = (np.nan, 10.0)
    result = check(points)
    assert [(r.keypoint, r.rule, r.value) for r in result.rejections] == [
        (1, "outside_image", 2.5),
        (3, "outside_image", 5.0),
        (4, "outside_image", math.inf),
    ]
    assert result.rejections[1].message == "(202.5, 303.5) is 5.0 px outside the 200 x 300 image"
    assert result.valid.tolist() == [i not in (1, 3, 4) for i in range(17)]


@pytest.mark.parametrize(("weak", "rejected"), [(9, 9), (10, 10)])
def test_a_forearm_five_times_its_mirror_rejects_the_less_confident_wrist(weak, rejected):
    points = STANDING.copy()
    points[9] = (75, 210)  # left forearm 100 px
    points[10] = (125, 130)  # right forearm 20 px
    scores = np.full(17, 0.9, np.float32)
    scores[weak] = 0.5
    result = check(points, scores)
    (rejection,) = result.rejections
    left, right = math.dist(points[7], points[9]), math.dist(points[8], points[10])
    assert (left, right) == (100.0, 20.0)
    assert (rejection.keypoint, rejection.rule, rejection.value, rejection.limit) == (rejected, "limb_ratio", 5.0, 3.0)
    assert rejection.message == "left_elbow-left_wrist 100.0 px vs right_elbow-right_wrist 20.0 px: ratio 5 > 3"
    assert result.valid.tolist() == [i != rejected for i in range(17)]
    assert check(points, scores, max_limb_ratio=5.0).rejections == []


def test_a_wrong_elbow_is_rejected_once_and_exempts_the_forearm():
    points = STANDING.copy()
    points[7] = (20, 250)  # left upper arm ~190 px against 40 px; forearm now also implausible
    scores = np.full(17, 0.9, np.float32)
    scores[7] = 0.4
    result = check(points, scores)
    assert [(r.keypoint, r.rule) for r in result.rejections] == [(7, "limb_ratio")]


def test_limbs_with_an_invalid_endpoint_are_not_compared():
    points = STANDING.copy()
    points[9] = (75, 210)
    points[10] = (125, 130)
    scores = np.full(17, 0.9, np.float32)
    scores[8] = 0.05  # right elbow fails the score: the forearm pair is skipped
    result = check(points, scores)
    assert [(r.keypoint, r.rule) for r in result.rejections] == [(8, "confidence")]


def test_validation_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"K x 2 with K scores and K names, got \(17, 2\), \(16,\), 17"):
        check(scores=np.ones(16, np.float32))
