"""BlazePose (MediaPipe Pose, legacy solution): the person detector and the GHUM full landmark network.

The detector (224×224, input RGB in [-1, 1]) is written out as modules: a 3×3 stride-2 stem and fifteen
MobileNetV2 inverted residual blocks encode the image down to 7×7; a feature-pyramid decoder brings it back
to 14×14 and 28×28 (bilinear upsampling, lateral maps from the encoder, BlazeBlocks); on each of the three
maps two SSD heads (depth-to-space, depthwise 3×3 stride 2, 1×1) give per-anchor logits and regressions
(2 anchors per 28×28 and 14×14 cell, 6 per 7×7 cell: 1568 + 392 + 294 = 2254). Every stride-2 window pads
one pixel per side (two for 5×5), as the file's explicit PAD operators do.

The landmark network (256×256, input RGB in [0, 1]) shares the encoder's design: a stem and fifteen
inverted residual blocks down to 8×8, with skip maps taken at 128×128, 64×64, 32×32 and 16×16 (depthwise 3×3
→ 1×1, both ReLU6). A heatmap decoder upsamples the 8×8 map back to 64×64, adding the skips (heatmaps come
from it by a 1×1 convolution); the segmentation decoder continues to 128×128 and 256×256 with BlazeBlocks;
the regression branch takes the 8×8 map through BlazeBlocks down to 2×2, where 2×2 convolutions give the
landmarks, the world landmarks and the pose flag.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .tf_ops import depth_to_space, pad_same

# (input channels, expanded channels, output channels, depthwise kernel, stride) of the encoder's blocks;
# the decoder's laterals read the outputs of blocks 4 (28×28) and 10 (14×14).
ENCODER = (
    (24, 24, 16, 3, 1), (16, 64, 24, 3, 2), (24, 144, 24, 3, 1), (24, 144, 40, 5, 2), (40, 240, 40, 5, 1),
    (40, 240, 80, 3, 2), (80, 480, 80, 3, 1), (80, 480, 80, 3, 1), (80, 480, 112, 5, 1), (112, 672, 112, 5, 1),
    (112, 672, 112, 5, 1), (112, 672, 192, 5, 2), (192, 1152, 192, 5, 1), (192, 1152, 192, 5, 1),
    (192, 1152, 192, 5, 1),
)  # fmt: skip
LATERAL_28X28, LATERAL_14X14 = 4, 10
BOX_VALUES = 12
# The landmark network's encoder, laid out as ENCODER; (encoder block read, channels) of its skip maps at
# 128×128, 64×64, 32×32 and 16×16; the strides of its regression branch's BlazeBlocks (8×8 to 4×4 to 2×2).
LANDMARK_ENCODER = (
    (24, 24, 16, 3, 1), (16, 64, 24, 3, 2), (24, 144, 24, 3, 1), (24, 144, 32, 5, 2), (32, 192, 32, 5, 1),
    (32, 192, 64, 3, 2), (64, 384, 64, 3, 1), (64, 384, 64, 3, 1), (64, 384, 88, 5, 1), (88, 528, 88, 5, 1),
    (88, 528, 88, 5, 1), (88, 528, 144, 5, 2), (144, 864, 144, 5, 1), (144, 864, 144, 5, 1),
    (144, 864, 144, 5, 1),
)  # fmt: skip
LANDMARK_SKIPS = ((0, 8), (2, 48), (4, 48), (10, 48))
REGRESSION_STRIDES = (2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1)
LANDMARKS = 39


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1×1 (ReLU6) → depthwise k×k (ReLU6) → project 1×1 (linear), plus the
    input when the shape is kept. Without expansion the depthwise convolution reads the input directly."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(in_channels, hidden, 1) if hidden != in_channels else None
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden)
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(F.relu6(self.depthwise(h)))
        return x + h if self.residual else h


class Lateral(nn.Module):
    """An encoder map brought to the decoder's width: depthwise 3×3 (linear, or ReLU6 when
    ``activate_depthwise``) → 1×1 (ReLU6)."""

    def __init__(self, in_channels: int, out_channels: int, activate_depthwise: bool = False) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.activate_depthwise = activate_depthwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(x)
        return F.relu6(self.pointwise(F.relu6(h) if self.activate_depthwise else h))


class DecoderStage(nn.Module):
    """The coarser map upsampled ×2 (bilinear, half-pixel) and narrowed by a 1×1 convolution (ReLU6), added
    to the lateral, then two BlazeBlocks (depthwise 3×3 → pointwise 1×1, added to the input, ReLU6).

    The file stores both blocks' depthwise biases as one (zero) tensor; it is held here once."""

    def __init__(self, coarse_channels: int, channels: int) -> None:
        super().__init__()
        self.upsample = nn.Conv2d(coarse_channels, channels, 1)
        self.depthwise = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False) for _ in range(2)
        )
        self.depthwise_bias = nn.Parameter(torch.empty(channels))
        self.pointwise = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(2))

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        x = lateral + F.relu6(self.upsample(up))
        for depthwise, pointwise in zip(self.depthwise, self.pointwise, strict=True):
            h = depthwise(x) + self.depthwise_bias[:, None, None]
            x = F.relu6(x + pointwise(h))
        return x


class SSDHead(nn.Module):
    """One output of one map: depth-to-space ×2, depthwise 3×3 stride 2, 1×1 to anchors × values."""

    def __init__(self, channels: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.depthwise = nn.Conv2d(channels // 4, channels // 4, 3, 2, 1, groups=channels // 4)
        self.conv = nn.Conv2d(channels // 4, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.depthwise(depth_to_space(x, 2)))
        return out.permute(0, 2, 3, 1).reshape(out.shape[0], -1, self.values)


class BlazePoseDetector(nn.Module):
    """``forward(x) -> (regressors N×2254×12, scores N×2254×1)``: per SSD anchor a box (cx, cy, w, h) and
    four keypoints (hip centre, full-body circle point, shoulder centre, upper-body circle point) in
    224-pixel units relative to the anchor, and a logit; anchors run 28×28, 14×14, 7×7, row by row, a
    cell's anchors together, as in the file."""

    output_names = ("Identity", "Identity_1")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 3, 2, 1)
        self.encoder = nn.ModuleList(InvertedResidual(*spec) for spec in ENCODER)
        self.expand_7x7 = nn.Conv2d(192, 1152, 1)
        self.depthwise_7x7 = nn.Conv2d(1152, 1152, 3, padding=1, groups=1152)
        self.lateral_14x14 = Lateral(112, 192)
        self.decoder_14x14 = DecoderStage(1152, 192)
        self.lateral_28x28 = Lateral(40, 96)
        self.decoder_28x28 = DecoderStage(192, 96)
        self.classifier_28x28 = SSDHead(96, 2, 1)
        self.regressor_28x28 = SSDHead(96, 2, BOX_VALUES)
        self.classifier_14x14 = SSDHead(192, 2, 1)
        self.regressor_14x14 = SSDHead(192, 2, BOX_VALUES)
        self.classifier_7x7 = SSDHead(1152, 6, 1)
        self.regressor_7x7 = SSDHead(1152, 6, BOX_VALUES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu6(self.stem(x))
        encoded = []
        for block in self.encoder:
            x = block(x)
            encoded.append(x)
        map_7x7 = F.relu6(self.depthwise_7x7(F.relu6(self.expand_7x7(x))))
        map_14x14 = self.decoder_14x14(map_7x7, self.lateral_14x14(encoded[LATERAL_14X14]))
        map_28x28 = self.decoder_28x28(map_14x14, self.lateral_28x28(encoded[LATERAL_28X28]))
        maps = (map_28x28, map_14x14, map_7x7)
        regressors = (self.regressor_28x28, self.regressor_14x14, self.regressor_7x7)
        classifiers = (self.classifier_28x28, self.classifier_14x14, self.classifier_7x7)
        return (
            torch.cat([head(m) for head, m in zip(regressors, maps, strict=True)], 1),
            torch.cat([head(m) for head, m in zip(classifiers, maps, strict=True)], 1),
        )


class BlazeBlock(nn.Module):
    """Depthwise 3×3 (ReLU6; TensorFlow ``SAME`` padding) → pointwise 1×1, added to the input (max-pooled
    2×2 when the block strides), then ReLU6."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(channels, channels, 3, stride, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.depthwise(pad_same(x, (3, 3), (self.stride, self.stride))))
        shortcut = F.max_pool2d(x, 2) if self.stride > 1 else x
        return F.relu6(shortcut + self.pointwise(h))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class BlazePoseLandmark(nn.Module):
    """``forward(x) -> (landmarks N×195, pose_flag N×1, segmentation N×1×256×256, heatmap N×39×64×64,
    world N×117)``: 39 landmarks × (x, y, z, visibility logit, presence logit) in 256-pixel units, the
    person-presence score (already a probability), segmentation logits, the refinement heatmaps and the
    metric world landmarks (39 × 3)."""

    output_names = ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 3, 2, 1)
        self.encoder = nn.ModuleList(InvertedResidual(*spec) for spec in LANDMARK_ENCODER)
        self.skips = nn.ModuleList(Lateral(LANDMARK_ENCODER[i][2], out, True) for i, out in LANDMARK_SKIPS)
        self.expand_8x8 = nn.Conv2d(144, 864, 1)
        self.depthwise_8x8 = nn.Conv2d(864, 864, 3, padding=1, groups=864)
        self.heatmap_decoder = Lateral(864, 48, True)
        self.heatmap = nn.Conv2d(48, LANDMARKS, 1)
        self.segmentation_decoder = Lateral(48, 8, True)
        self.segmentation_128x128 = nn.ModuleList(BlazeBlock(8) for _ in range(2))
        self.segmentation_256x256 = nn.ModuleList(BlazeBlock(8) for _ in range(2))
        self.segmentation = nn.Conv2d(8, 1, 3, padding=1)
        self.regression_decoder = Lateral(864, 288, True)
        self.regression = nn.Sequential(*(BlazeBlock(288, stride) for stride in REGRESSION_STRIDES))
        self.landmarks = nn.Conv2d(288, LANDMARKS * 5, 2)
        self.world_landmarks = nn.Conv2d(288, LANDMARKS * 3, 2)
        self.pose_flag = nn.Conv2d(288, 1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = F.relu6(self.stem(x))
        encoded = []
        for block in self.encoder:
            x = block(x)
            encoded.append(x)
        skips = [skip(encoded[i]) for skip, (i, _) in zip(self.skips, LANDMARK_SKIPS, strict=True)]
        features = F.relu6(self.depthwise_8x8(F.relu6(self.expand_8x8(x))))
        h = self.heatmap_decoder(features)
        for skip in reversed(skips[1:]):
            h = _upsample(h) + skip
        s = _upsample(self.segmentation_decoder(h)) + skips[0]
        for block in self.segmentation_128x128:
            s = block(s)
        s = _upsample(s)
        for block in self.segmentation_256x256:
            s = block(s)
        r = self.regression(self.regression_decoder(features))
        return (
            self.landmarks(r).flatten(1),
            torch.sigmoid(self.pose_flag(r)).flatten(1),
            self.segmentation(s),
            self.heatmap(h),
            self.world_landmarks(r).flatten(1),
        )
