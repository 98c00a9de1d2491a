"""BlazeFace short range (MediaPipe face detection, front camera model, 128×128).

A 5×5 stride-2 stem convolution and sixteen BlazeBlocks take the image down to a 16×16 map (after block 11,
88 channels) and an 8×8 map (96 channels); on each, two 1×1 SSD heads give per-cell anchor logits and box
regressions (2 anchors per 16×16 cell, 6 per 8×8 cell: 512 + 384 = 896). Convolutions pad as TensorFlow's
``SAME`` does (the extra pixel of a stride-2 window at the bottom and right).

Input N×3×128×128 RGB in [-1, 1]; ``forward(x) -> (regressors N×896×16, classificators N×896×1)``: per
SSD anchor a box (cx, cy, w, h) and six keypoints (eyes, nose tip, mouth, ear tragions) in 128-pixel
units relative to the anchor, and a logit. Anchors run 16×16 before 8×8, row by row, anchors of a cell
together, as in the file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .tf_ops import pad_same

# (output channels, stride) of each BlazeBlock; the 16×16 head reads the output of block 11.
BLOCKS = (
    (24, 1), (28, 1), (32, 2), (36, 1), (42, 1), (48, 2), (56, 1), (64, 1), (72, 1), (80, 1), (88, 1),
    (96, 2), (96, 1), (96, 1), (96, 1), (96, 1),
)  # fmt: skip
BLOCKS_AT_16X16 = 11
ANCHORS_16X16, ANCHORS_8X8 = 2, 6
BOX_VALUES = 16


class BlazeBlock(nn.Module):
    """Depthwise 3×3 then pointwise 1×1 convolution, added to the shortcut, then ReLU.

    The shortcut is the input, max-pooled 2×2 when the block strides and zero-padded with extra channels
    when it widens."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.stride > 1:
            shortcut = F.max_pool2d(pad_same(x, (2, 2), (2, 2), value=float("-inf")), 2)
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        stride = (self.stride, self.stride)
        return self.activation(shortcut + self.pointwise(self.depthwise(pad_same(x, (3, 3), stride))))

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """The block's nonlinearity, ReLU."""
        return F.relu(x)


def _anchors(head: torch.Tensor, values: int) -> torch.Tensor:
    """An N×(A·V)×H×W head output as N×(H·W·A)×V: cells row by row, a cell's anchors together."""
    return head.permute(0, 2, 3, 1).reshape(head.shape[0], -1, values)


class BlazeFaceShortRange(nn.Module):
    """MediaPipe's short-range face detector."""

    output_names = ("regressors", "classificators")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 5, 2)
        widths = [24] + [out for out, _ in BLOCKS]
        self.blocks = nn.ModuleList(BlazeBlock(widths[i], out, stride) for i, (out, stride) in enumerate(BLOCKS))
        fine, coarse = widths[BLOCKS_AT_16X16], widths[-1]
        self.classifier_16x16 = nn.Conv2d(fine, ANCHORS_16X16, 1)
        self.regressor_16x16 = nn.Conv2d(fine, ANCHORS_16X16 * BOX_VALUES, 1)
        self.classifier_8x8 = nn.Conv2d(coarse, ANCHORS_8X8, 1)
        self.regressor_8x8 = nn.Conv2d(coarse, ANCHORS_8X8 * BOX_VALUES, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(pad_same(x, (5, 5), (2, 2))))
        for block in self.blocks[:BLOCKS_AT_16X16]:
            x = block(x)
        fine = x
        for block in self.blocks[BLOCKS_AT_16X16:]:
            x = block(x)
        regressors = torch.cat(
            [_anchors(self.regressor_16x16(fine), BOX_VALUES), _anchors(self.regressor_8x8(x), BOX_VALUES)], 1
        )
        classificators = torch.cat([_anchors(self.classifier_16x16(fine), 1), _anchors(self.classifier_8x8(x), 1)], 1)
        return regressors, classificators
