"""TinyViT-5M image encoder of MobileSAM (ChaoningZhang/MobileSAM ``mobile_sam/modeling/tiny_vit_sam.py``).

A convolutional stem and MBConv stage at 1/4 resolution, then three stages of windowed attention blocks
(attention with a learned relative-position bias, a depth-wise "local" convolution, an MLP), with
patch merging between stages, and SAM's neck that maps the 1/16 tokens to a 256-channel embedding.
The unused ImageNet head (``norm_head``, ``head``) is kept because the published file holds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an N x C x H x W map (SAM's ``LayerNorm2d``)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvBN(nn.Sequential):
    """Bias-free convolution followed by batch norm (children ``c`` and ``bn``, as ``Conv2d_BN``)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(in_chans, out_chans, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)


class PatchEmbed(nn.Module):
    """Stem: two stride-2 3x3 ConvBN with a GELU between (1/4 resolution)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, 3, 2),
            nn.GELU(),
            ConvBN(embed_dim // 2, embed_dim, 3, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, 3x3 depth-wise, 1x1 project, residual, GELU after each."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.gelu(self.conv1(x))
        out = F.gelu(self.conv2(out))
        return F.gelu(self.conv3(out) + x)


class PatchMerging(nn.Module):
    """1x1 ConvBN, 3x3 depth-wise ConvBN (stride 2, 1 before the last stage), 1x1 ConvBN; returns tokens."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            height, width = self.resolution
            x = x.view(len(x), height, width, -1).permute(0, 3, 1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention over one window, with a learned bias per head and (|dy|, |dx|) offset."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

        points = list(itertools.product(range(window_size), range(window_size)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(offset, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer(
            "attention_bias_idxs",
            torch.tensor(idxs, dtype=torch.long, device="cpu").view(len(points), len(points)),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(batch, tokens, self.num_heads, 3 * self.key_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.key_dim, dim=3)
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, -1))


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows) + residual, depth-wise 3x3 ConvBN, MLP + residual."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window_size: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, 3, groups=dim)

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        ws = self.window_size
        if height == ws and width == ws:
            return self.attn(x)
        batch, tokens, dim = x.shape
        pad_b, pad_r = (ws - height % ws) % ws, (ws - width % ws) % ws
        x = F.pad(x.view(batch, height, width, dim), (0, 0, 0, pad_r, 0, pad_b))
        rows, cols = (height + pad_b) // ws, (width + pad_r) // ws
        windows = x.view(batch, rows, ws, cols, ws, dim).transpose(2, 3).reshape(-1, ws * ws, dim)
        x = self.attn(windows).view(batch, rows, cols, ws, ws, dim).transpose(2, 3)
        x = x.reshape(batch, rows * ws, cols * ws, dim)[:, :height, :width]
        return x.reshape(batch, tokens, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        batch, tokens, dim = x.shape
        x = x + self.window_attention(x)
        x = self.local_conv(x.transpose(1, 2).reshape(batch, dim, height, width))
        x = x.view(batch, dim, tokens).transpose(1, 2)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks on the N x C x H x W map, then patch merging."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, downsample: PatchMerging) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    """Stages 1-3: TinyViT blocks on tokens, then patch merging (none after the last stage)."""

    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, resolution, num_heads, window_size, mlp_ratio) for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """TinyViT backbone with SAM's neck: N x 3 x S x S -> N x 256 x S/16 x S/16 (defaults: MobileSAM)."""

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])

        # Stages halve the resolution, except the last merging (stride 1), so the output is at 1/16.
        last = len(depths) - 1
        side = img_size // 4
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            resolution = (side, side)
            downsample = None
            if i < last:
                stride = 1 if i == last - 1 else 2
                downsample = PatchMerging(resolution, embed_dims[i], embed_dims[i + 1], stride)
                side //= stride
            if i == 0:
                self.layers.append(ConvLayer(embed_dims[0], depth, mbconv_expand_ratio, downsample))
            else:
                self.layers.append(
                    BasicLayer(embed_dims[i], resolution, depth, num_heads[i], window_sizes[i], mlp_ratio, downsample)
                )
        self.out_size = side

        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        batch, _, dim = x.shape
        x = x.view(batch, self.out_size, self.out_size, dim).permute(0, 3, 1, 2)
        return self.neck(x)
