"""Try-on stage wrappers end to end on synthesized checkpoints: CP-VTON GMM -> TOM, VITON-HD seg -> GMM -> ALIAS.

Each stage's outputs are checked against the reference's formulas applied by hand to the same network
inputs (the agnostic representations, the seg input of test.py, the TPS warp, the composition), and its
photo-size outputs against the letterbox of the person photo. The person photo is 300 x 200 (not 3:4), so
every stage letterboxes it; VITON-HD runs at a 256 x 128 working size (and once at its 1024 x 768 load size).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.checkpoints import load_model
from mycloset_assets.models.vitonhd_alias import ALIASGenerator
from mycloset_assets.vision.agnostic import (
    VITONHD_ALIAS_GROUPS,
    VITONHD_GROUPS,
    body25_from_openpose18,
    cpvton_agnostic,
    group_one_hot,
    to_network_range,
    vitonhd_image_agnostic,
    vitonhd_parse_agnostic,
)
from mycloset_assets.vision.compositing import (
    Letterbox,
    alias_seg_div,
    misalignment_mask,
    seg_labels,
    to_uint8_image,
    vitonhd_seg_noise,
)
from mycloset_assets.vision.tps import tps_grid, warp
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.tryon import (
    CpVtonGmm,
    CpVtonTom,
    CpVtonTryOn,
    CpVtonWarp,
    TryOnInput,
    VitonHdAlias,
    VitonHdGmm,
    VitonHdSeg,
)

PHOTO = (300, 200)
SMALL = (256, 128)  # the smallest ALIAS size: multiples of 128, at least 2 x 1 at its first block


def _person(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 300 x 200 person: photo, LIP parsing and OpenPose-18 keypoints that agree with each other."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (*PHOTO, 3), dtype=np.uint8)
    parsing = np.zeros(PHOTO, dtype=np.int64)
    parsing[5:20, 85:115] = 2  # hair
    parsing[20:45, 85:115] = 13  # face
    parsing[45:55, 92:108] = 10  # neck
    parsing[55:175, 65:135] = 5  # upper clothes
    parsing[55:170, 40:63] = 15  # right arm (image left)
    parsing[55:170, 137:160] = 14  # left arm
    parsing[175:290, 70:130] = 9  # pants
    keypoints = np.full((18, 3), (-1.0, -1.0, 0.0))
    for index, (x, y) in {
        0: (100, 30), 1: (100, 52), 2: (72, 58), 3: (52, 110), 4: (50, 160), 5: (128, 58), 6: (148, 110),
        7: (150, 160), 8: (82, 175), 9: (84, 230), 10: (86, 285), 11: (118, 175), 12: (116, 230), 13: (114, 285),
        14: (95, 27), 15: (105, 27), 16: (90, 30), 17: (110, 30),
    }.items():  # fmt: skip
        keypoints[index] = (x, y, 0.8 + 0.01 * index)
    return photo, parsing, keypoints


def _garment(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    garment = np.full((150, 120, 3), 255, dtype=np.uint8)
    mask = np.zeros((150, 120), dtype=np.uint8)
    mask[20:130, 15:105] = 255
    garment[mask > 0] = rng.integers(0, 200, (int((mask > 0).sum()), 3), dtype=np.uint8)
    return garment, mask


@pytest.fixture(scope="module")
def item() -> TryOnInput:
    return TryOnInput(*_person(0), *_garment(1))


@pytest.fixture(scope="module")
def other_item() -> TryOnInput:
    return TryOnInput(*_person(5), *_garment(6))


# inputs ----------------------------------------------------------------------------------------------------


def test_tryon_input_checks_and_normalises_its_arrays():
    photo, parsing, keypoints = _person()
    garment, mask = _garment()
    item = TryOnInput(photo, parsing, keypoints, garment, mask)
    assert item.garment_mask.dtype == bool and item.garment_mask.sum() == 110 * 90
    soft = TryOnInput(photo, parsing, keypoints, garment, mask.astype(np.float32) / 255 * 0.6)
    np.testing.assert_array_equal(soft.garment_mask, item.garment_mask)
    with pytest.raises(ValueError, match=r"OpenPose-18 18 x 3 \(x, y, score\), got \(2, 18, 3\); pick one person"):
        TryOnInput(photo, parsing, np.stack([keypoints, keypoints]), garment, mask)
    with pytest.raises(ValueError, match=r"parsing must be integer label ids of the person's size \(300, 200\)"):
        TryOnInput(photo, parsing[:, :100], keypoints, garment, mask)
    with pytest.raises(ValueError, match=r"garment_mask is uint8 with values 0/1: pass it as bool"):
        TryOnInput(photo, parsing, keypoints, garment, (mask > 0).astype(np.uint8))
    with pytest.raises(ValueError, match=r"person must be an RGB uint8 H x W x 3 array, got float64 \(300, 200, 3\)"):
        TryOnInput(photo.astype(np.float64), parsing, keypoints, garment, mask)


# CP-VTON ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpvton_gmm(synth_file) -> CpVtonGmm:
    return CpVtonGmm(load_model(synth_file("cpvton_gmm")))


@pytest.fixture(scope="module")
def cpvton_tom(synth_file) -> CpVtonTom:
    return CpVtonTom(load_model(synth_file("cpvton_tom")))


@pytest.fixture(scope="module")
def cpvton_warps(cpvton_gmm, item, other_item) -> list[CpVtonWarp]:
    return cpvton_gmm([item, other_item])


def test_a_stage_refuses_a_checkpoint_of_another_family(cpvton_tom):
    with pytest.raises(WrongFamilyError, match=r"CpVtonGmm wraps cpvton_gmm checkpoints, not cpvton_tom"):
        CpVtonGmm(cpvton_tom.loaded)


def test_cpvton_gmm_warps_the_garment_with_the_reference_inputs_and_formulas(cpvton_gmm, cpvton_warps, item):
    result = cpvton_warps[0]
    frame = Letterbox.fit(PHOTO, (256, 192))
    assert result.person_frame == frame and (frame.padded_size, frame.left) == ((300, 225), 12)
    person = frame.image_to_frame(item.person)
    np.testing.assert_array_equal(result.person, person)
    expected = cpvton_agnostic(person, frame.labels_to_frame(item.parsing), frame.points_to_frame(item.keypoints))
    np.testing.assert_array_equal(result.agnostic.array(), expected.array())
    assert (result.agnostic.pose == 1).any(axis=(1, 2)).all(), "all 18 keypoints are inside the frame"

    cloth = torch.from_numpy(to_network_range(result.garment))[None]
    mask = torch.from_numpy(result.garment_mask.astype(np.float32))[None, None]
    with torch.no_grad():
        grid, theta = cpvton_gmm.module(torch.from_numpy(expected.array())[None], cloth)
    np.testing.assert_allclose(result.theta, theta[0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.grid, grid[0].numpy(), rtol=0, atol=5e-5)  # float32 TPS of a batch of 2
    assert result.grid.shape == (256, 192, 2) and result.theta.shape == (50,)
    own_grid = torch.from_numpy(result.grid)[None]
    warped = warp(cloth, own_grid, align_corners=False, padding_mode="border")
    warped_mask = warp(mask, own_grid, align_corners=False, padding_mode="zeros")
    np.testing.assert_array_equal(result.warped_garment, to_uint8_image(warped[0].numpy()))
    np.testing.assert_allclose(result.warped_mask, warped_mask[0, 0].numpy(), rtol=0, atol=1e-6)
    assert result.warped_mask.max() > 0.99 and result.warped_mask.min() == 0.0

    assert result.warped_garment_photo.shape == (*PHOTO, 3) and result.warped_garment_photo.dtype == np.uint8
    assert result.warped_mask_photo.shape == PHOTO
    np.testing.assert_array_equal(result.warped_garment_photo, frame.image_to_photo(result.warped_garment))


def test_cpvton_gmm_batches_as_it_runs_one_by_one(cpvton_gmm, cpvton_warps, item, other_item):
    single = cpvton_gmm(other_item)
    assert isinstance(single, CpVtonWarp)
    np.testing.assert_allclose(single.theta, cpvton_warps[1].theta, rtol=0, atol=1e-5)
    assert not np.allclose(cpvton_warps[0].theta, cpvton_warps[1].theta), "two different pairs"
    with pytest.raises(TypeError, match=r"CpVtonGmm takes TryOnInput items, got str at index 1"):
        cpvton_gmm([item, "person.png"])


def test_cpvton_tom_renders_and_composites_as_test_py(cpvton_tom, cpvton_warps):
    results = cpvton_tom(cpvton_warps)
    assert [r.warp for r in results] == cpvton_warps and isinstance(results[0], CpVtonTryOn)
    result = results[0]
    # the TOM reads the warped garment as the 8-bit image the GMM stage saved, as test.py reads warp-cloth/
    cloth = torch.from_numpy(to_network_range(result.warp.warped_garment))[None]
    agnostic = torch.from_numpy(result.warp.agnostic.array())[None]
    with torch.no_grad():
        raw = cpvton_tom.module(torch.cat([agnostic, cloth], 1))
    rendered, mask = torch.tanh(raw[:, :3]), torch.sigmoid(raw[:, 3:])
    tryon = cloth * mask + rendered * (1 - mask)
    np.testing.assert_allclose(result.composition_mask, mask[0, 0].numpy(), rtol=0, atol=1e-6)
    assert np.abs(result.rendered.astype(int) - to_uint8_image(rendered[0].numpy())).max() <= 1
    assert np.abs(result.tryon.astype(int) - to_uint8_image(tryon[0].numpy())).max() <= 1
    low = np.minimum(result.rendered, result.warp.warped_garment).astype(int) - 1
    high = np.maximum(result.rendered, result.warp.warped_garment).astype(int) + 1
    assert ((result.tryon >= low) & (result.tryon <= high)).all(), "each pixel mixes rendered and warped"
    assert result.tryon_photo.shape == (*PHOTO, 3) and result.rendered_photo.shape == (*PHOTO, 3)
    assert result.composition_mask_photo.shape == PHOTO
    np.testing.assert_array_equal(result.tryon_photo, result.warp.person_frame.image_to_photo(result.tryon))


# VITON-HD --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vitonhd_seg_model(synth_file):
    return load_model(synth_file("vitonhd_seg"))


@pytest.fixture(scope="module")
def vitonhd_gmm(synth_file) -> VitonHdGmm:
    return VitonHdGmm(load_model(synth_file("vitonhd_gmm")))


@pytest.fixture(scope="module")
def segmentation(vitonhd_seg_model, item):
    return VitonHdSeg(vitonhd_seg_model, size=SMALL, seed=3)(item)


@pytest.fixture(scope="module")
def vitonhd_warp(vitonhd_gmm, segmentation):
    return vitonhd_gmm(segmentation)


def _seg_input(segmentation, seed: int) -> torch.Tensor:
    """test.py's seg input, from the representation the stage kept."""
    cloth = torch.from_numpy(to_network_range(segmentation.garment))[None]
    mask = torch.from_numpy(segmentation.garment_mask.astype(np.float32))[None, None]
    parse = torch.from_numpy(group_one_hot(segmentation.parse_agnostic, VITONHD_GROUPS))[None]
    pose = torch.from_numpy(to_network_range(segmentation.pose_image))[None]

    def down(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(256, 192), mode="bilinear")

    noise = vitonhd_seg_noise((1, 1, 256, 192), torch.Generator().manual_seed(seed))
    return torch.cat((down(mask), down(cloth * mask), down(parse), down(pose), noise), dim=1)


def test_vitonhd_seg_builds_the_person_representation_and_predicts_the_parsing(vitonhd_seg_model, segmentation, item):
    frame = Letterbox.fit(PHOTO, SMALL)
    assert segmentation.size == SMALL and segmentation.person_frame == frame
    parsing = frame.labels_to_frame(item.parsing)
    pose = body25_from_openpose18(frame.points_to_frame(item.keypoints))
    np.testing.assert_array_equal(segmentation.pose, pose)
    scale = SMALL[1] / 768
    np.testing.assert_array_equal(segmentation.parse_agnostic, vitonhd_parse_agnostic(parsing, pose, scale))
    agnostic = vitonhd_image_agnostic(frame.image_to_frame(item.person), parsing, pose, scale)
    np.testing.assert_array_equal(segmentation.image_agnostic, agnostic.image)
    np.testing.assert_array_equal(segmentation.agnostic_mask, agnostic.mask)
    assert agnostic.mask.any() and not np.isin(segmentation.parse_agnostic, [5, 6, 7, 10]).any()
    assert segmentation.pose_image.any() and segmentation.pose_image.shape == (*SMALL, 3)

    with torch.no_grad():
        probabilities = vitonhd_seg_model.module(_seg_input(segmentation, seed=3))
    assert segmentation.probabilities.shape == (13, 256, 192)
    np.testing.assert_allclose(segmentation.probabilities, probabilities[0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(segmentation.labels, seg_labels(probabilities, *SMALL)[0].numpy())
    assert segmentation.labels_photo.shape == PHOTO
    np.testing.assert_array_equal(
        segmentation.alias_labels, group_one_hot(segmentation.labels, VITONHD_ALIAS_GROUPS).argmax(0)
    )

    with pytest.raises(ValueError, match=r"positive multiples of 128, got \(250, 128\)"):
        VitonHdSeg(vitonhd_seg_model, size=(250, 128))
    with pytest.raises(ValueError, match=r"at least 256 x 128 or 128 x 256 .* got \(128, 128\)"):
        VitonHdSeg(vitonhd_seg_model, size=(128, 128))


def test_vitonhd_gmm_warps_with_the_tps_of_its_theta_at_the_working_size(vitonhd_gmm, vitonhd_warp, segmentation):
    upper = torch.from_numpy((segmentation.alias_labels == 2).astype(np.float32))[None, None]
    pose = torch.from_numpy(to_network_range(segmentation.pose_image))[None]
    agnostic = torch.from_numpy(to_network_range(segmentation.image_agnostic))[None]
    cloth = torch.from_numpy(to_network_range(segmentation.garment))[None]
    mask = torch.from_numpy(segmentation.garment_mask.astype(np.float32))[None, None]

    def near(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(256, 192), mode="nearest")

    with torch.no_grad():
        theta, _ = vitonhd_gmm.module(torch.cat((near(upper), near(pose), near(agnostic)), 1), near(cloth))
    np.testing.assert_allclose(vitonhd_warp.theta, theta[0].numpy(), rtol=0, atol=1e-6)
    grid = tps_grid(torch.from_numpy(vitonhd_warp.theta)[None], *SMALL, grid_size=5, extent=0.9)
    np.testing.assert_allclose(vitonhd_warp.grid, grid[0].numpy(), rtol=0, atol=1e-6)
    warped = warp(cloth, grid, padding_mode="border")
    np.testing.assert_allclose(vitonhd_warp.warped_values, warped[0].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(vitonhd_warp.warped_mask, warp(mask, grid)[0, 0].numpy(), rtol=0, atol=1e-5)
    assert vitonhd_warp.warped_garment.shape == (*SMALL, 3) and vitonhd_warp.warped_garment_photo.shape == (*PHOTO, 3)
    assert vitonhd_warp.warped_mask_photo.shape == PHOTO


def test_vitonhd_at_its_load_size_uses_the_modules_own_grid(vitonhd_seg_model, vitonhd_gmm, item):
    segmentation = VitonHdSeg(vitonhd_seg_model)(item)
    assert segmentation.size == (1024, 768) and segmentation.labels.shape == (1024, 768)
    result = vitonhd_gmm(segmentation)
    expected = tps_grid(torch.from_numpy(result.theta)[None], 1024, 768, grid_size=5, extent=0.9)
    np.testing.assert_allclose(result.grid, expected[0].numpy(), rtol=0, atol=1e-5)
    assert result.warped_values.shape == (3, 1024, 768)


@pytest.mark.slow
def test_vitonhd_alias_synthesises_as_test_py_reproducibly(synth_file, vitonhd_warp, segmentation, item):
    alias = VitonHdAlias(load_model(synth_file("vitonhd_alias")), seed=7)
    state = torch.random.get_rng_state()
    result = alias(vitonhd_warp)
    assert torch.equal(state, torch.random.get_rng_state()), "the caller's RNG state is left alone"

    seg = torch.from_numpy(group_one_hot(segmentation.labels, VITONHD_ALIAS_GROUPS))[None]
    warped_mask = torch.from_numpy(vitonhd_warp.warped_mask)[None, None]
    misalign = misalignment_mask(seg[:, 2:3], warped_mask)
    np.testing.assert_array_equal(result.misalignment, misalign[0, 0].numpy())
    x = torch.cat(
        [
            torch.from_numpy(to_network_range(segmentation.image_agnostic))[None],
            torch.from_numpy(to_network_range(segmentation.pose_image))[None],
            torch.from_numpy(vitonhd_warp.warped_values)[None],
        ],
        1,
    )
    with torch.device("meta"):
        small = ALIASGenerator(load_height=SMALL[0], load_width=SMALL[1])
    small.load_state_dict(alias.module.state_dict(), assign=True)
    torch.manual_seed(7)
    with torch.no_grad():
        output = small.eval()(x, seg, alias_seg_div(seg, misalign), misalign)
    assert result.tryon.shape == (*SMALL, 3)
    assert np.abs(result.tryon.astype(int) - to_uint8_image(output[0].numpy())).max() <= 1

    assert ((result.synthesised == 1) >= segmentation.agnostic_mask).all()
    pasted = result.pasted_photo
    assert pasted.shape == (*PHOTO, 3) and result.tryon_photo.shape == (*PHOTO, 3)
    untouched = segmentation.person_frame.map_to_photo(result.synthesised) == 0
    assert untouched.any() and (~untouched).any()
    np.testing.assert_array_equal(pasted[untouched], item.person[untouched])
