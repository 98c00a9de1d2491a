"""Quality measures: SSIM against a brute-force evaluation of its definition and its known properties, region
crops, mask IoU."""

from __future__ import annotations

import numpy as np
import pytest

from mycloset_assets.checkpoints import get_entry
from mycloset_assets.vision.quality import CLIP_MEAN_RGB, luma, mask_iou, region_crop, ssim, ssim_map

RNG = np.random.default_rng(3)
IMAGE = RNG.integers(30, 200, (48, 64, 3), dtype=np.uint8)


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _brute_force_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM at every pixel straight from the definition: an explicit 11 x 11 Gaussian window (sigma 1.5) over
    the symmetrically padded images, weighted population moments."""
    offsets = np.arange(-5, 6)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    px, py = np.pad(x, 5, mode="symmetric"), np.pad(y, 5, mode="symmetric")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            wx, wy = px[i : i + 11, j : j + 11], py[i : i + 11, j : j + 11]
            mx, my = (window * wx).sum(), (window * wy).sum()
            vx, vy = (window * (wx - mx) ** 2).sum(), (window * (wy - my) ** 2).sum()
            cov = (window * (wx - mx) * (wy - my)).sum()
            out[i, j] = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return out


def test_luma_is_bt601_and_leaves_2d_arrays_alone():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_allclose(luma(pixels), [[76.245, 149.685, 29.07, 0.299 * 10 + 0.587 * 20 + 0.114 * 30]])
    plane = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert luma(plane).dtype == np.float64
    np.testing.assert_array_equal(luma(plane), plane)
    with pytest.raises(ValueError, match="RGB H x W x 3 images or 2-D arrays"):
        luma(np.zeros((4, 4, 4), dtype=np.uint8))


def test_ssim_map_is_the_definition_at_every_pixel_borders_included():
    a, b = IMAGE[:20, :17], _noisy(IMAGE, 20.0)[:20, :17]
    got = ssim_map(a, b)
    assert got.shape == (20, 17) and got.dtype == np.float64
    np.testing.assert_allclose(got, _brute_force_ssim(luma(a), luma(b), 255.0), rtol=0, atol=1e-10)


def test_identical_images_and_regions_score_one():
    other = _noisy(IMAGE, 30.0)
    np.testing.assert_allclose(ssim_map(IMAGE, IMAGE), 1.0, rtol=0, atol=1e-12)
    assert ssim(IMAGE, IMAGE) == pytest.approx(1.0, abs=1e-12)
    same_inside = other.copy()
    same_inside[10:40, 20:60] = IMAGE[10:40, 20:60]
    region = np.zeros(IMAGE.shape[:2], dtype=bool)
    region[15:35, 25:55] = True  # 5 px inside the copied block: every window sees identical pixels
    assert ssim(IMAGE, same_inside, region) == pytest.approx(1.0, abs=1e-12)
    assert ssim(IMAGE, same_inside) < 0.95


def test_ssim_is_symmetric():
    other = _noisy(IMAGE, 25.0)
    np.testing.assert_array_equal(ssim_map(IMAGE, other), ssim_map(other, IMAGE))


def _window_means(x: np.ndarray) -> np.ndarray:
    """The Gaussian window's mean around every pixel, computed directly (symmetric padding)."""
    offsets = np.arange(-5, 6)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    views = np.lib.stride_tricks.sliding_window_view(np.pad(x, 5, mode="symmetric"), (11, 11))
    return np.einsum("ijkl,kl->ij", views, window)


def test_constant_shift_leaves_only_the_luminance_term():
    """Shifting by a constant keeps variances and covariance, so SSIM is the luminance term alone, below 1."""
    gray = luma(IMAGE)
    got = ssim_map(gray, gray + 20.0)
    mu, c1 = _window_means(gray), (0.01 * 255) ** 2
    np.testing.assert_allclose(got, (2 * mu * (mu + 20) + c1) / (mu**2 + (mu + 20) ** 2 + c1), rtol=1e-9)
    assert got.max() < 1.0


def test_ssim_decreases_as_noise_grows():
    scores = [ssim(IMAGE, _noisy(IMAGE, sigma)) for sigma in (2.0, 8.0, 20.0, 50.0)]
    assert all(later < earlier for earlier, later in zip(scores, scores[1:], strict=False))
    assert scores[0] > 0.99 and scores[-1] < 0.8


def test_noise_further_than_the_window_radius_does_not_reach_the_region():
    noisy = IMAGE.copy()
    noisy[:, :20] = _noisy(IMAGE, 40.0)[:, :20]
    far = np.zeros(IMAGE.shape[:2], dtype=bool)
    far[:, 25:] = True  # column 25's window spans columns 20..30: no noisy pixel
    assert ssim(IMAGE, noisy, far) == pytest.approx(1.0, abs=1e-12)
    near = np.zeros_like(far)
    near[:, 24] = True  # its window reaches column 19
    assert ssim(IMAGE, noisy, near) < 1.0 - 1e-6
    assert ssim(IMAGE, noisy) < 0.97


def test_ssim_is_invariant_to_the_data_range_scale():
    a, b = luma(IMAGE), luma(_noisy(IMAGE, 15.0))
    np.testing.assert_allclose(ssim_map(a / 255, b / 255, data_range=1.0), ssim_map(a, b), rtol=1e-9)


def test_ssim_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"one size: \(48, 64\) vs \(48, 63\)"):
        ssim(IMAGE, IMAGE[:, :63])
    with pytest.raises(ValueError, match="does not match"):
        ssim(IMAGE, IMAGE, np.ones((48, 63), dtype=bool))
    with pytest.raises(ValueError, match="region is empty"):
        ssim(IMAGE, IMAGE, np.zeros((48, 64), dtype=bool))
    with pytest.raises(ValueError, match="data_range must be positive"):
        ssim_map(IMAGE, IMAGE, data_range=0)


def test_region_crop_is_the_grown_box_with_the_outside_filled():
    image = RNG.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    mask = np.zeros((100, 120), dtype=bool)
    mask[10:30, 20:60] = True  # a 20 x 40 box
    mask[10, 20] = False
    crop = region_crop(image, mask)
    assert crop.shape == (22, 44, 3) and crop.dtype == np.uint8  # 5 %: 1 row and 2 columns each side
    window, inside = image[9:31, 18:62], mask[9:31, 18:62]
    np.testing.assert_array_equal(crop[inside], window[inside])
    np.testing.assert_array_equal(crop[~inside], np.tile(CLIP_MEAN_RGB, (int((~inside).sum()), 1)))
    assert not np.shares_memory(crop, image)
    exact = region_crop(image, mask, margin=0.0, fill=(0, 0, 0))
    assert exact.shape == (20, 40, 3)
    assert exact[0, 0].tolist() == [0, 0, 0] and exact[0, 1].tolist() == image[10, 21].tolist()


def test_region_crop_clips_at_the_image_border():
    image = RNG.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    mask = np.zeros((50, 40), dtype=bool)
    mask[40:50, 0:8] = True
    assert region_crop(image, mask, margin=0.5).shape == (15, 12, 3)  # rows 35..50, columns 0..12


def test_region_crop_fill_is_clips_mean_colour():
    mean = get_entry("clip_vit_b32").preprocess["mean"]
    assert tuple(round(255 * m) for m in mean) == CLIP_MEAN_RGB


def test_region_crop_errors():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="mask is empty"):
        region_crop(image, np.zeros((10, 10), dtype=bool))
    with pytest.raises(ValueError, match="does not match"):
        region_crop(image, np.ones((10, 9), dtype=bool))
    with pytest.raises(ValueError, match="RGB uint8"):
        region_crop(image.astype(np.float32), np.ones((10, 10), dtype=bool))
    with pytest.raises(ValueError, match="non-negative"):
        region_crop(image, np.ones((10, 10), dtype=bool), margin=-0.1)


def test_mask_iou_exact_values():
    left, top = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    left[:, :2] = True
    top[:2] = True
    assert mask_iou(left, top) == pytest.approx(1 / 3)  # 4 shared of 12
    assert mask_iou(left, left) == 1.0
    assert mask_iou(left, ~left) == 0.0
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert mask_iou(left, np.zeros((4, 4), dtype=bool)) == 0.0
    with pytest.raises(ValueError, match="different sizes"):
        mask_iou(left, np.zeros((4, 5), dtype=bool))
