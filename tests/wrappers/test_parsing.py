"""Parsing wrappers end to end on synthesized checkpoints: the reference's pre/post-processing, photo-size
label maps, batching, flip handling and family checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import Normalize, ToTensor
from torchvision.transforms._presets import SemanticSegmentation

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.vision.parsing import ParsingResult, schp_affine, schp_center_scale
from mycloset_assets.wrappers.base import WrongFamilyError, check_images
from mycloset_assets.wrappers.parsing import (
    GRAPHONOMY_SCALES,
    DeepLabSegmenter,
    GraphonomyParser,
    SCHPParser,
    normalize,
    parsing_wrapper,
)

RNG = np.random.default_rng(7)
TALL = RNG.integers(0, 256, (45, 31, 3), dtype=np.uint8)
WIDE = RNG.integers(0, 256, (33, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def schp_lip(synth_file) -> LoadedModel:
    return load_model(synth_file("schp_lip20"))


@pytest.fixture(scope="module")
def graphonomy(synth_file) -> LoadedModel:
    return load_model(synth_file("graphonomy_cihp20"))


@pytest.fixture(scope="module")
def deeplab_mobilenet(synth_file) -> LoadedModel:
    return load_model(synth_file("deeplabv3plus_mobilenet_voc"))


def close(got: torch.Tensor | np.ndarray, want: torch.Tensor | np.ndarray, rel: float = 1e-5) -> None:
    """Equal within ``rel`` of the larger magnitude (float summation order differs between batchings)."""
    got, want = torch.as_tensor(np.asarray(got)), torch.as_tensor(np.asarray(want))
    torch.testing.assert_close(got, want, rtol=0, atol=rel * float(want.abs().max()))


def check_result(result: ParsingResult, image: np.ndarray, label_set: str, num_classes: int) -> None:
    assert result.labels.shape == image.shape[:2]
    assert result.labels.dtype == np.uint8
    assert result.label_set == label_set
    assert len(result.names) == num_classes
    assert int(result.labels.max()) < num_classes


# --- SCHP ------------------------------------------------------------------------------------------------


def reference_schp_logits(module: torch.nn.Module, image: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """simple_extractor.py on an RGB photo: BGR, affine crop, ToTensor + Normalize(BGR ImageNet), fusion
    logits upsampled with align_corners=True, every channel warped back (transform_logits)."""
    height, width = image.shape[:2]
    center, scale = schp_center_scale(height, width, input_size)
    crop = cv2.warpAffine(
        np.ascontiguousarray(image[:, :, ::-1]),
        schp_affine(center, scale, input_size),
        (input_size[1], input_size[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    x = Normalize(mean=[0.406, 0.456, 0.485], std=[0.225, 0.224, 0.229])(ToTensor()(crop))[None]
    with torch.no_grad():
        fusion = module(x)[0][-1]
    up = F.interpolate(fusion, size=input_size, mode="bilinear", align_corners=True)[0].permute(1, 2, 0).numpy()
    inverse = schp_affine(center, scale, input_size, inverse=True)
    channels = [
        cv2.warpAffine(np.ascontiguousarray(up[:, :, c]), inverse, (width, height), flags=cv2.INTER_LINEAR)
        for c in range(up.shape[2])
    ]
    return np.stack(channels, axis=2)


def test_schp_defaults_come_from_the_entry(schp_lip: LoadedModel) -> None:
    parser = SCHPParser(schp_lip)
    assert (parser.input_size, parser.flip, parser.label_set.name) == ((473, 473), False, "LIP-20")


def test_schp_logits_are_the_reference_procedure(schp_lip: LoadedModel) -> None:
    parser = SCHPParser(schp_lip, input_size=(64, 48))
    for image in (TALL, WIDE):
        got = parser.photo_logits([image])[0]
        assert got.shape == (20, *image.shape[:2])
        close(got.permute(1, 2, 0), reference_schp_logits(schp_lip.module, image, (64, 48)))


def test_schp_results_at_photo_size_and_batch_independent(schp_lip: LoadedModel) -> None:
    parser = SCHPParser(schp_lip, input_size=(64, 64), batch_size=2)
    batch = parser([TALL, WIDE, TALL[:, ::-1]])
    for result, image in zip(batch, (TALL, WIDE, TALL), strict=True):
        check_result(result, image, "LIP-20", 20)
    single = parser(WIDE)
    np.testing.assert_array_equal(single.labels, batch[1].labels)
    close(parser.photo_logits([WIDE])[0], parser.photo_logits([TALL, WIDE])[1])
    np.testing.assert_array_equal(parser(WIDE).labels, single.labels)


def test_schp_flip_test_is_mirror_equivariant(schp_lip: LoadedModel) -> None:
    """With flip averaging, the mirrored photo's logits are the mirrored logits with left/right swapped."""
    swap = [*range(14), 15, 14, 17, 16, 19, 18]
    mirrored = np.ascontiguousarray(TALL[:, ::-1])
    flipped = SCHPParser(schp_lip, input_size=(64, 64), flip=True)
    got, want = flipped.photo_logits([mirrored, TALL])
    close(got, want[swap].flip(-1), rel=1e-4)
    plain = SCHPParser(schp_lip, input_size=(64, 64))
    got, want = plain.photo_logits([mirrored, TALL])
    assert (got - want[swap].flip(-1)).abs().max() > 1e-3 * want.abs().max()


def test_schp_atr_uses_its_own_label_set(synth_file) -> None:
    loaded = load_model(synth_file("schp_atr18"))
    parser = SCHPParser(loaded, input_size=(48, 48))
    assert SCHPParser(loaded).input_size == (512, 512)
    check_result(parser(WIDE), WIDE, "ATR-18", 18)


def test_schp_at_the_published_input_size(schp_lip: LoadedModel) -> None:
    result = SCHPParser(schp_lip)(WIDE)
    check_result(result, WIDE, "LIP-20", 20)


# --- Graphonomy ------------------------------------------------------------------------------------------


def reference_graphonomy_logits(module: torch.nn.Module, image: np.ndarray, scales: list[float]) -> torch.Tensor:
    """exp/inference/inference.py: per scale a PIL bilinear resize and its mirror, 2x/255 - 1, BGR, the
    flipped output's channels swapped (flip_cihp) and mirrored, averaged, upsampled (align_corners=True)
    to the first scale's size and summed."""
    swap = [*range(14), 15, 14, 17, 16, 19, 18]
    total = None
    for scale in scales:
        pil = Image.fromarray(image)
        pil = pil.resize((int(pil.width * scale), int(pil.height * scale)), Image.BILINEAR)
        pair = [np.asarray(pil), np.asarray(pil.transpose(Image.FLIP_LEFT_RIGHT))]
        x = torch.stack([torch.from_numpy((a.astype(np.float32) * 2.0) / 255.0 - 1).permute(2, 0, 1) for a in pair])
        with torch.no_grad():
            out = module(x[:, [2, 1, 0]])
        out = ((out[0] + out[1][swap].flip(-1)) / 2)[None]
        if total is None:
            total = out
        else:
            total = total + F.interpolate(out, size=total.shape[-2:], mode="bilinear", align_corners=True)
    return total[0]


def test_graphonomy_defaults_are_the_reference_scales_with_flip(graphonomy: LoadedModel) -> None:
    parser = GraphonomyParser(graphonomy)
    assert parser.scales == GRAPHONOMY_SCALES == (1.0, 0.5, 0.75, 1.25, 1.5, 1.75)
    assert parser.flip
    assert parser.label_set.name == "CIHP-20"


def test_graphonomy_logits_are_the_reference_procedure(graphonomy: LoadedModel) -> None:
    parser = GraphonomyParser(graphonomy, scales=(1.0, 0.5, 0.75))
    got = parser.photo_logits([WIDE])[0]
    assert got.shape == (20, *WIDE.shape[:2])
    close(got, reference_graphonomy_logits(graphonomy.module, WIDE, [1.0, 0.5, 0.75]))


def test_graphonomy_batches_by_size_and_keeps_the_order(graphonomy: LoadedModel) -> None:
    parser = GraphonomyParser(graphonomy, scales=(1.0,), batch_size=2)
    images = [TALL, WIDE, TALL[::-1], WIDE[:, ::-1]]
    results = parser(images)
    for result, image in zip(results, images, strict=True):
        check_result(result, image, "CIHP-20", 20)
    batched = parser.photo_logits(images)
    for index in (1, 2):
        close(parser.photo_logits([images[index]])[0], batched[index])


def test_graphonomy_flip_averaging_is_mirror_equivariant(graphonomy: LoadedModel) -> None:
    swap = [*range(14), 15, 14, 17, 16, 19, 18]
    parser = GraphonomyParser(graphonomy, scales=(1.0,))
    got, want = parser.photo_logits([np.ascontiguousarray(WIDE[:, ::-1]), WIDE])
    close(got, want[swap].flip(-1), rel=1e-4)


def test_graphonomy_default_scales_at_photo_size(graphonomy: LoadedModel) -> None:
    check_result(GraphonomyParser(graphonomy)(TALL), TALL, "CIHP-20", 20)


def test_graphonomy_refuses_bad_scales(graphonomy: LoadedModel) -> None:
    with pytest.raises(ValueError, match=r"scales must be a non-empty list of positive factors, got \[1.0, 0.0\]"):
        GraphonomyParser(graphonomy, scales=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"scale 0.01 shrinks a 45 x 31 image to nothing"):
        GraphonomyParser(graphonomy, scales=(0.01,))(TALL)


# --- DeepLab ---------------------------------------------------------------------------------------------


def test_deeplabv3plus_is_the_whole_photo_argmax(deeplab_mobilenet: LoadedModel) -> None:
    """predict.py: ToTensor + ImageNet Normalize of the whole photo, argmax of the logits."""
    segmenter = DeepLabSegmenter(deeplab_mobilenet)
    assert segmenter.resize_shorter_side is None
    results = segmenter([TALL, WIDE])
    for result, image in zip(results, (TALL, WIDE), strict=True):
        check_result(result, image, "VOC-21", 21)
        x = Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(ToTensor()(image))[None]
        with torch.no_grad():
            want = deeplab_mobilenet.module(x).argmax(1)[0].numpy()
        np.testing.assert_array_equal(result.labels, want)
        np.testing.assert_array_equal(result.mask("person"), result.labels == 15)
    assert len(np.unique(results[1].labels)) > 1


def test_torchvision_deeplab_input_is_the_torchvision_preset(synth_file) -> None:
    loaded = load_model(synth_file("torchvision_deeplabv3_resnet101"))
    assert DeepLabSegmenter(loaded).resize_shorter_side == 520
    segmenter = DeepLabSegmenter(loaded, resize_shorter_side=40)
    preset = SemanticSegmentation(resize_size=40)
    for image in (TALL, WIDE):
        want = preset(torch.from_numpy(image).permute(2, 0, 1))
        got = segmenter.prepare(torch.from_numpy(image).permute(2, 0, 1)[None].float())[0]
        assert got.shape == want.shape and min(got.shape[-2:]) == 40
        close(got, want, rel=1e-6)
    results = segmenter([WIDE, TALL])
    check_result(results[0], WIDE, "VOC-21", 21)
    check_result(results[1], TALL, "VOC-21", 21)


# --- shared checks ---------------------------------------------------------------------------------------


def test_normalize_follows_the_preprocess_block() -> None:
    batch = torch.tensor([[[[0.0]], [[127.5]], [[255.0]]]])
    bgr = {"channel_order": "BGR", "value_range": 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    torch.testing.assert_close(normalize(batch, bgr).flatten(), torch.tensor([1.0, 0.0, -1.0]))
    peak = {"channel_order": "RGB", "value_range": "max", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    torch.testing.assert_close(normalize(batch / 2, peak).flatten(), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"channel_order must be RGB or BGR, got 'YUV'"):
        normalize(batch, {**bgr, "channel_order": "yuv"})


def test_images_must_be_rgb_uint8() -> None:
    check_images([TALL, TALL[:, ::-1]])
    with pytest.raises(ValueError, match=r"image 1 must be an RGB uint8 H x W x 3 array, got float32 \(45, 31, 3\)"):
        check_images([TALL, TALL.astype(np.float32)])
    with pytest.raises(ValueError, match=r"image 0 must be an RGB uint8 H x W x 3 array, got uint8 \(45, 31\)"):
        check_images([TALL[:, :, 0]])


def test_wrappers_refuse_other_families(schp_lip: LoadedModel, graphonomy: LoadedModel) -> None:
    with pytest.raises(
        WrongFamilyError, match=r"SCHPParser wraps schp checkpoints, not graphonomy \(graphonomy_cihp20\)"
    ):
        SCHPParser(graphonomy)
    with pytest.raises(
        WrongFamilyError, match=r"DeepLabSegmenter wraps deeplabv3plus or deeplabv3 checkpoints, not schp"
    ):
        DeepLabSegmenter(schp_lip)


def test_parsing_wrapper_picks_the_family(
    schp_lip: LoadedModel, graphonomy: LoadedModel, deeplab_mobilenet: LoadedModel
) -> None:
    assert type(parsing_wrapper(schp_lip, input_size=(32, 32))) is SCHPParser
    assert type(parsing_wrapper(graphonomy)) is GraphonomyParser
    assert type(parsing_wrapper(deeplab_mobilenet)) is DeepLabSegmenter
