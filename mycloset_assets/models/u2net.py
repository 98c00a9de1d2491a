"""U^2-Net (Qin et al., Pattern Recognition 2020): a two-level nested U-structure for segmentation.

Residual U-blocks (RSU-L, Fig. 2) are small U-Nets of depth L whose output is added to their input
convolution; RSU-4F replaces pooling by dilation. Six encoder stages, five decoder stages, a side output
per stage upsampled to the input size, and a 1x1 fusion of the six side outputs (Fig. 5).
``U2NET`` is the full model, ``U2NETP`` the 4.7 MB small one; the cloth-segmentation release returns raw
logits where the saliency release applies a sigmoid (``sigmoid`` argument).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``source`` to ``target``'s spatial size (align_corners=False, as the reference)."""
    return F.interpolate(source, size=target.shape[2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """3x3 convolution (dilated), batch norm, ReLU."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block RSU-L: ``depth`` encoder levels with pooling, a dilated bottom, a mirrored decoder.

    Module names follow the reference (``rebnconvin``, ``rebnconv1..L``, ``rebnconv(L-1)d..1d``).
    """

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depth = depth
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        for level in range(1, depth - 1):
            self.add_module(f"pool{level}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            self.add_module(f"rebnconv{level + 1}", REBNCONV(mid_ch, mid_ch, dirate=1))
        self.add_module(f"rebnconv{depth}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for level in range(depth - 1, 1, -1):
            self.add_module(f"rebnconv{level}d", REBNCONV(mid_ch * 2, mid_ch, dirate=1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self.rebnconvin(x)
        skips = [self.rebnconv1(entry)]
        for level in range(1, self.depth - 1):
            pooled = getattr(self, f"pool{level}")(skips[-1])
            skips.append(getattr(self, f"rebnconv{level + 1}")(pooled))
        hx = getattr(self, f"rebnconv{self.depth}")(skips[-1])
        for level in range(self.depth - 1, 0, -1):
            hx = getattr(self, f"rebnconv{level}d")(torch.cat([hx, skips[level - 1]], 1))
            if level > 1:
                hx = upsample_like(hx, skips[level - 2])
        return hx + entry


class RSU4F(nn.Module):
    """RSU-4F: the RSU-4 pattern with dilations 1, 2, 4, 8 instead of pooling (full resolution)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self.rebnconvin(x)
        hx1 = self.rebnconv1(entry)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat([hx4, hx3], 1))
        hx2d = self.rebnconv2d(torch.cat([hx3d, hx2], 1))
        return self.rebnconv1d(torch.cat([hx2d, hx1], 1)) + entry


def _stage(depth: int, in_ch: int, mid_ch: int, out_ch: int) -> nn.Module:
    return RSU4F(in_ch, mid_ch, out_ch) if depth == 0 else RSU(depth, in_ch, mid_ch, out_ch)


class _U2NetBase(nn.Module):
    """Encoder stages 1-6, decoder stages 5d-1d, six side outputs and their fusion.

    ``encoder`` and ``decoder`` list ``(depth, in, mid, out)`` per stage; depth 0 means RSU-4F.
    """

    def __init__(
        self,
        encoder: list[tuple[int, int, int, int]],
        decoder: list[tuple[int, int, int, int]],
        out_ch: int,
        sigmoid: bool,
    ) -> None:
        super().__init__()
        self.sigmoid = sigmoid
        for index, spec in enumerate(encoder, start=1):
            self.add_module(f"stage{index}", _stage(*spec))
            if index < len(encoder):
                self.add_module(f"pool{index}{index + 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        for index, spec in zip(range(len(decoder), 0, -1), decoder, strict=True):
            self.add_module(f"stage{index}d", _stage(*spec))
        side_in = [decoder[-1][3], *[spec[3] for spec in reversed(decoder[:-1])], encoder[-1][3]]
        for index, channels in enumerate(side_in, start=1):
            self.add_module(f"side{index}", nn.Conv2d(channels, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(len(side_in) * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stages = 6
        skips = [self.stage1(x)]
        for index in range(2, stages + 1):
            pooled = getattr(self, f"pool{index - 1}{index}")(skips[-1])
            skips.append(getattr(self, f"stage{index}")(pooled))
        decoded = {stages: skips[-1]}
        hx = skips[-1]
        for index in range(stages - 1, 0, -1):
            hx = getattr(self, f"stage{index}d")(torch.cat([upsample_like(hx, skips[index - 1]), skips[index - 1]], 1))
            decoded[index] = hx
        side = [self.side1(decoded[1])]
        for index in range(2, stages + 1):
            side.append(upsample_like(getattr(self, f"side{index}")(decoded[index]), side[0]))
        fused = self.outconv(torch.cat(side, 1))
        outputs = (fused, *side)
        return tuple(torch.sigmoid(o) for o in outputs) if self.sigmoid else outputs


class U2NET(_U2NetBase):
    """U^2-Net (176 MB): ``forward(x) -> (d0, d1, ..., d6)``, d0 the fused map."""

    def __init__(self, in_ch: int = 3, out_ch: int = 1, sigmoid: bool = True) -> None:
        super().__init__(
            encoder=[
                (7, in_ch, 32, 64),
                (6, 64, 32, 128),
                (5, 128, 64, 256),
                (4, 256, 128, 512),
                (0, 512, 256, 512),
                (0, 512, 256, 512),
            ],
            decoder=[(0, 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64), (7, 128, 16, 64)],
            out_ch=out_ch,
            sigmoid=sigmoid,
        )


class U2NETP(_U2NetBase):
    """U^2-Net-p (4.7 MB): the same structure with 16 middle and 64 outer channels everywhere."""

    def __init__(self, in_ch: int = 3, out_ch: int = 1, sigmoid: bool = True) -> None:
        super().__init__(
            encoder=[
                (7, in_ch, 16, 64),
                (6, 64, 16, 64),
                (5, 64, 16, 64),
                (4, 64, 16, 64),
                (0, 64, 16, 64),
                (0, 64, 16, 64),
            ],
            decoder=[(0, 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64), (7, 128, 16, 64)],
            out_ch=out_ch,
            sigmoid=sigmoid,
        )
