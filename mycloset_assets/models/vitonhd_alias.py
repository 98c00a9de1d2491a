"""VITON-HD ALIAS generator (Choi et al., "VITON-HD", CVPR 2021), stage 3 of the try-on.

The generator synthesises the 1024x768 try-on image from the agnostic image, the pose image and the warped
cloth (9 channels). The input is resampled to eight resolutions (8x6 up to 1024x768) and each is embedded
by its own 3x3 conv; residual blocks at doubling resolutions take the upsampled features concatenated with
that embedding. Every block is normalised by ALIAS normalisation: a parameter-free norm of the noisy
activations (MaskNorm, which normalises the misaligned region and the rest separately, in the first five
blocks; instance norm in the last three), modulated by gamma and beta predicted from the segmentation.

Reference: shadow2496/VITON-HD@02afa4b, networks.py (`ALIASGenerator(opt, input_nc=9)` with semantic_nc 7,
ngf 64, norm_G "spectralaliasinstance", num_upsampling_layers "most"). The block convolutions use torch's
legacy hook-based spectral norm; `SpectralNormConv2d` stores the same tensors under the same names
(`weight_orig`, `weight_u`, `weight_v`) and computes the same weight, and builds on the meta device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_UP_LAYERS = 7  # "most": the latent map is load size / 2^7 (8x6 for 1024x768)


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour x2 upsampling."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class SpectralNormConv2d(nn.Module):
    """Conv2d with spectral normalisation, holding its tensors as ``torch.nn.utils.spectral_norm`` does.

    State: ``bias`` and ``weight_orig`` (parameters), ``weight_u`` [out] and ``weight_v`` [in*kh*kw]
    (buffers). The weight used is ``weight_orig / sigma`` with ``sigma = u . (W v)``, W being ``weight_orig``
    as an out x (in*kh*kw) matrix. In training mode one power iteration first refines u and v in place, as
    the hook does; in eval mode the stored u and v are used as they are.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        bias: bool = True,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.padding = padding
        self.eps = eps
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as nn.Conv2d does, with random unit vectors u and v."""
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight_v.numel())
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_u.copy_(F.normalize(torch.randn_like(self.weight_u), dim=0, eps=self.eps))
            self.weight_v.copy_(F.normalize(torch.randn_like(self.weight_v), dim=0, eps=self.eps))

    @property
    def weight(self) -> Tensor:
        """The normalised weight ``weight_orig / (u . (W v))`` from the stored u and v."""
        matrix = self.weight_orig.flatten(1)
        sigma = torch.dot(self.weight_u, torch.mv(matrix, self.weight_v))
        return self.weight_orig / sigma

    @torch.no_grad()
    def power_iteration(self) -> None:
        """One power-iteration step on u and v, in place, as the legacy hook does before a training step."""
        matrix = self.weight_orig.flatten(1)
        F.normalize(torch.mv(matrix.t(), self.weight_u), dim=0, eps=self.eps, out=self.weight_v)
        F.normalize(torch.mv(matrix, self.weight_v), dim=0, eps=self.eps, out=self.weight_u)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.power_iteration()
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class MaskNorm(nn.Module):
    """Instance-normalise the masked region and its complement separately, then add them.

    Each region is filled with its own mean outside the mask, instance-normalised, and rescaled by the
    square root of the fraction of the image it covers.
    """

    @staticmethod
    def normalize_region(region: Tensor, mask: Tensor) -> Tensor:
        h, w = region.shape[-2:]
        num_pixels = mask.sum((2, 3), keepdim=True)
        num_pixels = torch.where(num_pixels == 0, torch.ones_like(num_pixels), num_pixels)
        mu = region.sum((2, 3), keepdim=True) / num_pixels
        return F.instance_norm(region + (1 - mask) * mu) * torch.sqrt(num_pixels / (h * w))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x N x C x H x W, mask N x 1 x H x W in [0, 1] (the misalignment mask)."""
        mask = mask.detach()
        return self.normalize_region(x * mask, mask) + self.normalize_region(x * (1 - mask), 1 - mask)


class ALIASNorm(nn.Module):
    """ALIAS normalisation: a parameter-free norm of ``x + noise``, modulated by ``1 + gamma`` and ``beta``.

    gamma and beta are predicted from the segmentation by a shared 3x3 conv + ReLU and two 3x3 convs.

    The noise is ``randn * noise_scale`` per channel, drawn on every call from torch's global generator with
    the reference's draw shape (N x W x H x 1), so outputs are stochastic unless the generator is seeded.
    """

    def __init__(self, norm_nc: int, label_nc: int, mask_norm: bool, hidden: int = 128) -> None:
        super().__init__()
        self.mask_norm = mask_norm
        self.noise_scale = nn.Parameter(torch.zeros(norm_nc))
        self.param_free_norm = MaskNorm() if mask_norm else nn.InstanceNorm2d(norm_nc)
        self.conv_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.conv_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.conv_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: Tensor, seg: Tensor, misalign_mask: Tensor | None = None) -> Tensor:
        """x N x C x H x W; seg N x label_nc x H x W; misalign_mask N x 1 x H x W (MaskNorm only)."""
        b, _, h, w = x.shape
        noise = (torch.randn(b, w, h, 1, device=x.device, dtype=x.dtype) * self.noise_scale).transpose(1, 3)
        if self.mask_norm:
            if misalign_mask is None:
                raise ValueError("ALIASNorm with MaskNorm needs the misalignment mask")
            normalized = self.param_free_norm(x + noise, misalign_mask)
        else:
            normalized = self.param_free_norm(x + noise)

        actv = self.conv_shared(seg)
        return normalized * (1 + self.conv_gamma(actv)) + self.conv_beta(actv)


class ALIASResBlock(nn.Module):
    """Residual block: (ALIASNorm, leaky ReLU, spectral-norm 3x3 conv) twice, plus a shortcut.

    The shortcut is learned (ALIASNorm, then a 1x1 spectral-norm conv without bias) when the channel count
    changes. With ``use_mask_norm`` the norms are MaskNorms conditioned on ``semantic_nc + 1`` channels (the
    segmentation and the misalignment mask); otherwise instance norms conditioned on ``semantic_nc``.
    """

    def __init__(self, input_nc: int, output_nc: int, semantic_nc: int, use_mask_norm: bool = True) -> None:
        super().__init__()
        self.use_mask_norm = use_mask_norm
        self.learned_shortcut = input_nc != output_nc
        middle_nc = min(input_nc, output_nc)

        self.conv_0 = SpectralNormConv2d(input_nc, middle_nc, kernel_size=3, padding=1)
        self.conv_1 = SpectralNormConv2d(middle_nc, output_nc, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(input_nc, output_nc, kernel_size=1, bias=False)

        label_nc = semantic_nc + 1 if use_mask_norm else semantic_nc
        self.norm_0 = ALIASNorm(input_nc, label_nc, use_mask_norm)
        self.norm_1 = ALIASNorm(middle_nc, label_nc, use_mask_norm)
        if self.learned_shortcut:
            self.norm_s = ALIASNorm(input_nc, label_nc, use_mask_norm)

    def forward(self, x: Tensor, seg: Tensor, misalign_mask: Tensor | None = None) -> Tensor:
        """seg (and misalign_mask) are resized to x's size (nearest) before conditioning the norms."""
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        if misalign_mask is not None:
            misalign_mask = F.interpolate(misalign_mask, size=x.shape[2:], mode="nearest")

        x_s = self.conv_s(self.norm_s(x, seg, misalign_mask)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, misalign_mask), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, misalign_mask), 0.2))
        return x_s + dx


class ALIASGenerator(nn.Module):
    """ALIAS generator ("most" upsampling): (x, seg, seg_div, misalign_mask) -> try-on image.

    The output size is fixed by ``load_height`` x ``load_width`` (multiples of 128), whatever the input size.
    """

    def __init__(
        self,
        input_nc: int = 9,
        semantic_nc: int = 7,
        ngf: int = 64,
        load_height: int = 1024,
        load_width: int = 768,
    ) -> None:
        super().__init__()
        self.sh = load_height // 2**NUM_UP_LAYERS
        self.sw = load_width // 2**NUM_UP_LAYERS

        self.conv_0 = nn.Conv2d(input_nc, ngf * 16, kernel_size=3, padding=1)
        for i in range(1, 8):
            self.add_module(f"conv_{i}", nn.Conv2d(input_nc, 16, kernel_size=3, padding=1))

        self.head_0 = ALIASResBlock(ngf * 16, ngf * 16, semantic_nc)
        self.G_middle_0 = ALIASResBlock(ngf * 16 + 16, ngf * 16, semantic_nc)
        self.G_middle_1 = ALIASResBlock(ngf * 16 + 16, ngf * 16, semantic_nc)
        self.up_0 = ALIASResBlock(ngf * 16 + 16, ngf * 8, semantic_nc)
        self.up_1 = ALIASResBlock(ngf * 8 + 16, ngf * 4, semantic_nc)
        self.up_2 = ALIASResBlock(ngf * 4 + 16, ngf * 2, semantic_nc, use_mask_norm=False)
        self.up_3 = ALIASResBlock(ngf * 2 + 16, ngf, semantic_nc, use_mask_norm=False)
        self.up_4 = ALIASResBlock(ngf + 16, ngf // 2, semantic_nc, use_mask_norm=False)
        self.conv_img = nn.Conv2d(ngf // 2, 3, kernel_size=3, padding=1)

    def forward(self, x: Tensor, seg: Tensor, seg_div: Tensor, misalign_mask: Tensor) -> Tensor:
        """Return the N x 3 x load_height x load_width image in [-1, 1] (tanh).

        x: N x 9 (agnostic image, pose image, warped cloth, in [-1, 1]); seg: N x 7 one-hot parsing;
        seg_div: N x 8 (the parsing with the misaligned region moved to an 8th channel); misalign_mask: N x 1.
        """
        features = [
            getattr(self, f"conv_{i}")(F.interpolate(x, size=(self.sh * 2**i, self.sw * 2**i), mode="nearest"))
            for i in range(8)
        ]

        x = self.head_0(features[0], seg_div, misalign_mask)
        x = self.G_middle_0(torch.cat((upsample(x), features[1]), 1), seg_div, misalign_mask)
        x = self.G_middle_1(torch.cat((upsample(x), features[2]), 1), seg_div, misalign_mask)
        x = self.up_0(torch.cat((upsample(x), features[3]), 1), seg_div, misalign_mask)
        x = self.up_1(torch.cat((upsample(x), features[4]), 1), seg_div, misalign_mask)
        x = self.up_2(torch.cat((upsample(x), features[5]), 1), seg)
        x = self.up_3(torch.cat((upsample(x), features[6]), 1), seg)
        x = self.up_4(torch.cat((upsample(x), features[7]), 1), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
