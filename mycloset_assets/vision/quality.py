"""Image and mask agreement measures for the quality report: mask IoU, SSIM, and masked region crops.

SSIM follows Wang, Bovik, Sheikh and Simoncelli (IEEE TIP 2004) with these choices, stated because SSIM
implementations disagree on them:

- colour images are compared on their luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 weights,
  full range, no rounding, as PIL's ``convert("L")`` before rounding): the paper defines SSIM on one channel
  and luma is where the eye sees structure;
- local statistics come from an 11 x 11 Gaussian window with sigma 1.5 (the paper's), normalised to sum 1;
- variances and covariance are the weighted population moments (``E[x^2] - E[x]^2``, no sample correction);
- ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2`` with ``L = data_range`` (255 for uint8 images);
- borders are reflected (``d c b a | a b c d``) so the map has the image's size and a region can touch the
  edge; the paper's reference code instead drops a 5 px border and downsamples large images, which here
  would move the map away from the pixels a region names.

These are the settings of scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` map, on the luma defined above.
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
BT601_LUMA = (0.299, 0.587, 0.114)

# CLIP's per-channel mean (clip/clip.py _transform) in 0..255, rounded: after CLIP's normalisation these pixels
# are ~0 in every channel, so a region crop's fill carries no colour or texture of its own into an embedding.
CLIP_MEAN_RGB = (123, 117, 104)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one size; 1.0 when both are empty (they agree)."""
    first, second = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"masks of different sizes cannot be compared: {first.shape} vs {second.shape}")
    union = int(np.count_nonzero(first | second))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(first & second)) / union


def luma(image: np.ndarray) -> np.ndarray:
    """H x W float64 BT.601 luma of an RGB H x W x 3 image; a 2-D array is returned as float64 unchanged."""
    array = np.asarray(image)
    if array.ndim == 2:
        return array.astype(np.float64)
    if array.ndim == 3 and array.shape[2] == 3:
        return array.astype(np.float64) @ np.asarray(BT601_LUMA)
    raise ValueError(f"SSIM compares RGB H x W x 3 images or 2-D arrays, got shape {array.shape}")


def _window_mean(x: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean of a float64 2-D array, borders reflected."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)
    return cv2.sepFilter2D(x, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """H x W float64 map of local SSIM between two images (or 2-D arrays) of one size (module docstring)."""
    x, y = luma(a), luma(b)
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs images of one size: {x.shape} vs {y.shape}; resize one to the other first")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive (255 for uint8 images), got {data_range}")
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _window_mean(x), _window_mean(y)
    var_x = _window_mean(x * x) - mu_x * mu_x
    var_y = _window_mean(y * y) - mu_y * mu_y
    cov = _window_mean(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None, data_range: float = 255.0) -> float:
    """Mean SSIM over ``region`` (bool H x W, True = pixels to compare), or over the whole image when None."""
    values = ssim_map(a, b, data_range)
    if region is None:
        return float(values.mean())
    selected = np.asarray(region, dtype=bool)
    if selected.shape != values.shape:
        raise ValueError(f"region of shape {selected.shape} does not match the images' {values.shape}")
    if not selected.any():
        raise ValueError("the region is empty: pass a mask with at least one True pixel, or None for the image")
    return float(values[selected].mean())


def region_crop(
    image: np.ndarray, mask: np.ndarray, margin: float = 0.05, fill: tuple[int, int, int] = CLIP_MEAN_RGB
) -> np.ndarray:
    """The mask's bounding box, grown by ``margin`` of its height and width (clipped to the image), with every
    pixel outside the mask set to ``fill``; a new H' x W' x 3 uint8 array.

    The default fill is CLIP's mean colour, so that an embedding of the crop sees the region and nothing
    that could carry garment or background information.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"region_crop needs an RGB uint8 H x W x 3 image, got {described}")
    selected = np.asarray(mask, dtype=bool)
    if selected.shape != image.shape[:2]:
        raise ValueError(f"mask of shape {selected.shape} does not match the image's {image.shape[:2]}")
    if margin < 0:
        raise ValueError(f"margin is a non-negative fraction of the box's size, got {margin}")
    rows, cols = np.flatnonzero(selected.any(axis=1)), np.flatnonzero(selected.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty: there is no region to crop")
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad_y, pad_x = round(margin * (bottom - top)), round(margin * (right - left))
    top, bottom = max(0, top - pad_y), min(image.shape[0], bottom + pad_y)
    left, right = max(0, left - pad_x), min(image.shape[1], right + pad_x)
    crop = image[top:bottom, left:right].copy()
    crop[~selected[top:bottom, left:right]] = np.asarray(fill, dtype=np.uint8)
    return crop
