"""HRNet pose wrapper end to end on the synthesized W32 checkpoint (random weights) at a 128 x 96 input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.vision.hrnet import box_to_center_scale, crop_person, decode_heatmaps
from mycloset_assets.wrappers.hrnet import HRNetPoseWrapper, PoseResult

INPUT_SIZE = (128, 96)  # (height, width): heatmaps 32 x 24
FIXTURES = Path(__file__).parents[1] / "fixtures"
FLIP_PAIRS = json.loads((FIXTURES / "keypoints.json").read_text())["coco17_flip_pairs"]
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def loaded(synth_file) -> LoadedModel:
    return load_model(synth_file("hrnet_w32_coco_256x192"))


@pytest.fixture(scope="module")
def wrapper(loaded) -> HRNetPoseWrapper:
    return HRNetPoseWrapper(loaded, input_size=INPUT_SIZE)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 150 x 200 RGB image: smooth gradients and a bright block, so crops have structure."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:150, 0:200]
    image = np.stack([xs * 255 / 199, ys * 255 / 149, (xs + ys) % 256], axis=2)
    image[40:90, 60:110] = 250
    return np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)


def _network(loaded: LoadedModel, crop: np.ndarray) -> np.ndarray:
    """The network's heatmaps of one uint8 crop, normalised by hand as ToTensor + Normalize."""
    x = torch.from_numpy(((crop.astype(np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    with torch.inference_mode():
        return loaded.module(x).numpy()


def test_result_shapes_dtypes_and_crop_frames(wrapper, photo):
    boxes = [(10, 12, 120, 160), (50, 20, 40, 60)]
    result = wrapper(photo, boxes)
    assert isinstance(result, PoseResult) and result.image_size == (150, 200)
    assert len(result.people) == 2
    for person, box in zip(result.people, boxes, strict=True):
        assert person.keypoints.shape == (17, 2) and person.keypoints.dtype == np.float32
        assert person.scores.shape == (17,) and person.scores.dtype == np.float32
        assert person.valid.shape == (17,) and person.valid.dtype == bool
        assert person.names[5] == "left_shoulder" and len(person.names) == 17
        center, scale = box_to_center_scale(box, (96, 128))
        np.testing.assert_array_equal(person.center, center)
        np.testing.assert_array_equal(person.scale, scale)
        np.testing.assert_array_equal(person.box, box)
        rejected = {r.keypoint for r in person.rejections}
        assert rejected == set(np.flatnonzero(~person.valid).tolist())
    array = result.to_array()
    assert array.shape == (2, 17, 3)
    np.testing.assert_array_equal(array[1, :, 2], result.people[1].scores)


def test_default_input_size_is_the_entry_height_by_width(loaded, photo):
    published = HRNetPoseWrapper(loaded, flip_test=False)
    assert published.input_size == (256, 192)
    assert published.person_heatmaps(photo).heatmaps.shape == (1, 17, 64, 48)


def test_keypoints_lie_on_the_heatmap_lattice_of_each_crop(wrapper, photo):
    """Decoded points are center + (u - 12) * s for quarter-pixel heatmap coordinates u in [0, 23] (s = S / 24)."""
    result = wrapper(photo, [(10, 12, 120, 160)])
    person = result.people[0]
    step = float(person.scale[0]) * 200 / 24
    heat = (person.keypoints.astype(np.float64) - person.center) / step + (12, 16)
    assert np.all(heat >= 0) and np.all(heat <= (23, 31))
    np.testing.assert_allclose(heat * 4, np.round(heat * 4), atol=1e-4)


def test_runs_are_deterministic(wrapper, photo):
    a, b = wrapper(photo, [(10, 12, 120, 160)]), wrapper(photo, [(10, 12, 120, 160)])
    np.testing.assert_array_equal(a.to_array(), b.to_array())


def test_moving_the_person_and_its_box_moves_the_keypoints_by_the_same_offset(wrapper, photo):
    box, (dx, dy) = (10.0, 12.0, 120.0, 160.0), (37, 21)
    canvas = np.zeros((230, 260, 3), dtype=np.uint8)
    canvas[dy : dy + 150, dx : dx + 200] = photo
    moved_box = (box[0] + dx, box[1] + dy, box[2], box[3])
    center, scale = box_to_center_scale(box, (96, 128))
    moved_center, moved_scale = box_to_center_scale(moved_box, (96, 128))
    # the crop windows hold the same pixels (zeros outside the photo in both), so the network sees the same input
    np.testing.assert_array_equal(
        crop_person(photo, center, scale, (96, 128)), crop_person(canvas, moved_center, moved_scale, (96, 128))
    )
    here, there = wrapper(photo, [box]).people[0], wrapper(canvas, [moved_box]).people[0]
    np.testing.assert_array_equal(here.scores, there.scores)
    np.testing.assert_allclose(there.keypoints, here.keypoints + np.float32([dx, dy]), rtol=0, atol=1e-4)


def test_default_box_is_the_whole_image(wrapper, photo):
    default = wrapper(photo)
    explicit = wrapper(photo, [(0, 0, 200, 150)])
    np.testing.assert_array_equal(default.to_array(), explicit.to_array())
    np.testing.assert_array_equal(default.people[0].box, [0, 0, 200, 150])


def test_batches_of_images_give_the_single_image_results(wrapper, photo):
    other = np.ascontiguousarray(photo[::-1, ::-1])
    boxes = [(10, 12, 120, 160), (50, 20, 40, 60)]
    batch = wrapper([photo, other, photo], [boxes, None, []])
    assert [len(r.people) for r in batch] == [2, 1, 0]
    assert batch[2].to_array().shape == (0, 17, 3)
    for got, want in ((batch[0], wrapper(photo, boxes)), (batch[1], wrapper(other))):
        np.testing.assert_array_equal(got.to_array()[..., :2], want.to_array()[..., :2])
        np.testing.assert_allclose(got.to_array()[..., 2], want.to_array()[..., 2], rtol=1e-5)


def test_flip_test_averages_with_the_flipped_back_shifted_maps(loaded, wrapper, photo):
    box = (50, 20, 40, 60)
    center, scale = box_to_center_scale(box, (96, 128))
    crop = crop_person(photo, center, scale, (96, 128))
    plain = _network(loaded, crop)
    mirrored = _network(loaded, np.ascontiguousarray(crop[:, ::-1]))[0]
    swap = {a: b for pair in FLIP_PAIRS for a, b in (pair, pair[::-1])}
    back = mirrored[[swap.get(k, k) for k in range(17)], :, ::-1]
    shifted = np.concatenate([back[:, :, :1], back[:, :, :-1]], axis=2)
    expected = (plain[0] + shifted) / 2
    found = wrapper.person_heatmaps(photo, [box])
    assert found.heatmaps.shape == (1, 17, 32, 24)
    np.testing.assert_allclose(found.heatmaps[0], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    coords, maxvals = decode_heatmaps(found.heatmaps, found.centers, found.scales)
    person = wrapper(photo, [box]).people[0]
    np.testing.assert_array_equal(person.keypoints, coords[0])
    np.testing.assert_array_equal(person.scores, maxvals[0, :, 0])

    without = HRNetPoseWrapper(loaded, input_size=INPUT_SIZE, flip_test=False).person_heatmaps(photo, [box])
    np.testing.assert_allclose(without.heatmaps, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())


def test_repeated_unit_scale_fuses_to_the_single_scale_maps(loaded, wrapper, photo):
    twice = HRNetPoseWrapper(loaded, input_size=INPUT_SIZE, scales=(1.0, 1.0))
    fused = twice.person_heatmaps(photo, [(10, 12, 120, 160)]).heatmaps
    single = wrapper.person_heatmaps(photo, [(10, 12, 120, 160)]).heatmaps
    # the two crops share a forward batch, which changes convolution rounding (the parity rule: 1e-5 of max)
    np.testing.assert_allclose(fused, single, rtol=1e-5, atol=1e-5 * np.abs(single).max())
    multi = HRNetPoseWrapper(loaded, input_size=INPUT_SIZE, scales=(1.0, 1.3), flip_test=False)
    result = multi([photo, photo], [[(10, 12, 120, 160), (50, 20, 40, 60)], [(0, 0, 200, 150)]])
    assert [r.to_array().shape for r in result] == [(2, 17, 3), (1, 17, 3)]
    assert all(np.isfinite(r.to_array()).all() for r in result)


def test_validation_limits_reach_the_result(loaded, photo):
    strict = HRNetPoseWrapper(loaded, input_size=INPUT_SIZE, score_threshold=1e12)
    person = strict(photo, [(10, 12, 120, 160)]).people[0]
    assert not person.valid.any()
    confidence = [r for r in person.rejections if r.rule == "confidence"]
    assert [r.keypoint for r in confidence] == list(range(17))
    assert [r.value for r in confidence] == pytest.approx(person.scores.tolist())


def test_bad_inputs_are_refused_with_a_reason(wrapper, photo):
    with pytest.raises(ValueError, match=r"image 0 must be an RGB uint8 H x W x 3 array .* dtype float32"):
        wrapper(photo.astype(np.float32))
    with pytest.raises(ValueError, match="got 1 box lists for 2 images"):
        wrapper([photo, photo], [None])
    with pytest.raises(ValueError, match="must have a positive width and height"):
        wrapper(photo, [(0, 0, 0, 10)])
    with pytest.raises(ValueError, match=r"boxes of image 0 must be a list of \(x, y, w, h\) boxes, got .* \(4,\)"):
        wrapper(photo, (0, 0, 10, 10))


def test_other_families_are_refused(synth_file):
    with pytest.raises(ValueError, match="needs an 'hrnet_pose' checkpoint, got family 'u2netp'"):
        HRNetPoseWrapper(load_model(synth_file("u2netp")))
