"""MediaPipe face mesh (face landmark, 468 points, 192×192).

A 3×3 stride-2 stem and fourteen residual blocks (depthwise 3×3 → pointwise 1×1, added to the shortcut,
PReLU; a strided block's shortcut is max-pooled 2×2 and zero-padded in channels when it widens) take the
face crop down to a 6×6 map of 128 channels. Two heads branch from it: each goes down to 3×3 with residual
blocks, narrows to 32 channels (1×1, PReLU), refines with one more residual block and ends in a 3×3
convolution over the whole 3×3 map: 1404 landmark values, or the face-presence logit. Strided windows pad
as TensorFlow's ``SAME`` does (the extra pixel at the bottom and right).

Input N×3×192×192 RGB in [0, 1]; ``forward(x) -> (landmarks N×1404×1×1, face_flag N×1×1×1)``: 468 × (x, y, z)
in 192-pixel units and the face-presence logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mediapipe_blazeface import BlazeBlock
from .tf_ops import pad_same

# (output channels, stride) of the trunk's residual blocks and of the two heads' blocks before narrowing.
TRUNK = (
    (16, 1), (16, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1),
    (128, 2), (128, 1), (128, 1),
)  # fmt: skip
LANDMARK_BLOCKS = ((128, 2), (128, 1), (128, 1))
FACE_FLAG_BLOCKS = ((128, 2),)
STEM_CHANNELS, HEAD_CHANNELS = 16, 32
LANDMARK_VALUES = 468 * 3


class PReLU(nn.Module):
    """PReLU with one slope per channel, held C×1×1 as the file stores it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.empty(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.alpha.reshape(-1))


class ResidualBlock(BlazeBlock):
    """BlazeFace's block (depthwise 3×3 → pointwise 1×1, added to the max-pooled, zero-padded shortcut) with
    a per-channel PReLU in place of its ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.prelu = PReLU(out_channels)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x)


def _blocks(in_channels: int, specs: tuple[tuple[int, int], ...]) -> nn.ModuleList:
    widths = [in_channels] + [out for out, _ in specs]
    return nn.ModuleList(ResidualBlock(widths[i], out, stride) for i, (out, stride) in enumerate(specs))


class Head(nn.Module):
    """Residual blocks down to 3×3, a 1×1 narrowing (PReLU), one residual block, a 3×3 VALID convolution."""

    def __init__(self, in_channels: int, blocks: tuple[tuple[int, int], ...], values: int) -> None:
        super().__init__()
        self.blocks = _blocks(in_channels, blocks)
        self.narrow = nn.Conv2d(blocks[-1][0], HEAD_CHANNELS, 1)
        self.narrow_prelu = PReLU(HEAD_CHANNELS)
        self.refine = ResidualBlock(HEAD_CHANNELS, HEAD_CHANNELS)
        self.out = nn.Conv2d(HEAD_CHANNELS, values, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.out(self.refine(self.narrow_prelu(self.narrow(x))))


class FaceMesh(nn.Module):
    """MediaPipe's face landmark network."""

    output_names = ("conv2d_21", "conv2d_31")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2)
        self.stem_prelu = PReLU(STEM_CHANNELS)
        self.trunk = _blocks(STEM_CHANNELS, TRUNK)
        self.landmarks = Head(TRUNK[-1][0], LANDMARK_BLOCKS, LANDMARK_VALUES)
        self.face_flag = Head(TRUNK[-1][0], FACE_FLAG_BLOCKS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem_prelu(self.stem(pad_same(x, (3, 3), (2, 2))))
        for block in self.trunk:
            x = block(x)
        return self.landmarks(x), self.face_flag(x)
