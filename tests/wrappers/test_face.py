"""GFPGAN face restoration end to end on a synthesized ``gfpgan_v1_4`` checkpoint (random weights).

Random weights restore nothing, so the tests check the pipeline: the crop is the alignment's, the restored face
is a plain transcription of GFPGANer's pre- and post-processing around the network with stored noise, the
result is pasted back by ``paste_face``, calls are deterministic, and a photo without a usable face is refused
before the network runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.vision.face import FaceNotFoundError, align_face, find_face, paste_face
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.face import FaceRestoration, FaceRestorer

HEIGHT, WIDTH = 120, 100


@pytest.fixture(scope="module")
def gfpgan(synth_file) -> LoadedModel:
    return load_model(synth_file("gfpgan_v1_4"), "cpu", torch.float32)


@pytest.fixture(scope="module")
def restorer(gfpgan) -> FaceRestorer:
    return FaceRestorer(gfpgan)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([xs * 255 / (WIDTH - 1), ys * 255 / (HEIGHT - 1), (3 * xs + ys) % 256], axis=2)
    rng = np.random.default_rng(0)
    return np.clip(image + rng.integers(-15, 16, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def keypoints() -> np.ndarray:
    """OpenPose-18 rows of one person: a slightly tilted face about 24 px between the eyes, ears missing."""
    rows = np.tile([-1.0, -1.0, 0.0], (18, 1))
    rows[14] = (38.0, 40.0, 0.9)  # right eye, image-left
    rows[15] = (62.0, 42.0, 0.85)  # left eye
    rows[0] = (49.0, 55.0, 0.95)  # nose
    rows[1] = (50.0, 80.0, 0.7)  # neck: ignored
    return rows


@pytest.fixture(scope="module")
def network_call(restorer, photo, keypoints) -> dict:
    """The restoration of ``photo`` and what the network saw and returned (recorded by forward hooks)."""
    seen: dict = {}

    def before(module, args, kwargs):
        seen["input"], seen["kwargs"] = args[0].clone(), dict(kwargs)

    def after(module, args, kwargs, output):
        seen["output"] = output[0].clone()

    handles = [
        restorer.module.register_forward_pre_hook(before, with_kwargs=True),
        restorer.module.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        seen["result"] = restorer(photo, keypoints)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.fixture(scope="module")
def result(network_call) -> FaceRestoration:
    return network_call["result"]


def test_restoration_has_the_documented_shapes(result, photo, keypoints):
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    assert result.face.shape == result.restored_face.shape == (512, 512, 3)
    assert result.face.dtype == result.restored_face.dtype == np.uint8
    np.testing.assert_array_equal(result.landmarks.points, keypoints[[14, 15, 0], :2])
    x0, y0, x1, y1 = result.box
    assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
    assert result.alignment.size == 512


def test_the_crop_is_the_alignments_and_the_paste_is_paste_face(result, photo, keypoints):
    alignment = align_face(find_face(keypoints))
    np.testing.assert_array_equal(result.alignment.matrix, alignment.matrix)
    np.testing.assert_array_equal(result.face, alignment.crop(photo))
    pasted = paste_face(photo, result.restored_face, alignment)
    np.testing.assert_array_equal(result.image, pasted.image)
    assert result.box == pasted.box


def test_pixels_outside_the_box_are_unchanged_and_the_face_changes(result, photo):
    x0, y0, x1, y1 = result.box
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(result.image[outside], photo[outside])
    assert (result.image[y0:y1, x0:x1] != photo[y0:y1, x0:x1]).any()


def test_restored_face_is_the_network_with_stored_noise_between_gfpganers_pre_and_post_processing(network_call, result):
    want_input = (torch.from_numpy(result.face.astype(np.float32) / 255).permute(2, 0, 1)[None] - 0.5) / 0.5
    assert network_call["kwargs"] == {"return_rgb": False, "randomize_noise": False}
    assert network_call["input"].dtype == torch.float32
    torch.testing.assert_close(network_call["input"], want_input, rtol=0, atol=1e-6)
    output = network_call["output"]
    assert output.shape == (1, 3, 512, 512)
    want = ((output[0].clamp(-1, 1) + 1) / 2 * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(result.restored_face, want)


def test_two_calls_give_the_same_result(restorer, photo, keypoints, result):
    again = restorer(photo, keypoints)
    np.testing.assert_array_equal(again.restored_face, result.restored_face)
    np.testing.assert_array_equal(again.image, result.image)
    assert again.box == result.box


def test_a_photo_without_a_usable_face_is_refused_before_the_network_runs(restorer, photo, keypoints):
    calls = []
    handle = restorer.module.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        missing = keypoints.copy()
        missing[15] = (-1, -1, 0)
        with pytest.raises(FaceNotFoundError, match="^the left eye is missing from the keypoints$"):
            restorer(photo, missing)
        with pytest.raises(FaceNotFoundError, match="the nose's score 0.95 is below min_score 0.99"):
            FaceRestorer(restorer.loaded, min_score=0.99)(photo, keypoints)
        with pytest.raises(FaceNotFoundError, match="below min_eye_distance 30 px"):
            FaceRestorer(restorer.loaded, min_eye_distance=30)(photo, keypoints)
    finally:
        handle.remove()
    assert calls == []


def test_coco17_keypoints_give_the_same_alignment(restorer, keypoints, result):
    coco = np.zeros((17, 3))
    coco[[0, 1, 2]] = keypoints[[0, 15, 14]]
    landmarks = find_face(coco, "coco17")
    np.testing.assert_array_equal(align_face(landmarks).matrix, result.alignment.matrix)


def test_another_family_is_refused(synth_file):
    with pytest.raises(WrongFamilyError, match=r"FaceRestorer wraps gfpgan checkpoints, not u2netp \(u2netp\)"):
        FaceRestorer(load_model(synth_file("u2netp")))
