"""TensorFlow's ``SAME`` padding for torch N×C×H×W tensors: output size ``ceil(size / stride)``, and when
the padding is odd the extra pixel goes at the end (bottom, right), unlike torch's symmetric ``padding``."""

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
