"""OpenPose body and hand wrappers end to end on synthesized checkpoints (random weights), at small scales.

Random weights give arbitrary maps, so the tests check the pipeline rather than poses: the maps equal a
plain transcription of the reference's pre-processing (BGR, bicubic resize, pad with 128, ``/ 256 - 0.5``,
upsample by 8, crop, resize back, average), the result equals ``decode_body`` on those maps, shapes, types and
determinism hold, and hands are decoded in their boxes and moved to image pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.vision.openpose import decode_body, decode_hand, hand_boxes, openpose18_to_coco17
from mycloset_assets.wrappers.openpose import (
    BodyPoseResult,
    HandPoseResult,
    OpenPoseBodyWrapper,
    OpenPoseHandWrapper,
)

BODY_SCALES = [0.1]  # 0.1 * 368 = 37 pixels high instead of the default 184: same code path, faster
HAND_SCALES = [0.08, 0.12]


@pytest.fixture(scope="module")
def body_model(synth_file) -> LoadedModel:
    return load_model(synth_file("openpose_body_coco18"))


@pytest.fixture(scope="module")
def hand_model(synth_file) -> LoadedModel:
    return load_model(synth_file("openpose_hand"))


@pytest.fixture(scope="module")
def body(body_model) -> OpenPoseBodyWrapper:
    return OpenPoseBodyWrapper(body_model, scales=BODY_SCALES)


@pytest.fixture(scope="module")
def hand(hand_model) -> OpenPoseHandWrapper:
    return OpenPoseHandWrapper(hand_model, scales=HAND_SCALES)


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB test image with a bright block (random noise would be flattened by the resizes)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 255 / (width - 1), ys * 255 / (height - 1), (3 * xs + ys) % 256], axis=2)
    image[height // 4 : height // 2, width // 3 : 2 * width // 3] = 240
    return np.clip(image + rng.integers(-15, 16, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo(60, 84, 0)


def _reference_maps(module: torch.nn.Module, image_rgb: np.ndarray, scales: list[float]) -> list[np.ndarray]:
    """The reference's loop written out: per scale, the outputs resized back to the image, averaged (float64)."""
    bgr = image_rgb[:, :, ::-1]
    height, width = bgr.shape[:2]
    totals: list[np.ndarray] = []
    for scale in scales:
        factor = scale * 368 / height
        resized = cv2.resize(bgr, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        down, right = (8 - resized.shape[0] % 8) % 8, (8 - resized.shape[1] % 8) % 8
        padded = np.concatenate([resized, np.full((down, resized.shape[1], 3), 128, np.uint8)], axis=0)
        padded = np.concatenate([padded, np.full((padded.shape[0], right, 3), 128, np.uint8)], axis=1)
        x = torch.from_numpy(np.ascontiguousarray(np.float32(padded).transpose(2, 0, 1)[None]) / 256 - 0.5)
        with torch.no_grad():
            outputs = module(x)
        outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
        for index, output in enumerate(outputs):
            maps = np.ascontiguousarray(output[0].numpy().transpose(1, 2, 0))
            maps = cv2.resize(maps, (0, 0), fx=8, fy=8, interpolation=cv2.INTER_CUBIC)
            maps = np.ascontiguousarray(maps[: padded.shape[0] - down, : padded.shape[1] - right])
            maps = cv2.resize(maps, (width, height), interpolation=cv2.INTER_CUBIC)
            if len(totals) <= index:
                totals.append(np.zeros(maps.shape))
            totals[index] += maps / len(scales)
    return totals


def test_body_maps_follow_the_reference_preprocessing(body, body_model, photo):
    heatmaps, pafs = body.maps(photo)
    assert heatmaps.shape == (60, 84, 19) and pafs.shape == (60, 84, 38)
    assert heatmaps.dtype == np.float64 and pafs.dtype == np.float64
    want_paf, want_heat = _reference_maps(body_model.module, photo, BODY_SCALES)
    np.testing.assert_allclose(heatmaps, want_heat, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pafs, want_paf, rtol=0, atol=1e-6)
    assert np.abs(heatmaps).max() > 0.01  # the comparison is not between two zero maps


def test_body_maps_average_several_scales(body_model, photo):
    scales = [0.08, 0.1]
    heatmaps, pafs = OpenPoseBodyWrapper(body_model, scales=scales).maps(photo)
    want_paf, want_heat = _reference_maps(body_model.module, photo, scales)
    np.testing.assert_allclose(heatmaps, want_heat, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pafs, want_paf, rtol=0, atol=1e-6)


def test_body_result_is_decode_body_of_its_own_maps(body, photo):
    result = body(photo)
    assert isinstance(result, BodyPoseResult)
    pose = decode_body(*body.maps(photo))
    assert np.array_equal(result.keypoints, pose.keypoints)
    assert np.array_equal(result.scores, pose.scores)
    assert np.array_equal(result.part_counts, pose.part_counts)
    assert np.array_equal(result.keypoints_coco17, openpose18_to_coco17(pose.keypoints))
    people = len(result)
    assert result.keypoints.shape == (people, 18, 3) and result.keypoints.dtype == np.float64
    assert result.keypoints_coco17.shape == (people, 17, 3)
    assert result.scores.shape == (people,) and result.part_counts.shape == (people,)
    assert result.image_size == (60, 84)


def test_body_is_deterministic_and_batches_keep_order(body, photo):
    other = _photo(48, 40, 1)
    first, second = body(photo), body(photo)
    assert np.array_equal(first.keypoints, second.keypoints) and np.array_equal(first.scores, second.scores)
    batch = body([other, photo, photo])
    assert [r.image_size for r in batch] == [(48, 40), (60, 84), (60, 84)]
    assert np.array_equal(batch[0].keypoints, body(other).keypoints)
    # The two same-size images share one forward (batch of 2): equal maps within float32 tolerance.
    for result in batch[1:]:
        assert result.keypoints.shape == first.keypoints.shape
        np.testing.assert_allclose(result.scores, first.scores, rtol=1e-5, atol=1e-5)


def test_body_defaults_are_the_reference_scales(body_model):
    wrapper = OpenPoseBodyWrapper(body_model)
    assert (wrapper.scales, wrapper.box_size, wrapper.stride, wrapper.pad_value) == ((0.5,), 368, 8, 128)


def test_wrappers_refuse_the_other_family_and_bad_images(body, body_model, hand_model):
    with pytest.raises(ValueError, match=r"OpenPoseBodyWrapper needs a 'openpose_body' checkpoint"):
        OpenPoseBodyWrapper(hand_model)
    with pytest.raises(ValueError, match=r"OpenPoseHandWrapper needs a 'openpose_hand' checkpoint"):
        OpenPoseHandWrapper(body_model)
    with pytest.raises(ValueError, match=r"scales must be positive numbers"):
        OpenPoseBodyWrapper(body_model, scales=[])
    with pytest.raises(ValueError, match=r"expected an RGB uint8 H x W x 3 image .* got float64 \(10, 10, 3\)"):
        body(np.zeros((10, 10, 3)))
    with pytest.raises(ValueError, match=r"got uint8 \(10, 10\)"):
        body(np.zeros((10, 10), np.uint8))


def test_hand_crop_keypoints_are_decode_hand_of_the_maps(hand, hand_model):
    crop = _photo(40, 40, 2)
    result = hand(crop)
    assert isinstance(result, HandPoseResult) and result.box is None and result.image_size == (40, 40)
    maps = hand.maps(crop)
    assert maps.shape == (40, 40, 22) and maps.dtype == np.float64
    (want,) = _reference_maps(hand_model.module, crop, HAND_SCALES)
    np.testing.assert_allclose(maps, want, rtol=0, atol=1e-6)
    assert np.array_equal(result.keypoints, decode_hand(maps))
    assert result.keypoints.shape == (21, 3)


def test_hands_are_found_in_the_arm_boxes_and_moved_to_image_pixels(hand):
    image = _photo(120, 160, 3)
    body_keypoints = np.tile([-1.0, -1.0, 0.0], (1, 18, 1))
    body_keypoints[0, [2, 3, 4]] = [[40, 20, 1], [40, 50, 1], [40, 75, 1]]  # right arm: a 45 x 45 box
    body_keypoints[0, [5, 6, 7]] = [[100, 20, 1], [100, 30, 1], [100, 36, 1]]  # left arm: a 13-pixel box, dropped
    results = hand.hands(image, body_keypoints)
    boxes = hand_boxes(body_keypoints, 120, 160)
    assert [r.box for r in results] == boxes and len(boxes) == 1 and not boxes[0].is_left
    box = boxes[0]
    crop_result = hand(image[box.y : box.y + box.size, box.x : box.x + box.size])
    found = crop_result.keypoints[:, 0] >= 0
    expected = crop_result.keypoints.copy()
    expected[found, :2] += [box.x, box.y]
    assert np.array_equal(results[0].keypoints, expected)
    assert results[0].image_size == (120, 160)
    assert hand.hands(image, np.zeros((0, 18, 3))) == []
