"""Agnostic person representations: CP-VTON's 22 channels, VITON-HD's parse/image agnostic and pose image.

Known answers are built by hand (squares at exact pixels, labels erased or kept at chosen distances from
the drawn limbs, hips moved to computed points), and against the references' own procedure where the
pixels come from Pillow (the 1/16 blur, the rectangle rule, ``paste`` with binary masks).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mycloset_assets.checkpoints import get_entry
from mycloset_assets.vision.agnostic import (
    BODY25_FROM_OPENPOSE18,
    BODY25_NAMES,
    BODY25_RENDER_COLORS,
    CPVTON_CLOTH_LABELS,
    CPVTON_HEAD_LABELS,
    VITONHD_ALIAS_GROUPS,
    VITONHD_GROUPS,
    MissingKeypointsError,
    body25_from_openpose18,
    cpvton_agnostic,
    cpvton_body_shape,
    cpvton_head,
    cpvton_pose_maps,
    group_labels,
    group_one_hot,
    render_body25,
    to_network_range,
    vitonhd_image_agnostic,
    vitonhd_parse_agnostic,
    vitonhd_widened_hips,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _norm(value: float) -> np.float32:
    """The reference's ToTensor + Normalize(0.5, 0.5) of one 8-bit value, in float32."""
    return (np.float32(value) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


# tables ---------------------------------------------------------------------------------------------------


def test_label_groups_are_the_shared_tables():
    labels = json.loads((FIXTURES / "labels.json").read_text())
    groups = labels["CP-VTON-groups"]["groups"]
    assert list(CPVTON_HEAD_LABELS) == groups["head"] == [1, 2, 4, 13]
    assert list(CPVTON_CLOTH_LABELS) == groups["cloth"]
    assert [[name, list(ids)] for name, ids in VITONHD_GROUPS] == labels["VITON-HD-13"]["groups"]
    seg = get_entry("vitonhd_seg").labels
    assert [list(ids) for _, ids in VITONHD_GROUPS] == seg["from_lip20"]
    alias = get_entry("vitonhd_alias").labels
    assert [name for name, _ in VITONHD_ALIAS_GROUPS] == alias["names"]
    assert [list(ids) for _, ids in VITONHD_ALIAS_GROUPS] == alias["from_vitonhd13"]


def test_body25_tables_are_the_shared_tables():
    keypoints = json.loads((FIXTURES / "keypoints.json").read_text())
    assert list(BODY25_NAMES) == keypoints["body25_names"]
    table = keypoints["body25_from_openpose18"]["table"]
    assert [("mean(8,11)" if i == 8 else source) for i, source in enumerate(BODY25_FROM_OPENPOSE18)] == table


# CP-VTON --------------------------------------------------------------------------------------------------


def test_pose_squares_at_exact_pixels_on_a_non_square_image():
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    keypoints[0] = (10, 20, 0.9)  # rows 15..25, cols 5..15
    keypoints[1] = (10.7, 20.2, 0.8)  # floor(5.7) .. floor(15.7): the same square
    keypoints[2] = (3.5, 2.5, 0.7)  # clipped: cols 0..8, rows 0..7
    keypoints[3] = (189.0, 250.0, 0.6)  # right/bottom edges of a 256 x 192 image: cols 184..191, rows 245..255
    keypoints[4] = (1.0, 50.0, 0.9)  # x must be > 1: not drawn
    maps = cpvton_pose_maps(keypoints, 256, 192, radius=5)
    assert maps.shape == (18, 256, 192) and maps.dtype == np.float32
    assert set(np.unique(maps)) == {-1.0, 1.0}

    def square(rows: slice, cols: slice) -> np.ndarray:
        expected = np.full((256, 192), -1.0, dtype=np.float32)
        expected[rows, cols] = 1.0
        return expected

    np.testing.assert_array_equal(maps[0], square(slice(15, 26), slice(5, 16)))
    np.testing.assert_array_equal(maps[1], square(slice(15, 26), slice(5, 16)))
    np.testing.assert_array_equal(maps[2], square(slice(0, 8), slice(0, 9)))
    np.testing.assert_array_equal(maps[3], square(slice(245, 256), slice(184, 192)))
    assert (maps[4:] == -1.0).all()


def test_pose_squares_are_pillows_rectangles():
    """The reference draws ``rectangle((x-r, y-r, x+r, y+r))`` with float corners on a 'L' image."""
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-3, 200, 18), rng.uniform(-3, 260, 18)])
    maps = cpvton_pose_maps(points, 256, 192, radius=5)
    for k, (x, y) in enumerate(points):
        canvas = Image.new("L", (192, 256))
        if x > 1 and y > 1:
            ImageDraw.Draw(canvas).rectangle((x - 5, y - 5, x + 5, y + 5), "white", "white")
        expected = np.where(np.asarray(canvas) == 255, 1.0, -1.0)
        np.testing.assert_array_equal(maps[k], expected, err_msg=f"keypoint {k} at ({x}, {y})")


def test_body_shape_is_the_pillow_bilinear_down_and_up_blur():
    parsing = np.zeros((256, 192), dtype=np.uint8)
    parsing[64:192, 48:144] = 5  # a body aligned to the 16-pixel cells
    parsing[100:110, 60:70] = 13
    shape = cpvton_body_shape(parsing)
    mask = Image.fromarray(((parsing > 0) * 255).astype(np.uint8))
    blurred = np.asarray(mask.resize((12, 16), Image.BILINEAR).resize((192, 256), Image.BILINEAR))
    np.testing.assert_array_equal(shape, (blurred.astype(np.float32) / 255 - np.float32(0.5)) / np.float32(0.5))
    assert shape[128, 96] == 1.0 and shape[0, 0] == -1.0 and shape[255, 191] == -1.0
    edge = shape[128, 40:60]
    assert (np.diff(edge) >= 0).all() and -1.0 < edge[10] < 1.0, "the silhouette's edge is blurred"

    assert (cpvton_body_shape(np.ones((100, 70), dtype=np.int64)) == 1.0).all()
    assert (cpvton_body_shape(np.zeros((100, 70), dtype=np.int64)) == -1.0).all()
    with pytest.raises(ValueError, match=r"too small for the 1/16 body shape"):
        cpvton_body_shape(np.zeros((15, 70), dtype=np.int64))


def test_head_is_the_photo_on_hat_hair_sunglasses_face_and_minus_one_elsewhere():
    parsing = np.arange(20, dtype=np.uint8).repeat(3).reshape(6, 10)  # every LIP label, 3 pixels each
    image = np.zeros((6, 10, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 128, 7
    head = cpvton_head(image, parsing)
    assert head.shape == (3, 6, 10) and head.dtype == np.float32
    on_head = np.isin(parsing, [1, 2, 4, 13])
    assert on_head.sum() == 12
    for channel, value in enumerate((255, 128, 7)):
        assert (head[channel][on_head] == _norm(value)).all()
        assert (head[channel][~on_head] == -1.0).all()
    assert head[0][on_head][0] == 1.0


def test_cpvton_agnostic_stacks_shape_head_and_18_pose_maps():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 192, 3), dtype=np.uint8)
    parsing = np.zeros((256, 192), dtype=np.int64)
    parsing[40:220, 50:140] = 5
    parsing[10:40, 80:110] = 13
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    keypoints[1] = (95, 45, 0.9)
    agnostic = cpvton_agnostic(image, parsing, keypoints)
    array = agnostic.array()
    assert array.shape == (22, 256, 192) and array.dtype == np.float32
    np.testing.assert_array_equal(array[0], cpvton_body_shape(parsing))
    np.testing.assert_array_equal(array[1:4], cpvton_head(image, parsing))
    np.testing.assert_array_equal(array[4:], cpvton_pose_maps(keypoints, 256, 192, 5))
    np.testing.assert_array_equal(agnostic.pose_image, array[5])  # only the neck is drawn
    with pytest.raises(ValueError, match=r"OpenPose-18 keypoints must be 18 x 2 or 18 x 3"):
        cpvton_agnostic(image, parsing, keypoints[:17])
    with pytest.raises(ValueError, match=r"must have the same height and width"):
        cpvton_agnostic(image[:100], parsing, keypoints)


def test_to_network_range_is_totensor_and_normalize():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(to_network_range(image)[:, 0, 0], [-1.0, _norm(128), 1.0])


# BODY_25 ---------------------------------------------------------------------------------------------------


def test_body25_from_openpose18_keeps_order_adds_midhip_and_leaves_feet_missing():
    keypoints = np.column_stack([np.arange(18) * 10.0 + 1, np.arange(18) * 5.0 + 2, np.linspace(0.5, 0.9, 18)])
    keypoints[16] = (-1, -1, 0)  # REar missing
    body25 = body25_from_openpose18(keypoints)
    assert body25.shape == (25, 3)
    for index, source in enumerate(BODY25_FROM_OPENPOSE18):
        if source is not None and source != 16:
            np.testing.assert_array_equal(body25[index], keypoints[source])
    np.testing.assert_array_equal(body25[17], (0, 0, 0))  # REar: OpenPose's missing convention
    np.testing.assert_allclose(body25[8], (keypoints[8] + keypoints[11]) / 2)
    assert (body25[19:] == 0).all()
    keypoints[11] = (-1, -1, 0)  # no LHip: no MidHip
    np.testing.assert_array_equal(body25_from_openpose18(keypoints)[8], (0, 0, 0))
    with pytest.raises(ValueError, match=r"need their scores"):
        body25_from_openpose18(keypoints[:, :2])


# VITON-HD --------------------------------------------------------------------------------------------------

H, W = 1024, 768


def _pose25(**overrides: tuple[float, float]) -> np.ndarray:
    points = {
        "Nose": (384, 120),
        "Neck": (384, 200),
        "RShoulder": (284, 220),
        "RElbow": (250, 420),
        "RWrist": (240, 600),
        "LShoulder": (484, 220),
        "LElbow": (518, 420),
        "LWrist": (528, 600),
        "RHip": (334, 600),
        "LHip": (434, 600),
        "MidHip": (384, 600),
    }
    points.update(overrides)
    pose = np.zeros((25, 3))
    for name, (x, y) in points.items():
        pose[BODY25_NAMES.index(name)] = (x, y, 0.0 if (x, y) == (0, 0) else 0.9)
    return pose


def _person_parsing() -> np.ndarray:
    parsing = np.zeros((H, W), dtype=np.uint8)
    parsing[20:130, 334:434] = 13  # face
    parsing[0:20, 334:434] = 2  # hair
    parsing[130:200, 354:414] = 10  # neck (CIHP torso skin)
    parsing[200:620, 284:484] = 5  # upper clothes
    parsing[200:700, 490:720] = 14  # left arm (the person's left: image right)
    parsing[200:700, 48:278] = 15  # right arm
    parsing[600:1000, 284:484] = 9  # pants
    parsing[900:1000, 700:768] = 14  # a stray left-arm blob far from every drawn limb
    return parsing


def _reference_parse_agnostic(parsing: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """datasets.py get_parse_agnostic, step by step with Pillow as the reference runs it."""
    parse = Image.fromarray(parsing)
    agnostic = parse.copy()
    r = 10
    for parse_id, pose_ids in [(14, [2, 5, 6, 7]), (15, [5, 2, 3, 4])]:
        mask_arm = Image.new("L", (W, H), "black")
        draw = ImageDraw.Draw(mask_arm)
        i_prev = pose_ids[0]
        for i in pose_ids[1:]:
            if (pose[i_prev, 0] == 0 and pose[i_prev, 1] == 0) or (pose[i, 0] == 0 and pose[i, 1] == 0):
                continue
            draw.line([tuple(pose[j, :2]) for j in [i_prev, i]], "white", width=r * 10)
            x, y = pose[i, :2]
            radius = r * 4 if i == pose_ids[-1] else r * 15
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), "white", "white")
            i_prev = i
        parse_arm = (np.array(mask_arm) / 255) * (parsing == parse_id).astype(np.float32)
        agnostic.paste(0, None, Image.fromarray(np.uint8(parse_arm * 255), "L"))
    for ids in ([5, 6, 7], [10]):
        agnostic.paste(0, None, Image.fromarray(np.uint8(np.isin(parsing, ids) * 255), "L"))
    return np.array(agnostic)


def test_parse_agnostic_erases_upper_body_neck_and_the_arms_along_their_limbs():
    parsing = _person_parsing()
    agnostic = vitonhd_parse_agnostic(parsing, _pose25())
    assert agnostic.dtype == parsing.dtype and agnostic.shape == (H, W)
    assert not np.isin(agnostic, [5, 6, 7, 10]).any()
    np.testing.assert_array_equal(agnostic[parsing == 13], 13)
    np.testing.assert_array_equal(agnostic[parsing == 9], 9)
    assert agnostic[320, 501] == 0  # on the LShoulder-LElbow segment
    assert agnostic[420, 618] == 0  # 100 px from the elbow: inside its radius-150 disc
    assert agnostic[600, 563] == 0  # 35 px from the wrist: inside its radius-40 disc
    assert agnostic[600, 590] == 14  # 62 px from the wrist, 60 from the forearm, 190 from the elbow: kept
    assert agnostic[950, 740] == 14  # the stray blob is no arm under the lines
    assert agnostic[320, 267] == 0 and agnostic[600, 160] == 15  # the right arm likewise
    np.testing.assert_array_equal(agnostic, _reference_parse_agnostic(parsing, _pose25()))


def test_parse_agnostic_chain_skips_a_missing_elbow_and_joins_shoulder_to_wrist():
    parsing = _person_parsing()
    pose = _pose25(LElbow=(0, 0))
    agnostic = vitonhd_parse_agnostic(parsing, pose)
    assert agnostic[410, 506] == 0  # on the straight LShoulder-LWrist line
    assert agnostic[420, 618] == 14  # no elbow disc any more: 110 px from that line
    np.testing.assert_array_equal(agnostic, _reference_parse_agnostic(parsing, pose))
    missing_shoulder = _pose25(LShoulder=(0, 0))
    np.testing.assert_array_equal(
        vitonhd_parse_agnostic(parsing, missing_shoulder), _reference_parse_agnostic(parsing, missing_shoulder)
    )


def test_parse_agnostic_one_hot_has_the_13_groups():
    parsing = np.array([[0, 10, 1, 2, 4, 13, 5, 6, 7, 9, 12, 14, 15, 16, 17, 18, 19, 8, 3, 11]], dtype=np.uint8)
    one_hot = group_one_hot(parsing, VITONHD_GROUPS)
    assert one_hot.shape == (13, 1, 20) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot.sum(axis=0), 1.0)
    np.testing.assert_array_equal(
        one_hot.argmax(axis=0)[0], [0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12]
    )
    np.testing.assert_array_equal(group_labels(np.arange(13, dtype=np.uint8), VITONHD_ALIAS_GROUPS),
                                  [0, 3, 1, 2, 1, 4, 5, 1, 1, 1, 1, 1, 6])  # fmt: skip
    with pytest.raises(ValueError, match=r"labels \[13\] belong to none of the groups"):
        group_labels(np.array([3, 13], dtype=np.uint8), VITONHD_ALIAS_GROUPS)


def test_hips_are_moved_apart_to_the_shoulder_distance():
    points = vitonhd_widened_hips(_pose25()[:, :2])
    np.testing.assert_allclose(points[9], (284, 600))
    np.testing.assert_allclose(points[12], (484, 600))
    np.testing.assert_array_equal(points[:9], _pose25()[:9, :2])
    with pytest.raises(MissingKeypointsError, match=r"RHip and LHip are at the same point"):
        vitonhd_widened_hips(_pose25(RHip=(400, 600), LHip=(400, 600))[:, :2])


def _reference_image_agnostic(image: np.ndarray, parsing: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """datasets.py get_img_agnostic, step by step with Pillow as the reference runs it."""
    pose = pose[:, :2].copy()
    img = Image.fromarray(image)
    agnostic = img.copy()
    draw = ImageDraw.Draw(agnostic)
    r = 20
    length_a = np.linalg.norm(pose[5] - pose[2])
    length_b = np.linalg.norm(pose[12] - pose[9])
    point = (pose[9] + pose[12]) / 2
    pose[9] = point + (pose[9] - point) / length_b * length_a
    pose[12] = point + (pose[12] - point) / length_b * length_a
    draw.line([tuple(pose[i]) for i in [2, 5]], "gray", width=r * 10)
    for i in [2, 5]:
        x, y = pose[i]
        draw.ellipse((x - r * 5, y - r * 5, x + r * 5, y + r * 5), "gray", "gray")
    for i in [3, 4, 6, 7]:
        if (pose[i - 1, 0] == 0.0 and pose[i - 1, 1] == 0.0) or (pose[i, 0] == 0.0 and pose[i, 1] == 0.0):
            continue
        draw.line([tuple(pose[j]) for j in [i - 1, i]], "gray", width=r * 10)
        x, y = pose[i]
        draw.ellipse((x - r * 5, y - r * 5, x + r * 5, y + r * 5), "gray", "gray")
    for i in [9, 12]:
        x, y = pose[i]
        draw.ellipse((x - r * 3, y - r * 6, x + r * 3, y + r * 6), "gray", "gray")
    draw.line([tuple(pose[i]) for i in [2, 9]], "gray", width=r * 6)
    draw.line([tuple(pose[i]) for i in [5, 12]], "gray", width=r * 6)
    draw.line([tuple(pose[i]) for i in [9, 12]], "gray", width=r * 12)
    draw.polygon([tuple(pose[i]) for i in [2, 5, 12, 9]], "gray", "gray")
    x, y = pose[1]
    draw.rectangle((x - r * 7, y - r * 7, x + r * 7, y + r * 7), "gray", "gray")
    head = np.isin(parsing, [4, 13])
    lower = np.isin(parsing, [9, 12, 16, 17, 18, 19])
    agnostic.paste(img, None, Image.fromarray(np.uint8(head * 255), "L"))
    agnostic.paste(img, None, Image.fromarray(np.uint8(lower * 255), "L"))
    return np.array(agnostic)


def test_image_agnostic_greys_arms_torso_neck_and_keeps_face_and_lower_body():
    image = np.random.default_rng(1).integers(0, 120, (H, W, 3), dtype=np.uint8)  # never 128 by chance
    parsing = _person_parsing()
    result = vitonhd_image_agnostic(image, parsing, _pose25())
    grey = (result.image == 128).all(axis=2)
    np.testing.assert_array_equal(grey, result.mask)
    np.testing.assert_array_equal(result.image[~result.mask], image[~result.mask])
    assert result.mask[400, 384] and result.mask[215, 384]  # torso polygon, shoulder line
    assert result.mask[70, 300] and not result.mask[70, 384]  # neck square, but the face is kept
    assert not result.mask[650, 384] and result.mask[580, 384]  # the hip line covers rows 480..720: pants kept
    assert not result.mask[50, 50] and not result.mask[1000, 10]
    np.testing.assert_array_equal(result.image, _reference_image_agnostic(image, parsing, _pose25()))
    no_forearm = _pose25(LWrist=(0, 0), RElbow=(0, 0))
    np.testing.assert_array_equal(
        vitonhd_image_agnostic(image, parsing, no_forearm).image,
        _reference_image_agnostic(image, parsing, no_forearm),
    )


def test_image_agnostic_needs_neck_shoulders_and_hips():
    image = np.zeros((H, W, 3), dtype=np.uint8)
    with pytest.raises(
        MissingKeypointsError,
        match=r"needs Neck, RShoulder, LShoulder, RHip and LHip; the pose lacks RHip, LHip \(use a photo",
    ):
        vitonhd_image_agnostic(image, _person_parsing(), _pose25(RHip=(0, 0), LHip=(0, 0)))


def test_agnostic_sizes_scale_with_the_image_width():
    """At half size (scale 0.5) the half-size inputs give the full-size result's pixels, about."""
    parsing = _person_parsing()
    half_parsing = parsing[::2, ::2]
    pose = _pose25()
    half_pose = pose.copy()
    half_pose[:, :2] /= 2
    full = vitonhd_parse_agnostic(parsing, pose)[::2, ::2]
    half = vitonhd_parse_agnostic(half_parsing, half_pose, scale=0.5)
    assert (full != half).mean() < 0.01


def test_render_body25_draws_openpose_limbs_and_joints():
    pose = _pose25()
    image = render_body25(pose, H, W)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    # rectangle 288 x 480 of 768 x 1024: ratio 0.469; t = max(int(sqrt(H W) / 75 * 0.469 + 0.5), 2) = 6;
    # lines 5 px thick (int(4.5 + 0.5)), circles of radius 3 and thickness 6.
    color = {name: BODY25_RENDER_COLORS[BODY25_NAMES.index(name)] for name in BODY25_NAMES}
    assert tuple(image[510, 245]) == color["RWrist"]  # the elbow-wrist limb takes the wrist's colour
    assert tuple(image[510, 245 + 2]) == color["RWrist"] and (image[510, 245 + 4] == 0).all()
    assert tuple(image[600, 240]) == color["RWrist"] and tuple(image[600, 334]) == color["RHip"]
    assert tuple(image[200, 384]) == color["Neck"]  # joints are drawn over the limbs
    assert tuple(image[410, 384]) == color["MidHip"]  # the Neck-MidHip limb (MidHip colour)
    assert (image[50, 50] == 0).all()
    assert image[900:].max() == 0  # no legs: knees, ankles and feet are missing
    weak = pose.copy()
    weak[BODY25_NAMES.index("LWrist"), 2] = 0.05  # at the threshold: not drawn
    assert (render_body25(weak, H, W)[600, 528] == 0).all()
    assert render_body25(np.zeros((25, 3)), H, W).max() == 0
