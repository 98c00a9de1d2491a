"""Garment wrappers end to end on synthesized checkpoints: U2Net cloth segmentation and U2Net(p) saliency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import Normalize, ToTensor

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.vision.garment import SaliencyResult
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.garment import ClothSegmenter, SaliencyMasker

RNG = np.random.default_rng(11)
TALL = RNG.integers(0, 256, (45, 31, 3), dtype=np.uint8)
WIDE = RNG.integers(0, 256, (30, 52, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cloth(synth_file) -> LoadedModel:
    return load_model(synth_file("u2net_cloth_seg4"))


@pytest.fixture(scope="module")
def u2netp(synth_file) -> LoadedModel:
    return load_model(synth_file("u2netp"))


def test_cloth_segmenter_defaults(cloth: LoadedModel) -> None:
    segmenter = ClothSegmenter(cloth)
    assert segmenter.input_size == (768, 768)
    assert segmenter.label_set.name == "ClothSeg-4"


def test_cloth_segmentation_at_native_size_is_infer_py(cloth: LoadedModel) -> None:
    """infer.py: ToTensor, Normalize(0.5, 0.5), argmax over log_softmax of d0, at the photo's own size."""
    results = ClothSegmenter(cloth, input_size=None)([TALL, WIDE])
    for result, image in zip(results, (TALL, WIDE), strict=True):
        x = Normalize([0.5] * 3, [0.5] * 3)(ToTensor()(image))[None]
        with torch.no_grad():
            want = F.log_softmax(cloth.module(x)[0], dim=1).argmax(1)[0].numpy()
        np.testing.assert_array_equal(result.labels, want)
        assert (result.label_set, result.labels.dtype) == ("ClothSeg-4", np.uint8)
        np.testing.assert_array_equal(result.mask("upper"), want == 1)
        np.testing.assert_array_equal(result.mask("garments"), want > 0)
    assert len(np.unique(results[0].labels)) > 1


def test_cloth_segmentation_resized_comes_back_at_photo_size(cloth: LoadedModel) -> None:
    segmenter = ClothSegmenter(cloth, input_size=(48, 48), batch_size=2)
    batch = segmenter([TALL, WIDE, TALL])
    assert [r.labels.shape for r in batch] == [(45, 31), (30, 52), (45, 31)]
    np.testing.assert_array_equal(batch[0].labels, batch[2].labels)
    np.testing.assert_array_equal(segmenter(WIDE).labels, batch[1].labels)
    assert int(batch[1].labels.max()) <= 3
    # a photo already at the input size is not resized: the same as the native-size path
    native = ClothSegmenter(cloth, input_size=None)(TALL).labels
    np.testing.assert_array_equal(ClothSegmenter(cloth, input_size=(45, 31))(TALL).labels, native)


def test_saliency_defaults(u2netp: LoadedModel) -> None:
    masker = SaliencyMasker(u2netp)
    assert (masker.input_size, masker.threshold) == ((320, 320), 0.5)


def test_saliency_is_normpred_of_d0(u2netp: LoadedModel) -> None:
    """u2net_test.py's ToTensorLab (image / max, ImageNet mean/std), d0 channel 0, normPRED."""
    result = SaliencyMasker(u2netp, input_size=(45, 31))(TALL)
    assert isinstance(result, SaliencyResult)
    image = TALL.astype(np.float64) / TALL.max()
    x = (image - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        d0 = u2netp.module(torch.from_numpy(x.transpose(2, 0, 1))[None].float())[0][0, 0]
    want = ((d0 - d0.min()) / (d0.max() - d0.min())).numpy()
    np.testing.assert_allclose(result.saliency, want, atol=1e-5)
    assert (result.saliency.dtype, float(result.saliency.min()), float(result.saliency.max())) == (np.float32, 0, 1)
    np.testing.assert_array_equal(result.mask(), result.saliency > 0.5)


def test_saliency_divides_by_the_image_maximum(u2netp: LoadedModel) -> None:
    even = (TALL // 2) * 2
    masker = SaliencyMasker(u2netp, input_size=(32, 32))
    full, half = masker([even, even // 2])
    np.testing.assert_allclose(full.saliency, half.saliency, atol=1e-5)


def test_saliency_resized_back_to_photo_size(u2netp: LoadedModel) -> None:
    masker = SaliencyMasker(u2netp, input_size=(32, 32), threshold=0.3, batch_size=1)
    results = masker([TALL, WIDE])
    assert [r.saliency.shape for r in results] == [(45, 31), (30, 52)]
    for result in results:
        assert result.saliency.min() >= 0.0 and result.saliency.max() <= 1.0
        assert result.threshold == 0.3
    np.testing.assert_array_equal(masker(WIDE).saliency, results[1].saliency)


def test_full_u2net_saliency(synth_file) -> None:
    result = SaliencyMasker(load_model(synth_file("u2net")), input_size=(32, 32))(WIDE)
    assert result.saliency.shape == (30, 52)


def test_garment_wrappers_refuse_other_tasks(cloth: LoadedModel, u2netp: LoadedModel) -> None:
    with pytest.raises(
        WrongFamilyError, match=r"ClothSegmenter wraps U2Net cloth_segmentation checkpoints, not u2netp seg"
    ):
        ClothSegmenter(u2netp)
    with pytest.raises(WrongFamilyError, match=r"SaliencyMasker wraps U2Net segmentation checkpoints, not u2net cloth"):
        SaliencyMasker(cloth)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1.5"):
        SaliencyMasker(u2netp, threshold=1.5)
    with pytest.raises(ValueError, match=r"input_size must be positive \(height, width\), got \(0, 32\)"):
        ClothSegmenter(cloth, input_size=(0, 32))
