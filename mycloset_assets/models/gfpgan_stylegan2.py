"""StyleGAN2 generator with spatial feature transform, the decoder of GFPGAN (``stylegan2_clean_arch.py`` and
``StyleGAN2GeneratorCSFT`` of TencentARC/GFPGAN): the "clean" variant, bilinear resampling and no custom ops.

A constant 4 x 4 input goes through pairs of modulated 3x3 convolutions (the first of each pair upsamples
2x), with per-layer noise injection; after the first conv of each resolution, the spatial conditions from
GFPGAN's U-Net scale and shift half of the channels (SFT). RGB outputs are accumulated from every
resolution (skip architecture).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def channel_table(channel_multiplier: float, narrow: float) -> dict[int, int]:
    """StyleGAN2's feature channels per resolution."""
    base = {4: 512, 8: 512, 16: 512, 32: 512}
    wide = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    table = {size: int(c * narrow) for size, c in base.items()}
    table.update({size: int(c * channel_multiplier * narrow) for size, c in wide.items()})
    return table


class NormStyleCode(nn.Module):
    """Pixel norm of the style codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Convolution whose weight is scaled per input channel by the style (and demodulated), no bias."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        upsample: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
            / math.sqrt(in_channels * kernel_size**2)
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channels = x.shape[:2]
        weight = self.weight * self.modulation(style).view(batch, 1, in_channels, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.view(batch, self.out_channels, 1, 1, 1)
        weight = weight.view(batch * self.out_channels, in_channels, self.kernel_size, self.kernel_size)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        height, width = x.shape[2:]
        # one grouped convolution applies each sample's own weights
        out = F.conv2d(
            x.reshape(1, batch * in_channels, height, width),
            weight,
            padding=self.kernel_size // 2,
            groups=batch,
        )
        return out.view(batch, self.out_channels, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated 3x3 conv, scaled noise injection, bias, leaky ReLU (x sqrt 2 gain)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate=True, upsample=upsample
        )
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2**0.5
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        out = out + self.weight * noise + self.bias
        return F.leaky_relu(out, negative_slope=0.2)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (not demodulated) plus bias, added to the upsampled previous RGB."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4 x 4 starting feature map."""

    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 generator (clean) whose features are modulated by SFT conditions."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        sft_half: bool = False,
    ) -> None:
        super().__init__()
        self.sft_half = sft_half
        layers: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            layers += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(negative_slope=0.2)]
        self.style_mlp = nn.Sequential(*layers)

        channels = channel_table(channel_multiplier, narrow)
        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = StyleConv(channels[4], channels[4], 3, num_style_feat)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample=False)

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        # fixed noise maps (persistent buffers): 4x4, then two per resolution 8 .. out_size
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            resolution = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise{layer_idx}", torch.randn(1, 1, resolution, resolution))
        in_channels = channels[4]
        for level in range(3, self.log_size + 1):
            out_channels = channels[2**level]
            self.style_convs.append(StyleConv(in_channels, out_channels, 3, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_channels, out_channels, 3, num_style_feat))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat, upsample=True))
            in_channels = out_channels

    def forward(
        self,
        styles: torch.Tensor,
        conditions: list[torch.Tensor],
        input_is_latent: bool = False,
        randomize_noise: bool = True,
    ) -> torch.Tensor:
        """``styles``: B x C (one code for every layer) or B x num_latent x C; ``conditions``: [scale, shift]
        per resolution from 8 up. Noise is drawn anew unless ``randomize_noise`` is False (stored noise)."""
        if not input_is_latent:
            styles = self.style_mlp(styles)
        latent = styles if styles.ndim == 3 else styles.unsqueeze(1).repeat(1, self.num_latent, 1)
        if randomize_noise:
            noise: list[torch.Tensor | None] = [None] * self.num_layers
        else:
            noise = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(
            self.style_convs[::2], self.style_convs[1::2], noise[1::2], noise[2::2], self.to_rgbs, strict=True
        ):
            out = conv1(out, latent[:, i], noise1)
            if i < len(conditions):
                scale, shift = conditions[i - 1], conditions[i]
                if self.sft_half:
                    same, sft = torch.split(out, out.size(1) // 2, dim=1)
                    out = torch.cat([same, sft * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = conv2(out, latent[:, i + 1], noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip
