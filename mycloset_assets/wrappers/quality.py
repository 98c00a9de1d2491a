"""Learned quality measures for the quality report: LPIPS distance over a region, CLIP image similarity.

- ``LpipsDistance`` (richzhang/PerceptualSimilarity ``lpips.LPIPS(spatial=True)``): both images in [-1, 1]
  (``x / 127.5 - 1``, the reference's ``im2tensor``) through the module's scaling layer and trunk; per tap the
  channel-normalised features' squared difference weighted by the tap's lin layer, bilinearly upsampled
  (``align_corners=False``) to the image size; the taps' maps summed and averaged over the region. The average of
  the upsampled maps is not exactly the reference's non-spatial value (``module(in0, in1)``, which averages each
  tap at its own resolution); a region needs the spatial form, and the whole image uses it too so that an
  all-True region and ``None`` agree.
- ``ClipSimilarity`` (openai/CLIP ``clip.py _transform``): PIL bicubic resize of the shorter side to 224, centre
  crop 224, ``/ 255``, the entry's mean/std; ``encode_image`` features scaled to unit length, compared by cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..checkpoints import LoadedModel
from ..models.lpips import normalize_tensor
from .base import check_family, check_images


def _min_side(trunk: nn.Module, limit: int = 1024) -> int:
    """The smallest square input every convolution and pooling of ``trunk`` (in module order) accepts."""
    layers = [m for m in trunk.modules() if isinstance(m, nn.Conv2d | nn.MaxPool2d)]

    def fits(side: int) -> bool:
        for layer in layers:
            kernel, stride, padding, dilation = (
                v if isinstance(v, int) else v[0]
                for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            )
            side = (side + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
            if side < 1:
                return False
        return True

    return next(side for side in range(1, limit) if fits(side))


def _region_weights(region: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A bool H x W region as float64 weights, checked against the images' H x W and for emptiness."""
    selected = np.asarray(region, dtype=bool)
    if selected.shape != shape:
        raise ValueError(f"region of shape {selected.shape} does not match the images' {shape}")
    if not selected.any():
        raise ValueError("the region is empty: pass a mask with at least one True pixel, or None for the image")
    return selected.astype(np.float64)


class LpipsDistance:
    """LPIPS distance between two RGB uint8 images of one size, over a region or the whole image.

    Images whose longer side exceeds ``max_side`` are downscaled (area interpolation) first, and the region with
    them: each downscaled pixel then counts by the fraction of it the region covers. Lower is more similar; 0 for
    identical images.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        check_family(loaded, ["lpips"], type(self).__name__)
        self.loaded = loaded
        self.module = loaded.module
        self.min_side = _min_side(self.module.net)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def _prepare(self, a: np.ndarray, b: np.ndarray, max_side: int | None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Both images, downscaled if needed, as a 2 x 3 x h x w batch in [-1, 1]; and (h, w)."""
        check_images([a, b])
        if a.shape != b.shape:
            raise ValueError(f"LPIPS compares images of one size: {a.shape} vs {b.shape}; resize one first")
        original = height, width = a.shape[:2]
        if max_side is not None and max(height, width) > max_side:
            scale = max_side / max(height, width)
            height, width = max(1, round(height * scale)), max(1, round(width * scale))
            a, b = (cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA) for x in (a, b))
        if min(height, width) < self.min_side:
            raise ValueError(
                f"LPIPS-{self.module.pnet_type} needs at least {self.min_side} px on each side, got {height} x {width}"
                + (f" after downscaling to max_side={max_side}" if (height, width) != original else "")
                + "; compare larger images or raise max_side"
            )
        batch = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2)
        batch = batch.to(device=self.device, dtype=self.loaded.dtype) / 127.5 - 1
        return batch, (height, width)

    def tap_maps(self, a: np.ndarray, b: np.ndarray, max_side: int | None = 512) -> np.ndarray:
        """Taps x h x w float64: each tap's LPIPS term at every pixel of the (downscaled) images."""
        batch, size = self._prepare(a, b, max_side)
        with torch.inference_mode():
            features = self.module.net(self.module.scaling_layer(batch))
            maps = []
            for lin, tap in zip(self.module.lins, features, strict=True):
                diff = (normalize_tensor(tap[:1]) - normalize_tensor(tap[1:])) ** 2
                maps.append(F.interpolate(lin(diff), size=size, mode="bilinear", align_corners=False)[0, 0])
            return torch.stack(maps).double().cpu().numpy()

    def per_layer(
        self, a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None, max_side: int | None = 512
    ) -> list[float]:
        """Each tap's term averaged over ``region`` (bool H x W, True = pixels to compare) or the whole image."""
        check_images([a, b])
        weights = None if region is None else _region_weights(region, a.shape[:2])
        maps = self.tap_maps(a, b, max_side)
        if weights is None:
            return [float(m.mean()) for m in maps]
        if weights.shape != maps.shape[1:]:
            weights = cv2.resize(weights, (maps.shape[2], maps.shape[1]), interpolation=cv2.INTER_AREA)
        return [float((m * weights).sum() / weights.sum()) for m in maps]

    def __call__(
        self, a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None, max_side: int | None = 512
    ) -> float:
        """The LPIPS distance over ``region`` (or the whole image): the sum of the taps' terms."""
        return float(sum(self.per_layer(a, b, region, max_side)))


class ClipSimilarity:
    """CLIP image embeddings (unit vectors) and the cosine similarity of two images, preprocessed as CLIP does."""

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 16) -> None:
        check_family(loaded, ["clip"], type(self).__name__)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.loaded = loaded
        self.module = loaded.module
        self.batch_size = batch_size
        preprocess = loaded.entry.preprocess
        self.size = int(preprocess["input_size"][0])
        self.mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(preprocess["std"], dtype=torch.float32).view(3, 1, 1)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """One RGB uint8 image -> the 3 x 224 x 224 float32 input of ``_transform`` (resize, crop, normalise)."""
        height, width = image.shape[:2]
        longer = int(self.size * max(height, width) / min(height, width))
        size = (self.size, longer) if width <= height else (longer, self.size)
        resized = Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BICUBIC)
        top, left = int(round((resized.height - self.size) / 2.0)), int(round((resized.width - self.size) / 2.0))
        crop = np.asarray(resized)[top : top + self.size, left : left + self.size]
        pixels = torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255
        return (pixels - self.mean) / self.std

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """N x 512 float64 unit-length image embeddings of RGB uint8 images of any size (one image: 1 x 512)."""
        batch = [images] if isinstance(images, np.ndarray) else list(images)
        if not batch:
            raise ValueError("no images to embed: pass one RGB uint8 image or a non-empty list of them")
        check_images(batch)
        features = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                inputs = torch.stack([self.prepare(image) for image in batch[start : start + self.batch_size]])
                inputs = inputs.to(device=self.device, dtype=self.loaded.dtype)
                features.append(self.module.encode_image(inputs).double().cpu())
        embeddings = torch.cat(features)
        return (embeddings / embeddings.norm(dim=1, keepdim=True)).numpy()

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two images' CLIP embeddings, in [-1, 1]."""
        first, second = self.embed([a, b])
        return float(np.clip(first @ second, -1.0, 1.0))
