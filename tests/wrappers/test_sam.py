"""SAM mask refinement (MobileSAM, a ViT SAM) on synthesized weights: SamPredictor's pre- and
post-processing, best-of-three."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from segment_anything import SamPredictor

from mycloset_assets.checkpoints import LoadedModel, get_entry, load_model
from mycloset_assets.vision.prompts import SamPrompt, person_clothing_prompt
from mycloset_assets.vision.quality import mask_iou
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.sam import MaskRefiner, SamMask, resize_longest_side
from tests.models.test_sam_vit import small_pair
from tests.vision.test_prompts import HEIGHT, WIDTH, draw_person, person_keypoints

COLOURS = {"head": (224, 172, 140), "arms": (224, 172, 140), "upper": (200, 30, 40), "pants": (30, 50, 160)}


@pytest.fixture(scope="module")
def sam(synth_file) -> LoadedModel:
    return load_model(synth_file("mobile_sam"), "cpu", torch.float32)


@pytest.fixture(scope="module")
def refiner(sam: LoadedModel) -> MaskRefiner:
    return MaskRefiner(sam)


@pytest.fixture(scope="module")
def person() -> tuple[np.ndarray, np.ndarray, SamPrompt]:
    """A drawn 240 x 180 person photo, its upper-clothes mask and the prompt derived from mask and pose."""
    parts = draw_person()
    photo = np.full((HEIGHT, WIDTH, 3), 235, np.uint8)
    for part, colour in COLOURS.items():
        photo[parts[part]] = colour
    return photo, parts["upper"], person_clothing_prompt(parts["upper"], person_keypoints())


@pytest.fixture(scope="module")
def segmented(refiner: MaskRefiner, person) -> SamMask:
    photo, _, prompt = person
    return refiner.segment(photo, prompt)


def test_resize_is_resize_longest_side() -> None:
    """apply_image: torchvision's resize of the PIL image to get_preprocess_shape (PIL bilinear)."""
    image = np.random.default_rng(3).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    resized = resize_longest_side(image, 64)
    assert resized.shape == (47, 64, 3)  # 30 * 64 / 41 = 46.8 rounds to 47
    np.testing.assert_array_equal(resized, np.asarray(TF.resize(TF.to_pil_image(image), [47, 64])))
    assert resize_longest_side(resized, 64) is resized


def test_segment_is_sam_forward_best_of_three(sam: LoadedModel, person, segmented: SamMask) -> None:
    """The module's own Sam.forward on the same photo, with the prompt scaled by 1024 / 240 on both axes."""
    photo, _, prompt = person
    resized = torch.from_numpy(resize_longest_side(photo, 1024).transpose(2, 0, 1).copy()).float()
    assert tuple(resized.shape) == (3, 1024, 768)
    record = {
        "image": resized,
        "original_size": (HEIGHT, WIDTH),
        "point_coords": torch.from_numpy(prompt.points * 1024 / 240).float()[None],
        "point_labels": torch.from_numpy(prompt.labels)[None],
        "boxes": torch.from_numpy(prompt.box * 1024 / 240).float()[None],
    }
    want = sam.module([record], multimask_output=True)[0]
    assert want["masks"].shape == (1, 3, HEIGHT, WIDTH)
    best = int(want["iou_predictions"][0].argmax())
    assert segmented.index == best
    assert segmented.mask.shape == (HEIGHT, WIDTH) and segmented.mask.dtype == np.bool_
    np.testing.assert_array_equal(segmented.mask, want["masks"][0, best].numpy())
    assert segmented.score == pytest.approx(float(want["iou_predictions"][0, best]), abs=1e-6)
    assert np.isfinite(segmented.score)
    assert segmented.logits.shape == (256, 256) and segmented.logits.dtype == np.float32
    np.testing.assert_allclose(segmented.logits, want["low_res_logits"][0, best].numpy(), atol=1e-5)


def test_segment_is_deterministic_and_embeds_once(refiner: MaskRefiner, person, segmented: SamMask) -> None:
    photo, mask, prompt = person
    box_only = SamPrompt(np.empty((0, 2)), np.empty(0), prompt.box)
    again, boxed = refiner.segment_many(photo, [prompt, box_only])
    np.testing.assert_array_equal(again.mask, segmented.mask)
    assert (again.score, again.index) == (segmented.score, segmented.index)
    assert boxed.mask.shape == (HEIGHT, WIDTH) and np.isfinite(boxed.score)


def test_refine_reports_iou_and_follows_the_range(refiner: MaskRefiner, person, segmented: SamMask) -> None:
    photo, mask, prompt = person
    result = refiner.refine(photo, mask, prompt, reference_name="parsing")
    np.testing.assert_array_equal(result.refined, segmented.mask)  # a second embedding gives the same mask
    np.testing.assert_array_equal(result.reference, mask)
    assert result.iou == mask_iou(segmented.mask, mask) and 0.0 <= result.iou <= 1.0
    assert result.score == segmented.score
    assert result.kept == (0.5 <= result.iou <= 1.0)
    assert result.mask is (result.refined if result.kept else result.reference)
    assert result.reason.startswith(f"IoU {result.iou:.3f} with the parsing mask is ")


def test_bad_inputs_are_refused(refiner: MaskRefiner, person, synth_file) -> None:
    photo, mask, prompt = person
    with pytest.raises(ValueError, match="the reference mask is 120 x 180 but the photo is 240 x 180"):
        refiner.refine(photo, mask[:120], prompt)
    with pytest.raises(ValueError, match="RGB uint8 H x W x 3"):
        refiner.segment(photo.astype(np.float32), prompt)
    with pytest.raises(WrongFamilyError, match="MaskRefiner wraps SAM checkpoints, not u2netp"):
        MaskRefiner(load_model(synth_file("u2netp")))


def test_a_vit_sam_segments_as_segment_anythings_predictor(person) -> None:
    """A ViT SAM (family ``sam``; reduced to a 256 side so it runs in a second) in the refiner gives
    SamPredictor's best-of-three mask and score on the same weights."""
    reference, ours = small_pair()
    loaded = LoadedModel(ours, None, get_entry("sam_vit_b"), None, torch.device("cpu"), torch.float32)  # type: ignore[arg-type]
    photo, _, prompt = person
    got = MaskRefiner(loaded).segment(photo, prompt)
    predictor = SamPredictor(reference)
    predictor.set_image(photo)
    masks, scores, _ = predictor.predict(
        point_coords=prompt.points, point_labels=prompt.labels, box=prompt.box, multimask_output=True
    )
    best = int(np.argmax(scores))
    assert got.index == best and got.score == pytest.approx(float(scores[best]), abs=1e-5)
    assert got.mask.shape == (HEIGHT, WIDTH)
    assert (got.mask != masks[best]).mean() <= 1e-3
