"""Compositing of try-on outputs, the glue between the try-on stages, and the way back to the photo.

- CP-VTON's TOM (sergeywong/cp-vton@fbaf333 ``test.py``): the raw 4 channels split into the rendered person
  ``tanh(raw[:3])`` and the composition mask ``sigmoid(raw[3:])``; the try-on is
  ``warped * m + rendered * (1 - m)``.
- VITON-HD (shadow2496/VITON-HD@02afa4b ``test.py``): the segmentation generator's probabilities are
  upsampled bilinearly to the image size, blurred (15 x 15 Gaussian, sigma 3, zero padding, as
  torchgeometry's ``GaussianBlur``) and arg-maxed; the misalignment mask is ``max(upper - warped mask, 0)``
  and ``seg_div`` moves it out of the upper channel into an 8th one; the seg generator's noise channel is
  ``utils.gen_noise``.
- Images leave the networks as the references save them: ``((x + 1) / 2 * 255)`` clamped and truncated to
  uint8.
- ``Letterbox`` maps a photo of any size into a network frame (centred padding to the frame's aspect
  ratio, then resizing) and results back to the photo's size; ``paste_back`` blends a result into the
  photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SEG_BLUR_SIZE = 15  # test.py: tgm.image.GaussianBlur((15, 15), (3, 3))
SEG_BLUR_SIGMA = 3.0
ALIAS_UPPER_CHANNEL = 2  # 'upper' in the 7 ALIAS groups
NOISE_THRESHOLD = 254.5 / 255.0  # gen_noise: cv2.randn(uint8, 0, 255) saturates to 255 from 254.5 on


def to_uint8_image(values: np.ndarray) -> np.ndarray:
    """C x H x W (C = 3 or 1) or H x W float in [-1, 1] -> H x W x 3 (or H x W) uint8, as the references save.

    ``(x + 1) * 0.5 * 255``, clamped to [0, 255] and truncated (``astype(uint8)``), in float32.
    """
    values = np.asarray(values, dtype=np.float32)
    scaled = np.clip((values + np.float32(1)) * np.float32(0.5) * np.float32(255), 0, 255).astype(np.uint8)
    if scaled.ndim == 3:
        scaled = scaled[0] if scaled.shape[0] == 1 else scaled.transpose(1, 2, 0)
    return np.ascontiguousarray(scaled)


def tom_outputs(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TOM's raw N x 4 x H x W -> (rendered person N x 3 x H x W in [-1, 1], composition mask N x 1 x H x W)."""
    if raw.dim() != 4 or raw.shape[1] != 4:
        raise ValueError(f"TOM output must be N x 4 x H x W, got {tuple(raw.shape)}")
    rendered, mask = torch.split(raw, 3, dim=1)
    return torch.tanh(rendered), torch.sigmoid(mask)


def composite(warped: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CP-VTON's try-on: ``warped * mask + rendered * (1 - mask)`` (the mask broadcasts over channels)."""
    return warped * mask + rendered * (1 - mask)


def gaussian_kernel(size: int = SEG_BLUR_SIZE, sigma: float = SEG_BLUR_SIGMA) -> torch.Tensor:
    """torchgeometry's 1-D kernel: ``exp(-(i - size // 2)^2 / (2 sigma^2))`` normalised to sum 1, in float32."""
    if size <= 0 or size % 2 == 0:
        raise ValueError(f"the blur size must be odd and positive, got {size}")
    exponents = torch.tensor([-((i - size // 2) ** 2) / float(2 * sigma**2) for i in range(size)])
    kernel = torch.exp(exponents)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, size: int = SEG_BLUR_SIZE, sigma: float = SEG_BLUR_SIGMA) -> torch.Tensor:
    """Per-channel Gaussian blur of N x C x H x W with zero padding ``size // 2``, size kept.

    torchgeometry's ``GaussianBlur`` convolves once with the outer product of the 1-D kernel; the two 1-D
    passes here compute the same sums (equal to float32 rounding, about 1e-7) some 20 times faster on a CPU.
    The arg-max that follows can differ only between classes tied to that precision, as it does between the
    reference's GPU run and any CPU one.
    """
    channels = images.shape[1]
    kernel = gaussian_kernel(size, sigma).to(images.device, images.dtype)
    pad = size // 2
    rows = F.conv2d(images, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), padding=(0, pad), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), padding=(pad, 0), groups=channels)


def seg_labels(probabilities: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """VITON-HD's parse prediction: N x 13 x h x w probabilities -> N x H x W class ids (int64).

    Bilinear upsampling to (H, W) (``align_corners=False``), the 15 x 15 sigma-3 blur, arg-max over classes.
    """
    upsampled = F.interpolate(probabilities, size=(height, width), mode="bilinear", align_corners=False)
    return gaussian_blur(upsampled).argmax(dim=1)


def misalignment_mask(upper: torch.Tensor, warped_mask: torch.Tensor) -> torch.Tensor:
    """Where the parsing expects the garment and the warped garment is not: ``max(upper - warped_mask, 0)``."""
    return torch.clamp(upper - warped_mask, min=0.0)


def alias_seg_div(seg: torch.Tensor, misalign: torch.Tensor, upper: int = ALIAS_UPPER_CHANNEL) -> torch.Tensor:
    """ALIAS's ``seg_div``: N x 8 = cat(seg, misalign) with the misalignment taken out of the upper channel."""
    seg_div = torch.cat((seg, misalign), dim=1)
    seg_div[:, upper : upper + 1] -= misalign
    return seg_div


def vitonhd_seg_noise(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """The seg generator's noise channel, distributed as ``utils.gen_noise``: 1 with p = P(N(0,1) >= 0.998).

    The reference draws ``cv2.randn`` into uint8 (saturating) and keeps ``value // 255``: a pixel is 1 when
    its normal draw times 255 reaches 254.5. The draws here come from torch (``generator``), not OpenCV.
    """
    return (torch.randn(shape, generator=generator) >= NOISE_THRESHOLD).float()


def _resize(array: np.ndarray, size: tuple[int, int], interpolation: int | None = None) -> np.ndarray:
    """cv2 resize to (height, width); area averaging to shrink, bilinear to enlarge, unless told."""
    height, width = size
    if array.shape[:2] == (height, width):
        return array.copy()
    if interpolation is None:
        shrinking = height <= array.shape[0] and width <= array.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(array, (width, height), interpolation=interpolation)


@dataclass(frozen=True)
class Letterbox:
    """A photo placed in a network frame of another size and aspect ratio, and the way back.

    Into the frame: pad the photo (centred; ``top``/``left`` pixels before it) to ``padded_size``, the
    frame's aspect ratio, then resize to ``frame_size``. Back: resize to ``padded_size``, crop the photo.
    Sizes are (height, width). Points follow pixel centres: ``x_frame = (x + left + 0.5) * sx - 0.5`` with
    ``sx = frame_width / padded_width`` (and the same for y).
    """

    photo_size: tuple[int, int]
    frame_size: tuple[int, int]
    padded_size: tuple[int, int]
    top: int
    left: int

    @classmethod
    def fit(cls, photo_size: tuple[int, int], frame_size: tuple[int, int]) -> Letterbox:
        """The smallest centred padding that gives the photo the frame's aspect ratio."""
        height, width = photo_size
        frame_height, frame_width = frame_size
        if min(height, width, frame_height, frame_width) <= 0:
            raise ValueError(f"sizes must be positive, got photo {photo_size} and frame {frame_size}")
        if width * frame_height > frame_width * height:
            padded = (max(height, round(width * frame_height / frame_width)), width)
        else:
            padded = (height, max(width, round(height * frame_width / frame_height)))
        return cls(
            photo_size=(height, width),
            frame_size=(frame_height, frame_width),
            padded_size=padded,
            top=(padded[0] - height) // 2,
            left=(padded[1] - width) // 2,
        )

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): frame pixels per photo pixel."""
        return self.frame_size[0] / self.padded_size[0], self.frame_size[1] / self.padded_size[1]

    def _check(self, array: np.ndarray) -> None:
        if array.shape[:2] != self.photo_size:
            raise ValueError(f"expected an array of the photo's size {self.photo_size}, got {array.shape[:2]}")

    def _pad(self, array: np.ndarray, fill: int | float) -> np.ndarray:
        bottom = self.padded_size[0] - self.photo_size[0] - self.top
        right = self.padded_size[1] - self.photo_size[1] - self.left
        widths = ((self.top, bottom), (self.left, right)) + ((0, 0),) * (array.ndim - 2)
        return np.pad(array, widths, mode="constant", constant_values=fill)

    def image_to_frame(self, image: np.ndarray, fill: int = 255) -> np.ndarray:
        """RGB uint8 photo -> frame (padding ``fill``, white by default, as the references' backgrounds)."""
        self._check(image)
        return _resize(self._pad(image, fill), self.frame_size)

    def labels_to_frame(self, labels: np.ndarray, fill: int = 0) -> np.ndarray:
        """H x W integer labels (0..255) -> frame, nearest neighbour (pixel-centre exact), as uint8."""
        self._check(labels)
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"labels must lie in 0..255, got {labels.min()}..{labels.max()}")
        padded = self._pad(labels.astype(np.uint8), fill)
        return _resize(padded, self.frame_size, cv2.INTER_NEAREST_EXACT)

    def mask_to_frame(self, mask: np.ndarray) -> np.ndarray:
        """H x W bool -> frame bool (nearest neighbour; the padding is False)."""
        return self.labels_to_frame(mask.astype(np.uint8)) > 0

    def points_to_frame(self, points: np.ndarray) -> np.ndarray:
        """K x 2|3 (x, y[, score]) photo pixels -> frame pixels; points scoring <= 0 stay (-1, -1, 0)."""
        points = np.array(points, dtype=np.float64)
        sy, sx = self.scale
        mapped = points.copy()
        mapped[:, 0] = (points[:, 0] + self.left + 0.5) * sx - 0.5
        mapped[:, 1] = (points[:, 1] + self.top + 0.5) * sy - 0.5
        if points.shape[1] == 3:
            mapped[points[:, 2] <= 0] = (-1.0, -1.0, 0.0)
        return mapped

    def _unframe(self, array: np.ndarray, interpolation: int | None = None) -> np.ndarray:
        if array.shape[:2] != self.frame_size:
            raise ValueError(f"expected an array of the frame's size {self.frame_size}, got {array.shape[:2]}")
        padded = _resize(array, self.padded_size, interpolation)
        height, width = self.photo_size
        return np.ascontiguousarray(padded[self.top : self.top + height, self.left : self.left + width])

    def image_to_photo(self, image: np.ndarray) -> np.ndarray:
        """Frame-size uint8 image (H x W x 3) -> the photo's size, padding cropped off."""
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {image.dtype}")
        return self._unframe(image)

    def labels_to_photo(self, labels: np.ndarray) -> np.ndarray:
        """Frame-size labels (0..255) -> the photo's size, nearest neighbour (pixel-centre exact), as uint8."""
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"labels must lie in 0..255, got {labels.min()}..{labels.max()}")
        return self._unframe(labels.astype(np.uint8), cv2.INTER_NEAREST_EXACT)

    def map_to_photo(self, values: np.ndarray) -> np.ndarray:
        """Frame-size float map (H x W, e.g. a soft mask) -> the photo's size (float32, bilinear / area)."""
        return self._unframe(np.asarray(values, dtype=np.float32))


def paste_back(photo: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``generated * alpha + photo * (1 - alpha)`` rounded to uint8: a result blended into the photo.

    ``photo`` and ``generated`` RGB uint8 H x W x 3, ``alpha`` H x W in [0, 1] (1 = take the result).
    """
    if photo.shape != generated.shape or photo.dtype != np.uint8 or generated.dtype != np.uint8:
        raise ValueError(f"photo {photo.dtype} {photo.shape} and result {generated.dtype} {generated.shape} differ")
    if alpha.shape != photo.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} must be the photo's height and width {photo.shape[:2]}")
    weight = np.clip(alpha.astype(np.float32), 0, 1)[..., None]
    blended = generated.astype(np.float32) * weight + photo.astype(np.float32) * (1 - weight)
    return np.rint(blended).astype(np.uint8)
