"""BlazePose (MediaPipe Pose, legacy solution): the person detector and the GHUM full landmark network.

The detector (224×224, input RGB in [-1, 1]) is written out as modules: a 3×3 stride-2 stem and fifteen
MobileNetV2 inverted residual blocks encode the image down to 7×7; a feature-pyramid decoder brings it back
to 14×14 and 28×28 (bilinear upsampling, lateral maps from the encoder, BlazeBlocks); on each of the three
maps two SSD heads (depth-to-space, depthwise 3×3 stride 2, 1×1) give per-anchor logits and regressions
(2 anchors per 28×28 and 14×14 cell, 6 per 7×7 cell: 1568 + 392 + 294 = 2254). Every stride-2 window pads
one pixel per side (two for 5×5), as the file's explicit PAD operators do.

The landmark network (256×256, input RGB in [0, 1]) still runs its published graph op for op
(``mediapipe_graph.TFLiteGraphNet``) with the file's own tensor names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mediapipe_graph import TFLiteGraphNet
from .tf_ops import depth_to_space

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
    """An encoder map brought to the decoder's width: depthwise 3×3 (linear) → 1×1 (ReLU6)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.pointwise(self.depthwise(x)))


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


class BlazePoseLandmark(TFLiteGraphNet):
    """``forward(x) -> (landmarks N×195, pose_flag N×1, segmentation N×1×256×256, heatmap N×39×64×64,
    world N×117)``: 39 landmarks × (x, y, z, visibility logit, presence logit) in 256-pixel units, the
    person-presence score (already a probability), segmentation logits, the refinement heatmaps and the
    metric world landmarks (39 × 3)."""

    def __init__(self) -> None:
        super().__init__("mediapipe_pose_landmark_full")
