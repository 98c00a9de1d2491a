"""DeepLabV3+ (Chen et al. 2018) as published by VainF/DeepLabV3Plus-Pytorch@4e1087d.

Encoder: a ResNet-101 or MobileNetV2 backbone with atrous convolutions (output stride 16 or 8) followed by
atrous spatial pyramid pooling (ASPP). Decoder: the ASPP features, upsampled to the low-level features'
resolution (stride 4), are concatenated with a 48-channel projection of those features, refined by a 3x3
convolution and classified; the logits are upsampled bilinearly to the input size.

Module names follow the reference (``backbone.*`` as its ``IntermediateLayerGetter`` keeps them,
``classifier.project/aspp/classifier``), so ``state_dict()`` equals the published ``model_state``. The
published models use plain (not separable) convolutions.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKBONES = ("resnet101", "mobilenetv2")
ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


# --- ResNet-101 backbone (torchvision layout, stride on the 3x3 convolution) -----------------------------


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand (x4), plus the identity or a projected shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet101Backbone(nn.Module):
    """ResNet-101 stem and four stages; the last stages trade stride for dilation to reach the output stride.

    ``forward`` returns ``(low_level, out)``: the stride-4 ``layer1`` features (256 channels) and the
    ``layer4`` features (2048 channels).
    """

    low_level_channels = 256
    out_channels = 2048
    STAGES = ((64, 3), (128, 4), (256, 23), (512, 3))  # bottleneck width, blocks

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        dilated = {16: (False, False, False, True), 8: (False, False, True, True)}[output_stride]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        stages, in_ch, dilation = [], 64, 1
        for (planes, depth), stride, dilate in zip(self.STAGES, (1, 2, 2, 2), dilated, strict=True):
            first_dilation = dilation
            if dilate:
                stride, dilation = 1, dilation * stride
            out_ch = planes * Bottleneck.expansion
            blocks = [Bottleneck(in_ch, planes, stride, first_dilation)]
            blocks += [Bottleneck(out_ch, planes, 1, dilation) for _ in range(1, depth)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low_level = self.layer1(x)
        return low_level, self.layer4(self.layer3(self.layer2(low_level)))


# --- MobileNetV2 backbone (the reference's variant: unpadded stem, fixed padding before each block) -----


class ConvBNReLU6(nn.Sequential):
    """Unpadded convolution, batch norm, ReLU6 (the caller pads)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, 0, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise (strided or dilated), linear 1x1 projection, residual when shapes agree.

    As in the reference, the input is zero-padded for the 3x3 kernel *before* the whole block, so the
    expansion also sees the padding (its border outputs are ReLU6 of the batch-norm bias, not zeros).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_ch * expand_ratio)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.padding = (dilation, dilation, dilation, dilation)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(F.pad(x, self.padding))
        return x + out if self.use_residual else out


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 (width 1.0) feature layers 0-17, split after layer 3 as the reference renames them.

    ``low_level_features`` are layers 0-3 (stride 4, 24 channels); ``high_level_features`` are layers 4-17
    (320 channels), keeping their original indices as names. Once the output stride is reached, later
    strides become dilations (the first block of a group keeps the previous dilation). ``forward``
    returns ``(low_level, out)``.
    """

    low_level_channels = 24
    out_channels = 320
    # expansion t, channels c, repeats n, stride s
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        in_ch, current_stride, dilation = 32, 2, 1
        for t, c, n, s in self.SETTINGS:
            previous_dilation = dilation
            if current_stride == output_stride:
                stride, dilation = 1, dilation * s
            else:
                stride, current_stride = s, current_stride * s
            for i in range(n):
                if i == 0:
                    layers.append(InvertedResidual(in_ch, c, stride, previous_dilation, t))
                else:
                    layers.append(InvertedResidual(in_ch, c, 1, dilation, t))
                in_ch = c
        self.low_level_features = nn.Sequential(*layers[:4])
        self.high_level_features = nn.Sequential(OrderedDict((str(i), layers[i]) for i in range(4, len(layers))))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low_level = self.low_level_features(x)
        return low_level, self.high_level_features(low_level)


# --- Head: ASPP and the DeepLabV3+ decoder ---------------------------------------------------------------


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv, BN, ReLU, upsampled back to the input size."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and image-pooling branches, fused by a 1x1."""

    def __init__(self, in_ch: int, rates: tuple[int, int, int], out_ch: int = 256) -> None:
        super().__init__()

        def conv_bn_relu(kernel_size: int, dilation: int = 1) -> nn.Sequential:
            padding = dilation * (kernel_size // 2)
            return nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            )

        self.convs = nn.ModuleList(
            [conv_bn_relu(1), *(conv_bn_relu(3, rate) for rate in rates), ASPPPooling(in_ch, out_ch)]
        )
        self.project = nn.Sequential(
            nn.Conv2d(5 * out_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHeadV3Plus(nn.Module):
    """Decoder: ASPP on the deep features, upsampled and concatenated with projected low-level features."""

    def __init__(self, in_ch: int, low_level_ch: int, num_classes: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.Conv2d(low_level_ch, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True)
        )
        self.aspp = ASPP(in_ch, rates)
        self.classifier = nn.Sequential(
            nn.Conv2d(48 + 256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, num_classes, 1),
        )

    def forward(self, low_level: Tensor, out: Tensor) -> Tensor:
        low_level = self.project(low_level)
        out = F.interpolate(self.aspp(out), size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low_level, out], dim=1))


# --- The network ----------------------------------------------------------------------------------------


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a ResNet-101 or MobileNetV2 backbone.

    ``forward(x)`` takes N x 3 x H x W normalised RGB and returns N x num_classes x H x W logits
    (bilinear, ``align_corners=False``), as the reference ``DeepLabV3.forward``.
    """

    def __init__(self, backbone: str = "resnet101", num_classes: int = 21, output_stride: int = 16) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if output_stride not in ASPP_RATES:
            raise ValueError(f"output_stride must be 16 or 8, got {output_stride}")
        net = ResNet101Backbone if backbone == "resnet101" else MobileNetV2Backbone
        self.backbone = net(output_stride)
        self.classifier = DeepLabHeadV3Plus(
            net.out_channels, net.low_level_channels, num_classes, ASPP_RATES[output_stride]
        )

    def forward(self, x: Tensor) -> Tensor:
        logits = self.classifier(*self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
