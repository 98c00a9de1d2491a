"""MediaPipe selfie segmentation (general, 256×256): a MobileNetV3-style encoder-decoder person mask.

A 3×3 stride-2 stem (hard-swish) and eight inverted residual blocks (some with squeeze-and-excitation,
ReLU early and hard-swish late, as MobileNetV3-small) encode the image down to 16×16; an LR-ASPP head (a
1×1 branch gated by a globally pooled sigmoid branch) feeds a decoder that goes back up through 32×32,
64×64 and 128×128, each stage upsampling ×2 (bilinear, half-pixel), adding the encoder's map of that size
gated by a channel attention, and refining with a 1×1 and a residual depthwise 3×3; a 2×2 stride-2
transposed convolution and a sigmoid give the mask. Convolutions pad as TensorFlow's ``SAME`` does.

Input N×3×256×256 RGB in [0, 1]; ``forward(x) -> (mask N×1×256×256,)``, the person probability.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .tf_ops import pad_same

# (input, expanded, output channels, depthwise kernel, stride, squeeze-excitation channels (0: none),
# hard-swish (else ReLU)) of the encoder's blocks.
ENCODER = (
    (16, 16, 16, 3, 2, 8, False), (16, 72, 24, 3, 2, 0, False), (24, 88, 24, 3, 1, 0, False),
    (24, 96, 32, 5, 2, 24, True), (32, 128, 32, 5, 1, 32, True), (32, 128, 32, 5, 1, 32, True),
    (32, 96, 32, 5, 1, 24, True), (32, 96, 32, 5, 1, 24, True),
)  # fmt: skip
HEAD_CHANNELS = 128
# (input, output channels) of the decoder's stages, coarse to fine, and the encoder map each one adds, as an
# index into (stem, block 0, block 1, ...): block 2 (32×32), block 0 (64×64), the stem (128×128).
DECODER = ((HEAD_CHANNELS, 24), (24, 16), (16, 16))
SKIPS = (3, 1, 0)


def _conv_same(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(pad_same(x, conv.kernel_size, conv.stride))  # type: ignore[arg-type]


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, x.shape[2:])


class SqueezeExcitation(nn.Module):
    """Channel attention: global average → 1×1 (ReLU) → 1×1 (sigmoid), multiplying the input."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(F.relu(self.reduce(_global_pool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    """MobileNetV3's block: expand 1×1 → depthwise k×k (both ReLU or hard-swish) → optional
    squeeze-excitation → project 1×1 (linear), plus the input when the shape is kept."""

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, kernel: int, stride: int, se: int, hard_swish: bool
    ) -> None:
        super().__init__()
        self.activation: Callable[[torch.Tensor], torch.Tensor] = F.hardswish if hard_swish else F.relu
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride, groups=hidden)
        self.se = SqueezeExcitation(hidden, se) if se else None
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation(_conv_same(self.depthwise, self.activation(self.expand(x))))
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return x + h if self.residual else h


class LRASPP(nn.Module):
    """Lite reduced atrous spatial pyramid pooling: a 1×1 branch (ReLU) times a sigmoid gate computed by a
    1×1 convolution of the globally pooled input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(in_channels, out_channels, 1)
        self.gate = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x)) * torch.sigmoid(self.gate(_global_pool(x)))


class DecoderStage(nn.Module):
    """Upsample ×2 to the skip's size and narrow by 1×1 (``up``); the skip, gated by a channel attention of
    ``skip + up``, plus ``up``; then 1×1 (ReLU) and a residual depthwise 3×3 (ReLU)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, channels, 1)
        self.attention = SqueezeExcitation(channels, channels)
        self.refine = nn.Conv2d(channels, channels, 1)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.project(F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False))
        x = F.relu(self.refine(skip * self.attention.gate(skip + up) + up))
        return x + F.relu(self.depthwise(x))


class SelfieSegmentation(nn.Module):
    """MediaPipe's general selfie-segmentation network."""

    output_names = ("activation_10",)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2)
        self.encoder = nn.ModuleList(InvertedResidual(*spec) for spec in ENCODER)
        self.head = LRASPP(ENCODER[-1][2], HEAD_CHANNELS)
        self.decoder = nn.ModuleList(DecoderStage(*spec) for spec in DECODER)
        self.segment = nn.ConvTranspose2d(DECODER[-1][1], 1, 2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        x = F.hardswish(_conv_same(self.stem, x))
        maps = [x]
        for block in self.encoder:
            x = block(x)
            maps.append(x)
        x = self.head(x)
        for stage, index in zip(self.decoder, SKIPS, strict=True):
            x = stage(x, maps[index])
        return (torch.sigmoid(self.segment(x)),)
