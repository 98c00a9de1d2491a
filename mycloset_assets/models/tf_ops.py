"""TensorFlow operators whose meaning differs from torch's nearest function, on N×C×H×W tensors.

``SAME`` padding gives output size ``ceil(size / stride)`` and, when the padding is odd, puts the extra
pixel at the end (bottom, right), unlike torch's symmetric ``padding``; depth-to-space orders channels
block position first, unlike ``pixel_shuffle``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one spatial axis under TensorFlow's ``SAME`` rule."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    value: float = 0.0,
) -> torch.Tensor:
    """``x`` padded with ``value`` so that a VALID window of ``kernel``/``stride``/``dilation`` acts as ``SAME``."""
    top, bottom = same_pads(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_pads(x.shape[3], kernel[1], stride[1], dilation[1])
    if top or bottom or left or right:
        return F.pad(x, (left, right, top, bottom), value=value)
    return x


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TensorFlow's DEPTH_TO_SPACE: channel ``(i * block + j) * C + c`` goes to pixel offset (i, j) of channel c."""
    n, c, h, w = x.shape
    out = x.reshape(n, block, block, c // block**2, h, w).permute(0, 3, 4, 1, 5, 2)
    return out.reshape(n, c // block**2, h * block, w * block)
