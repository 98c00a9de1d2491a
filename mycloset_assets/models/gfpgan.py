"""GFPGAN v1.3/v1.4 (``GFPGANv1Clean``, TencentARC/GFPGAN ``gfpgan/archs/gfpganv1_clean_arch.py``).

A U-Net encodes the degraded face down to 4 x 4; a linear layer turns the bottleneck into one latent code
per StyleGAN2 layer; the U-Net decoder produces, at every resolution, a scale and a shift map (spatial
feature transform) that condition the pretrained StyleGAN2 generator, which renders the restored face.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .gfpgan_stylegan2 import StyleGAN2GeneratorCSFT, channel_table


class ResBlock(nn.Module):
    """Residual block with bilinear 2x down- or upsampling: conv, resample, conv; 1x1 resampled skip."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = {"down": 0.5, "up": 2.0}[mode]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), negative_slope=0.2)
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        out = F.leaky_relu(self.conv2(out), negative_slope=0.2)
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return out + self.skip(x)


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """U-Net + StyleGAN2 decoder with SFT; defaults are GFPGAN v1.4's (``arch='clean'``, 512 x 512)."""

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: float = 2,
        num_mlp: int = 8,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log(out_size, 2))
        channels = channel_table(channel_multiplier, narrow * 0.5)  # the U-Net is half as wide

        self.conv_body_first = nn.Conv2d(3, channels[2**self.log_size], 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(channels[2**level], channels[2 ** (level - 1)], mode="down")
            for level in range(self.log_size, 2, -1)
        )
        self.final_conv = nn.Conv2d(channels[4], channels[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(
            ResBlock(channels[2 ** (level - 1)], channels[2**level], mode="up") for level in range(3, self.log_size + 1)
        )
        self.toRGB = nn.ModuleList(nn.Conv2d(channels[2**level], 3, 1) for level in range(3, self.log_size + 1))

        num_codes = self.log_size * 2 - 2 if different_w else 1
        self.final_linear = nn.Linear(channels[4] * 4 * 4, num_codes * num_style_feat)

        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size=out_size,
            num_style_feat=num_style_feat,
            num_mlp=num_mlp,
            channel_multiplier=channel_multiplier,
            narrow=narrow,
            sft_half=sft_half,
        )

        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for level in range(3, self.log_size + 1):
            width = channels[2**level]
            sft_width = width if sft_half else width * 2
            self.condition_scale.append(_sft_branch(width, sft_width))
            self.condition_shift.append(_sft_branch(width, sft_width))

    def forward(
        self, x: torch.Tensor, return_rgb: bool = True, randomize_noise: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: N x 3 x 512 x 512 in [-1, 1] -> (restored face in [-1, 1], intermediate U-Net RGB outputs, 8 to
        512, when ``return_rgb``). Noise is random unless ``randomize_noise`` is False (stored noise)."""
        feat = F.leaky_relu(self.conv_body_first(x), negative_slope=0.2)
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), negative_slope=0.2)

        style_code = self.final_linear(feat.view(feat.size(0), -1))
        if self.different_w:
            style_code = style_code.view(style_code.size(0), -1, self.num_style_feat)

        conditions: list[torch.Tensor] = []
        out_rgbs: list[torch.Tensor] = []
        for skip, up, scale, shift, to_rgb in zip(
            unet_skips, self.conv_body_up, self.condition_scale, self.condition_shift, self.toRGB, strict=True
        ):
            feat = up(feat + skip)
            conditions += [scale(feat), shift(feat)]
            if return_rgb:
                out_rgbs.append(to_rgb(feat))

        image = self.stylegan_decoder(
            style_code, conditions, input_is_latent=self.input_is_latent, randomize_noise=randomize_noise
        )
        return image, out_rgbs
