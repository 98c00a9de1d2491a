"""LPIPS distance over regions and CLIP image similarity on synthesized checkpoints.

The synthesized lin weights are signed (published LPIPS lin weights are non-negative, clamped in training), so
single taps can go negative here; the assertions are on what holds for any weights, plus the total's growth
with noise, which these seed-0 weights show.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from mycloset_assets.checkpoints import LoadedModel, load_model
from mycloset_assets.models.lpips import LPIPS
from mycloset_assets.wrappers.base import WrongFamilyError
from mycloset_assets.wrappers.quality import ClipSimilarity, LpipsDistance

RNG = np.random.default_rng(5)
IMAGE = RNG.integers(0, 256, (128, 256, 3), dtype=np.uint8)


def _noisy(image: np.ndarray, sigma: float) -> np.ndarray:
    noise = np.random.default_rng(1).normal(0.0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lpips(synth_file) -> LoadedModel:
    trunk = {"torchvision_alexnet_features": synth_file("torchvision_alexnet_features")}
    return load_model(synth_file("lpips_alex_lin"), "cpu", torch.float32, companions=trunk)


@pytest.fixture(scope="module")
def clip(synth_file) -> LoadedModel:
    return load_model(synth_file("clip_vit_b32"), "cpu", torch.float32)


def test_lpips_of_an_image_with_itself_is_zero(lpips: LoadedModel) -> None:
    distance = LpipsDistance(lpips)
    assert abs(distance(IMAGE, IMAGE)) < 1e-6
    assert all(abs(term) < 1e-6 for term in distance.per_layer(IMAGE, IMAGE))


def test_lpips_grows_with_noise(lpips: LoadedModel) -> None:
    distance = LpipsDistance(lpips)
    values = [distance(IMAGE, _noisy(IMAGE, sigma)) for sigma in (5.0, 15.0, 40.0)]
    assert 0 < values[0] < values[1] < values[2]


def test_lpips_is_the_reference_spatial_lpips_averaged(lpips: LoadedModel) -> None:
    """The same numbers as the module's own forward built with ``spatial=True`` (the reference's maps)."""
    other = _noisy(IMAGE, 20.0)
    with torch.device("meta"):
        spatial = LPIPS("alex", spatial=True)
    spatial.load_state_dict(lpips.module.state_dict(), assign=True)
    to_tensor = transforms.ToTensor()
    with torch.no_grad():
        total, terms = spatial.eval()(to_tensor(IMAGE)[None], to_tensor(other)[None], retPerLayer=True, normalize=True)
    distance = LpipsDistance(lpips)
    maps = distance.tap_maps(IMAGE, other)
    assert maps.shape == (5, 128, 256) and maps.dtype == np.float64
    np.testing.assert_allclose(maps, torch.cat(terms, 1)[0].numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(distance.per_layer(IMAGE, other), [float(t.mean()) for t in terms], rtol=1e-5)
    assert distance(IMAGE, other) == pytest.approx(float(total.mean()), rel=1e-5)
    everywhere = np.ones(IMAGE.shape[:2], dtype=bool)
    assert distance(IMAGE, other, everywhere) == pytest.approx(distance(IMAGE, other), rel=1e-12)


def test_lpips_in_a_region_ignores_changes_far_from_it(lpips: LoadedModel) -> None:
    """Only columns 192.. change. AlexNet's deepest tap sees about 160 px, so a region 128 px away scores
    exactly 0 and one 64 px away scores ~0 (far below the whole image's distance)."""
    changed = IMAGE.copy()
    changed[:, 192:] = 255 - changed[:, 192:]
    distance = LpipsDistance(lpips)
    whole = distance(IMAGE, changed)
    far, near, over = (np.zeros(IMAGE.shape[:2], dtype=bool) for _ in range(3))
    far[:, :64] = True
    near[:, :128] = True
    over[:, 160:] = True
    assert distance(IMAGE, changed, far) == 0.0
    assert abs(distance(IMAGE, changed, near)) < 1e-3 * whole
    assert distance(IMAGE, changed, over) > whole > 0


def test_lpips_downscales_images_and_region_together(lpips: LoadedModel) -> None:
    big = RNG.integers(0, 256, (192, 320, 3), dtype=np.uint8)
    other = _noisy(big, 25.0)
    region = np.zeros(big.shape[:2], dtype=bool)
    region[40:150, 60:250] = True  # whole 2 x 2 blocks: exactly region[::2, ::2] at half size
    small, small_other = (cv2.resize(x, (160, 96), interpolation=cv2.INTER_AREA) for x in (big, other))
    distance = LpipsDistance(lpips)
    assert distance.tap_maps(big, other, max_side=160).shape == (5, 96, 160)
    got = distance(big, other, region, max_side=160)
    assert got == pytest.approx(distance(small, small_other, region[::2, ::2], max_side=None), rel=1e-12)
    assert distance(big, other, max_side=160) == pytest.approx(distance(small, small_other), rel=1e-12)
    assert distance(big, other, max_side=None) != pytest.approx(distance(small, small_other), rel=1e-3)


def test_lpips_errors_say_what_to_do(lpips: LoadedModel, clip: LoadedModel) -> None:
    distance = LpipsDistance(lpips)
    with pytest.raises(ValueError, match="one size"):
        distance(IMAGE, IMAGE[:, :200])
    with pytest.raises(ValueError, match="region is empty"):
        distance(IMAGE, IMAGE, np.zeros(IMAGE.shape[:2], dtype=bool))
    with pytest.raises(ValueError, match="does not match"):
        distance(IMAGE, IMAGE, np.ones((128, 255), dtype=bool))
    with pytest.raises(ValueError, match="RGB uint8"):
        distance(IMAGE.astype(np.float32), IMAGE)
    assert distance.min_side == 31
    tiny = IMAGE[:30, :40]
    with pytest.raises(ValueError, match=r"at least 31 px on each side, got 30 x 40; compare larger"):
        distance(tiny, tiny)
    thin = np.zeros((60, 2000, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"got 15 x 512 after downscaling to max_side=512"):
        distance(thin, thin)
    with pytest.raises(WrongFamilyError, match="LpipsDistance wraps lpips checkpoints, not clip"):
        LpipsDistance(clip)


def _clip_transform(mean: list[float], std: list[float]) -> transforms.Compose:
    """openai/CLIP clip.py ``_transform(224)`` built from torchvision."""
    bicubic = transforms.InterpolationMode.BICUBIC
    steps = [transforms.Resize(224, interpolation=bicubic), transforms.CenterCrop(224), transforms.ToTensor()]
    return transforms.Compose([*steps, transforms.Normalize(mean, std)])


CLIP_IMAGES = [
    RNG.integers(0, 256, (300, 451, 3), dtype=np.uint8),
    RNG.integers(0, 256, (97, 61, 3), dtype=np.uint8),
    RNG.integers(0, 256, (224, 224, 3), dtype=np.uint8),
    RNG.integers(0, 256, (227, 226, 3), dtype=np.uint8),
]


def test_clip_preprocessing_is_clips_transform(clip: LoadedModel) -> None:
    similarity = ClipSimilarity(clip)
    transform = _clip_transform(clip.entry.preprocess["mean"], clip.entry.preprocess["std"])
    for image in CLIP_IMAGES:
        got = similarity.prepare(image)
        assert tuple(got.shape) == (3, 224, 224) and got.dtype == torch.float32
        torch.testing.assert_close(got, transform(Image.fromarray(image)), rtol=0, atol=1e-6)


def test_clip_embeddings_are_unit_encode_image_features(clip: LoadedModel) -> None:
    similarity = ClipSimilarity(clip, batch_size=3)
    embeddings = similarity.embed(CLIP_IMAGES)
    assert embeddings.shape == (4, 512) and embeddings.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=0, atol=1e-12)
    transform = _clip_transform(clip.entry.preprocess["mean"], clip.entry.preprocess["std"])
    with torch.no_grad():
        features = clip.module.encode_image(torch.stack([transform(Image.fromarray(x)) for x in CLIP_IMAGES]))
    want = torch.nn.functional.normalize(features.double(), dim=1).numpy()
    np.testing.assert_allclose(embeddings, want, rtol=0, atol=1e-5)
    single = similarity.embed(CLIP_IMAGES[1])
    assert single.shape == (1, 512)
    np.testing.assert_allclose(single[0], embeddings[1], rtol=0, atol=1e-5)


def test_clip_similarity_is_one_for_the_same_image_and_symmetric(clip: LoadedModel) -> None:
    similarity = ClipSimilarity(clip)
    a, b = CLIP_IMAGES[0], CLIP_IMAGES[3]
    assert similarity.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    forward, backward = similarity.similarity(a, b), similarity.similarity(b, a)
    assert forward == pytest.approx(backward, abs=1e-9)
    assert -1.0 <= forward < 1.0 - 1e-4


def test_clip_errors(clip: LoadedModel, lpips: LoadedModel) -> None:
    similarity = ClipSimilarity(clip)
    with pytest.raises(ValueError, match="no images to embed"):
        similarity.embed([])
    with pytest.raises(ValueError, match="RGB uint8"):
        similarity.embed([np.zeros((32, 32), dtype=np.uint8)])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ClipSimilarity(clip, batch_size=0)
    with pytest.raises(WrongFamilyError, match="ClipSimilarity wraps clip checkpoints, not lpips"):
        ClipSimilarity(lpips)
