"""SCHP human parsing: the A-CE2P network of "Self-Correction for Human Parsing" (Li et al., 2020).

A dilated ResNet-101 (output stride 8) feeds a pyramid-pooling context module; a decoder fuses the context
with the stride-4 features into the parsing logits, an edge branch predicts human boundaries from three
backbone stages, and a fusion head combines the decoder and edge features into the final logits.

Reference: PeikeLi/Self-Correction-Human-Parsing@ee58778, networks/AugmentCE2P.py (`ResNet`). Every
normalisation layer there is mapillary's InPlaceABNSync; `InPlaceABN` below computes its inference form in
pure torch, exactly as the extension's CPU kernel does, so state-dict keys and outputs match the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _channel(t: Tensor) -> Tensor:
    """Reshape a per-channel vector to broadcast over N x C x H x W."""
    return t.reshape(1, -1, 1, 1)


class InPlaceABN(nn.Module):
    """Activated batch normalisation (inplace_abn), inference form.

    y = (x - running_mean) * rsqrt(running_var + eps) * (|weight| + eps) + bias, then leaky ReLU
    (`activation="leaky_relu"`) or nothing (`activation="none"`). The scale uses |weight| + eps, not
    weight: this is what the reference kernel computes, and nn.BatchNorm2d does not. Running statistics
    are always used (the network is published for inference).
    """

    def __init__(
        self, num_features: int, activation: str = "leaky_relu", slope: float = 0.01, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if activation not in ("leaky_relu", "none"):
            raise ValueError(f"unsupported activation {activation!r}")
        self.activation = activation
        self.slope = slope
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt(self.running_var + self.eps) * (self.weight.abs() + self.eps)
        y = (x - _channel(self.running_mean)) * _channel(scale) + _channel(self.bias)
        if self.activation == "leaky_relu":
            y = F.leaky_relu(y, self.slope)
        return y


def bn(num_features: int) -> InPlaceABN:
    """The reference's `BatchNorm2d`: InPlaceABNSync without activation (a ReLU follows where needed)."""
    return InPlaceABN(num_features, activation="none")


def conv_abn(in_ch: int, out_ch: int, kernel_size: int = 1) -> nn.Sequential:
    """Convolution without bias, then InPlaceABN with leaky ReLU (keys `0.weight`, `1.*`)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, InPlaceABN(out_ch))


class Bottleneck(nn.Module):
    """ResNet bottleneck 1x1 -> 3x3 (strided or dilated) -> 1x1 x4, with a projection shortcut if needed."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = bn(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = bn(out_ch)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), bn(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def make_stage(in_ch: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """A ResNet stage: the first block changes resolution and width, the others keep them."""
    layers = [Bottleneck(in_ch, planes, stride, dilation)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class PSPModule(nn.Module):
    """Pyramid pooling context (Zhao et al., PSPNet): pooled 1/2/3/6 bins, upsampled, concatenated, fused."""

    def __init__(self, in_ch: int = 2048, out_ch: int = 512, sizes: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Conv2d(in_ch, out_ch, 1, bias=False), InPlaceABN(out_ch))
            for size in sizes
        )
        self.bottleneck = conv_abn(in_ch + len(sizes) * out_ch, out_ch, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        priors = [F.interpolate(stage(x), size, mode="bilinear", align_corners=True) for stage in self.stages]
        return self.bottleneck(torch.cat([*priors, x], 1))


class EdgeModule(nn.Module):
    """Edge branch: a shared 3x3 edge classifier on three stages, fused by a 1x1 convolution.

    Returns the edge logits and the concatenated edge features, both at the first input's resolution.
    """

    def __init__(self, in_chs: tuple[int, int, int] = (256, 512, 1024), mid_ch: int = 256, out_ch: int = 2) -> None:
        super().__init__()
        self.conv1 = conv_abn(in_chs[0], mid_ch)
        self.conv2 = conv_abn(in_chs[1], mid_ch)
        self.conv3 = conv_abn(in_chs[2], mid_ch)
        self.conv4 = nn.Conv2d(mid_ch, out_ch, 3, padding=1)
        self.conv5 = nn.Conv2d(out_ch * 3, out_ch, 1)

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor) -> tuple[Tensor, Tensor]:
        size = x1.shape[-2:]
        feats = [self.conv1(x1), self.conv2(x2), self.conv3(x3)]
        edges = [self.conv4(f) for f in feats]
        feats = [feats[0]] + [F.interpolate(f, size, mode="bilinear", align_corners=True) for f in feats[1:]]
        edges = [edges[0]] + [F.interpolate(e, size, mode="bilinear", align_corners=True) for e in edges[1:]]
        return self.conv5(torch.cat(edges, 1)), torch.cat(feats, 1)


class DecoderModule(nn.Module):
    """Parsing decoder: context features upsampled to stride 4, joined with 48 low-level channels.

    Returns the parsing logits and the 256-channel decoder features.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = conv_abn(512, 256)
        self.conv2 = conv_abn(256, 48)
        self.conv3 = nn.Sequential(*conv_abn(304, 256), *conv_abn(256, 256))
        self.conv4 = nn.Conv2d(256, num_classes, 1)

    def forward(self, context: Tensor, low: Tensor) -> tuple[Tensor, Tensor]:
        context = F.interpolate(self.conv1(context), low.shape[-2:], mode="bilinear", align_corners=True)
        x = self.conv3(torch.cat([context, self.conv2(low)], 1))
        return self.conv4(x), x


class AugmentCE2P(nn.Module):
    """SCHP parsing network: deep-stem dilated ResNet -> PSP context -> decoder, edge and fusion heads.

    `forward(x)` returns `[[parsing, fusion], [edge]]` as the reference does: decoder logits, final
    (fusion) logits with `num_classes` channels and 2-channel edge logits, all at 1/4 of the input size.
    The final parsing is `fusion` (`output[0][-1]`).
    """

    def __init__(self, num_classes: int = 20, layers: tuple[int, int, int, int] = (3, 4, 23, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = bn(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = bn(128)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_stage(128, 64, layers[0])
        self.layer2 = make_stage(256, 128, layers[1], stride=2)
        self.layer3 = make_stage(512, 256, layers[2], stride=2)
        self.layer4 = make_stage(1024, 512, layers[3], dilation=2)
        self.context_encoding = PSPModule(2048, 512)
        self.edge = EdgeModule()
        self.decoder = DecoderModule(num_classes)
        self.fushion = nn.Sequential(*conv_abn(1024, 256), nn.Dropout2d(0.1), nn.Conv2d(256, num_classes, 1))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        parsing, parsing_feat = self.decoder(self.context_encoding(x5), x2)
        edge, edge_feat = self.edge(x2, x3, x4)
        fusion = self.fushion(torch.cat([parsing_feat, edge_feat], 1))
        return [[parsing, fusion], [edge]]
