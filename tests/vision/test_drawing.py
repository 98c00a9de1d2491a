"""Drawing: exact pixels at known keypoints, limbs and masks; palette and legend layout; warped grid lattices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.vision.drawing import (
    COCO_CENTRE,
    COCO_LEFT,
    COCO_RIGHT,
    HAND_POINT,
    OPENPOSE18_COLORS,
    coco17_skeleton,
    colorize_parsing,
    draw_coco17,
    draw_grid,
    draw_hands,
    draw_mask,
    draw_openpose18,
    draw_parsing,
    draw_skeleton,
    draw_warp,
    hand21_skeleton,
    openpose18_skeleton,
    parsing_legend,
    parsing_palette,
)
from mycloset_assets.vision.tps import tps_grid

FIXTURES = Path(__file__).parents[1] / "fixtures"
BACKGROUND = 90
HEIGHT, WIDTH = 120, 160  # non-square, so a swapped x / y lands elsewhere (or outside)

# One standing person, every pair of keypoints at least 11 px apart.
BODY = {
    0: (80, 20),
    1: (80, 40),
    2: (56, 40),
    3: (40, 64),
    4: (30, 90),
    5: (104, 40),
    6: (120, 64),
    7: (130, 90),
    8: (68, 80),
    9: (64, 100),
    10: (60, 116),
    11: (92, 80),
    12: (96, 100),
    13: (100, 116),
    14: (72, 12),
    15: (88, 12),
    16: (62, 18),
    17: (98, 18),
}


def canvas() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), BACKGROUND, dtype=np.uint8)


def body(score: float = 0.9) -> np.ndarray:
    keypoints = np.zeros((1, 18, 3))
    for index, (x, y) in BODY.items():
        keypoints[0, index] = (x, y, score)
    return keypoints


def limb_colour(colour: tuple[int, int, int], alpha: float = 0.6) -> list[int]:
    return np.rint(BACKGROUND * (1 - alpha) + np.asarray(colour) * alpha).astype(int).tolist()


# ---------------------------------------------------------------------------------------------- skeletons


def test_skeleton_tables_come_from_keypoints_json() -> None:
    tables = json.loads((FIXTURES / "keypoints.json").read_text())
    openpose = openpose18_skeleton()
    assert openpose.edges == tuple(map(tuple, tables["openpose_limbs_0based"][:17]))
    assert openpose.keypoint_names == tuple(tables["openpose18"])
    assert coco17_skeleton().edges == tuple(map(tuple, tables["coco17_skeleton_0based"]))
    assert hand21_skeleton().edges == tuple(map(tuple, tables["openpose_hand21_edges"]))


def test_openpose18_keypoints_are_opaque_discs_in_their_part_colours() -> None:
    image = canvas()
    drawn = draw_openpose18(image, body())
    for index, (x, y) in BODY.items():
        assert drawn[y, x].tolist() == list(OPENPOSE18_COLORS[index]), index
        assert drawn[y - 4, x].tolist() == list(OPENPOSE18_COLORS[index])  # radius 4
    assert drawn[20, 80].tolist() == [255, 0, 0]  # the nose, at row y = 20, column x = 80
    assert np.all(image == BACKGROUND), "the input must not be modified"
    assert drawn.dtype == np.uint8
    assert drawn.shape == (HEIGHT, WIDTH, 3)


def test_openpose18_limbs_are_blended_ellipses_of_half_width_4() -> None:
    drawn = draw_openpose18(canvas(), body())
    # Limb 0 (Neck -> RShoulder, red) runs along y = 40 from x = 56 to x = 80; its middle is (68, 40).
    assert drawn[40, 68].tolist() == [189, 36, 36] == limb_colour((255, 0, 0))
    assert drawn[43, 68].tolist() == [189, 36, 36]
    assert drawn[46, 68].tolist() == [BACKGROUND] * 3
    # Limb 3 (RElbow -> RWrist) in colour 3.
    assert drawn[77, 35].tolist() == limb_colour(OPENPOSE18_COLORS[3])


def test_ear_shoulder_links_are_not_drawn() -> None:
    drawn = draw_openpose18(canvas(), body())
    # Middle of RShoulder (56, 40) -> REar (62, 18): the reference draws only the first 17 limbs.
    assert drawn[29, 59].tolist() == [BACKGROUND] * 3


def test_missing_and_weak_keypoints_and_their_limbs_are_not_drawn() -> None:
    keypoints = body()
    keypoints[0, 4] = (-1, -1, 0)  # RWrist missing, as the decoders report it
    keypoints[0, 7, 2] = 0.1  # LWrist exactly at the threshold: not above it
    keypoints[0, 9, 2] = np.nan  # RKnee with an undefined score
    drawn = draw_openpose18(canvas(), keypoints)
    assert drawn[90, 30].tolist() == [BACKGROUND] * 3
    assert drawn[77, 35].tolist() == [BACKGROUND] * 3  # RElbow -> RWrist
    assert drawn[90, 130].tolist() == [BACKGROUND] * 3
    assert drawn[77, 125].tolist() == [BACKGROUND] * 3  # LElbow -> LWrist
    assert drawn[100, 64].tolist() == [BACKGROUND] * 3
    assert drawn[64, 40].tolist() == list(OPENPOSE18_COLORS[3])  # RElbow itself is still there
    assert np.all(draw_openpose18(canvas(), np.full((1, 18, 3), -1.0)) == BACKGROUND)


def test_threshold_is_adjustable() -> None:
    keypoints = body(score=0.3)
    assert draw_openpose18(canvas(), keypoints)[20, 80].tolist() == [255, 0, 0]
    assert np.all(draw_openpose18(canvas(), keypoints, threshold=0.5) == BACKGROUND)


def test_coordinates_are_rounded_and_never_swapped() -> None:
    keypoints = np.full((1, 18, 3), -1.0)
    keypoints[0, 0] = (140.4, 20.6, 1.0)  # far right, near the top
    drawn = draw_skeleton(canvas(), keypoints, openpose18_skeleton(), point_radius=0)
    changed = np.argwhere(np.any(drawn != BACKGROUND, axis=2))
    assert changed.tolist() == [[21, 140]]


def test_several_people_and_a_single_person_array() -> None:
    second = np.full((1, 18, 3), -1.0)
    second[0, 0] = (20, 100, 0.5)
    second[0, 1] = (20, 70, 0.5)
    drawn = draw_openpose18(canvas(), np.concatenate([body(), second]))
    assert drawn[20, 80].tolist() == [255, 0, 0]
    assert drawn[100, 20].tolist() == [255, 0, 0]
    assert drawn[85, 20].tolist() == limb_colour(OPENPOSE18_COLORS[12])  # the second person's Neck -> Nose
    np.testing.assert_array_equal(draw_openpose18(canvas(), body()[0]), draw_openpose18(canvas(), body()))
    np.testing.assert_array_equal(draw_openpose18(canvas(), np.zeros((0, 18, 3))), canvas())


def test_coco17_colours_follow_the_side() -> None:
    keypoints = np.full((1, 17, 3), -1.0)
    keypoints[0, 0] = (80, 20, 0.9)  # nose
    keypoints[0, 5] = (104, 40, 0.9)  # left_shoulder
    keypoints[0, 6] = (56, 40, 0.9)  # right_shoulder
    keypoints[0, 7] = (120, 64, 0.9)  # left_elbow
    drawn = draw_coco17(canvas(), keypoints)
    assert drawn[20, 80].tolist() == list(COCO_CENTRE)
    assert drawn[40, 104].tolist() == list(COCO_LEFT)
    assert drawn[40, 56].tolist() == list(COCO_RIGHT)
    assert drawn[40, 80].tolist() == limb_colour(COCO_CENTRE)  # shoulder to shoulder crosses the middle
    assert drawn[52, 112].tolist() == limb_colour(COCO_LEFT)  # left shoulder -> left elbow
    assert drawn[30, 92].tolist() == [BACKGROUND] * 3  # nose and shoulders are not linked in COCO


def test_hand_edges_have_the_reference_hues_and_red_points() -> None:
    skeleton = hand21_skeleton()
    assert skeleton.edge_colors[0] == (255, 0, 0)
    assert skeleton.edge_colors[5] == (128, 255, 0)  # hue 5 / 20
    assert skeleton.edge_colors[10] == (0, 255, 255)  # hue 10 / 20
    keypoints = np.full((1, 21, 3), -1.0)
    keypoints[0, 0] = (20, 100, 0.8)  # wrist
    keypoints[0, 5] = (20, 60, 0.8)  # index finger base: edge 4 (0 -> 5)
    keypoints[0, 9] = (60, 100, 0.8)  # middle finger base: edge 8 (0 -> 9), but only the wrist side is known
    keypoints[0, 9, 2] = 0.0
    drawn = draw_hands(canvas(), keypoints)
    assert drawn[100, 20].tolist() == list(HAND_POINT)
    assert drawn[80, 20].tolist() == limb_colour(skeleton.edge_colors[4])
    assert drawn[81, 22].tolist() == [BACKGROUND] * 3  # hand edges are thin (half-width 1)
    assert drawn[100, 40].tolist() == [BACKGROUND] * 3


def test_bad_shapes_are_refused_with_the_expected_layout() -> None:
    with pytest.raises(
        ValueError, match=r"openpose18 keypoints must be P x 18 x 3 \(x, y, score\), got shape \(1, 17, 3\)"
    ):
        draw_openpose18(canvas(), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match=r"image must be an RGB uint8 H x W x 3 array, got shape \(4, 4\) dtype uint8"):
        draw_openpose18(np.zeros((4, 4), dtype=np.uint8), body())
    with pytest.raises(ValueError, match=r"limb_alpha must lie in \[0, 1\], got 1.5"):
        draw_skeleton(canvas(), body(), openpose18_skeleton(), limb_alpha=1.5)


# ---------------------------------------------------------------------------------------------- parsing

LIP = json.loads((FIXTURES / "labels.json").read_text())["LIP-20"]["names"]


def test_palette_is_the_pascal_voc_colour_map() -> None:
    palette = parsing_palette(21)
    assert palette.dtype == np.uint8
    assert palette.shape == (21, 3)
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[5].tolist() == [128, 0, 128]
    assert palette[15].tolist() == [192, 128, 128]  # VOC "person"
    assert palette[20].tolist() == [0, 64, 128]
    np.testing.assert_array_equal(parsing_palette(21), palette)
    np.testing.assert_array_equal(parsing_palette(300)[:21], palette)
    assert len({tuple(c) for c in parsing_palette(256)}) == 256
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        parsing_palette(0)


def test_colorize_parsing_maps_every_id_to_its_colour() -> None:
    labels = np.array([[0, 5, 5], [13, 19, 0]])
    colours = colorize_parsing(labels, LIP)
    assert colours[0, 1].tolist() == [128, 0, 128]
    assert colours[1, 2].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(colours, parsing_palette(20)[labels])
    with pytest.raises(ValueError, match=r"label ids \[20, 25\] are outside the label set of 20 names"):
        colorize_parsing(np.array([[20, 25, 1]]), LIP)
    with pytest.raises(ValueError, match="labels must be an H x W integer array"):
        colorize_parsing(np.zeros((2, 2), dtype=np.float32), LIP)


def swatch_runs(strip: np.ndarray) -> list[list[int]]:
    """The colours of the runs of non-white pixels down the swatch column (x = 6 + 12 / 2)."""
    column = strip[:, 12]
    runs: list[list[int]] = []
    previous_white = True
    for pixel in column:
        white = bool(np.all(pixel == 255))
        if not white and previous_white:
            runs.append(pixel.tolist())
        previous_white = white
    return runs


def test_legend_has_one_swatch_per_present_label_in_id_order() -> None:
    labels = np.array([[0, 0, 9], [2, 5, 9]])
    strip = parsing_legend(labels, LIP)
    palette = parsing_palette(20)
    assert swatch_runs(strip) == [palette[i].tolist() for i in (0, 2, 5, 9)]
    assert strip.shape[0] == 2 * 6 + 4 * 18
    # Every row carries its text to the right of the swatch.
    for row in range(4):
        band = strip[6 + row * 18 : 6 + (row + 1) * 18, 6 + 12 + 6 :]
        assert np.any(band < 128), row
    assert parsing_legend(labels, LIP, min_height=300).shape[0] == 300
    assert swatch_runs(parsing_legend(np.full((3, 3), 7), LIP)) == [palette[7].tolist()]


def test_draw_parsing_blends_the_palette_and_appends_the_legend() -> None:
    image = np.full((100, 80, 3), 200, dtype=np.uint8)
    labels = np.zeros((100, 80), dtype=np.int64)
    labels[10:50, 20:60] = 5
    labels[60:90, 20:60] = 9
    drawn = draw_parsing(image, labels, LIP)
    strip = parsing_legend(labels, LIP, min_height=100)
    assert drawn.shape == (100, 80 + strip.shape[1], 3)
    assert drawn[30, 40].tolist() == [164, 100, 164]  # 0.5 * 200 + 0.5 * (128, 0, 128)
    assert drawn[5, 5].tolist() == [100, 100, 100]  # background is black in the palette
    np.testing.assert_array_equal(drawn[:, 80:], strip)
    np.testing.assert_array_equal(draw_parsing(image, labels, LIP, legend=False), drawn[:, :80])


def test_tall_legend_extends_the_canvas_with_white() -> None:
    image = np.full((20, 30, 3), 50, dtype=np.uint8)
    labels = np.arange(600).reshape(20, 30) % 20
    drawn = draw_parsing(image, labels, LIP)
    assert drawn.shape[0] == 2 * 6 + 20 * 18
    assert np.all(drawn[20:, :30] == 255)
    with pytest.raises(ValueError, match=r"labels \(20, 29\) and image \(20, 30\) must have the same height and width"):
        draw_parsing(image, labels[:, :29], LIP)


# ---------------------------------------------------------------------------------------------- masks and warps


def test_mask_overlay_uses_alpha_times_mask() -> None:
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    hard = np.array([[True, False, False], [False, False, True]])
    drawn = draw_mask(image, hard, color=(255, 0, 0), alpha=0.5)
    assert drawn[0, 0].tolist() == [178, 50, 50]  # rint(127.5 + 50.0) = 178 (half to even)
    assert drawn[0, 1].tolist() == [100, 100, 100]
    np.testing.assert_array_equal(draw_mask(image, hard.astype(np.uint8) * 255, color=(255, 0, 0)), drawn)
    soft = draw_mask(image, np.full((2, 3), 0.5), color=(0, 0, 200), alpha=0.5)
    assert soft[1, 1].tolist() == [75, 75, 125]  # opacity 0.25
    with pytest.raises(ValueError, match=r"float masks must be finite and lie in \[0, 1\]"):
        draw_mask(image, np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match=r"mask shape \(3, 2\) must equal the image's height and width \(2, 3\)"):
        draw_mask(image, np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="masks must be bool, uint8"):
        draw_mask(image, np.ones((2, 3), dtype=np.int32))


def test_warp_overlay_blends_the_garment_over_the_person() -> None:
    person = np.full((2, 2, 3), 10, dtype=np.uint8)
    garment = np.full((2, 2, 3), 210, dtype=np.uint8)
    assert np.all(draw_warp(person, garment) == 150)  # 0.3 * 10 + 0.7 * 210
    mask = np.array([[1.0, 0.0], [0.0, 0.5]])
    drawn = draw_warp(person, garment, mask, alpha=1.0)
    assert drawn[:, :, 0].tolist() == [[210, 10], [10, 110]]
    with pytest.raises(ValueError, match=r"warped \(2, 3, 3\) and person \(2, 2, 3\) must have the same shape"):
        draw_warp(person, np.zeros((2, 3, 3), dtype=np.uint8))


def lattice(height: int, width: int, spacing: int) -> np.ndarray:
    lines = np.zeros((height, width), dtype=bool)
    lines[::spacing] = True
    lines[:, ::spacing] = True
    return lines


def test_identity_grid_shows_the_regular_lattice() -> None:
    grid = tps_grid(torch.zeros(1, 50), 24, 40)
    drawn = draw_grid(grid, spacing=8, align_corners=True)
    expected = np.where(lattice(24, 40, 8)[..., None], np.array([0, 0, 255]), 255)
    np.testing.assert_array_equal(drawn, expected)
    np.testing.assert_array_equal(draw_grid(grid[0].numpy(), spacing=8, align_corners=True), drawn)


def test_translated_grid_moves_the_lattice_left_by_the_shift() -> None:
    height, width, shift = 24, 40, 3
    theta = torch.zeros(1, 50)
    theta[:, :25] = 2 * shift / (width - 1)  # every control point's x + shift pixels: a pure translation
    base = np.full((height, width, 3), 40, dtype=np.uint8)
    drawn = draw_grid(tps_grid(theta, height, width), image=base, spacing=8, color=(255, 255, 0), align_corners=True)
    # Output column j samples source column j + 3: source lines x = 8, 16, 24, 32 show at j = 5, 13, 21, 29;
    # rows y = 0, 8, 16 stay, until the samples leave the source (j + 3 > 39) and the zero padding shows.
    expected = np.zeros((height, width), dtype=bool)
    expected[:, [5, 13, 21, 29]] = True
    expected[[0, 8, 16], : width - shift] = True
    np.testing.assert_array_equal(np.any(drawn != 40, axis=2), expected)
    assert drawn[0, 0].tolist() == [255, 255, 0]
    assert drawn[1, 5].tolist() == [255, 255, 0]


def test_grid_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"grid must be H x W x 2 or 1 x H x W x 2, got shape \(2, 4, 4, 2\)"):
        draw_grid(torch.zeros(2, 4, 4, 2))
    with pytest.raises(ValueError, match=r"image \(4, 5\) must match the grid's height and width \(4, 4\)"):
        draw_grid(torch.zeros(4, 4, 2), image=np.zeros((4, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="spacing must be >= 1, got 0"):
        draw_grid(torch.zeros(4, 4, 2), spacing=0)
