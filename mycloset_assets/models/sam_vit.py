"""Segment Anything ViT-B/L/H (facebookresearch/segment-anything ``build_sam.py``): SAM with a plain ViT encoder.

The image encoder is a ViT over 16 x 16 patches with an absolute position embedding, windowed (14 x 14)
attention in most blocks and global attention in four, both with decomposed relative-position terms
(MViTv2), and SAM's neck to a 256-channel 64 x 64 embedding. The prompt encoder and mask decoder are the
ones MobileSAM uses (``mobile_sam_decoder``), and so is the end-to-end call (``SegmentAnything``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .mobile_sam import SegmentAnything
from .mobile_sam_decoder import MLPBlock
from .mobile_sam_tinyvit import LayerNorm2d

VARIANTS: dict[str, dict[str, object]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": (2, 5, 8, 11)},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": (5, 11, 17, 23)},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": (7, 15, 23, 31)},
}
"""``sam_model_registry``'s builders: width, depth, heads and the blocks with global attention."""


def relative_positions(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """The q_size x k_size x C table of relative-position embeddings (``get_rel_pos``), resized linearly
    when the stored table was learnt for another size."""
    length = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.T[None], size=length, mode="linear")[0].T
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


class Attention(nn.Module):
    """Multi-head self-attention over an H x W token grid with decomposed relative-position terms."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, height * width, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        rel_h = relative_positions(height, height, self.rel_pos_h)
        rel_w = relative_positions(width, width, self.rel_pos_w)
        grid_q = q.reshape(batch * self.num_heads, height, width, -1)
        term_h = torch.einsum("bhwc,hkc->bhwk", grid_q, rel_h)
        term_w = torch.einsum("bhwc,wkc->bhwk", grid_q, rel_w)
        attn = attn.view(-1, height, width, height, width) + term_h[..., :, None] + term_w[..., None, :]
        attn = attn.view(-1, height * width, height * width).softmax(dim=-1)
        out = (attn @ v).view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(batch, height, width, -1))


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """B x H x W x C -> (B * windows) x window x window x C, zero-padding H and W to multiples of window."""
    batch, height, width, channels = x.shape
    pad_h, pad_w = (-height) % window, (-width) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window, window, padded_w // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels), (padded_h, padded_w)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """The inverse of ``window_partition``, padding removed."""
    padded_h, padded_w = padded
    batch = windows.shape[0] // (padded_h * padded_w // window // window)
    x = windows.view(batch, padded_h // window, padded_w // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_h, padded_w, -1)
    return x[:, : size[0], : size[1]]


class Block(nn.Module):
    """Pre-norm transformer block; attention runs in windows unless ``window`` is 0 (global)."""

    def __init__(self, dim: int, num_heads: int, window: int, grid: tuple[int, int], mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, grid if window == 0 else (window, window))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), nn.GELU)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            size = (x.shape[1], x.shape[2])
            windows, padded = window_partition(x, self.window)
            x = window_unpartition(self.attn(windows), self.window, padded, size)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection, channels last (B x H/p x W/p x C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """SAM's ViT image encoder: N x 3 x S x S (normalised, padded) -> N x out_chans x S/16 x S/16."""

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
        window_size: int = 14,
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, *grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, 0 if i in global_attn_indexes else window_size, grid) for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class SamViT(SegmentAnything):
    """Segment Anything with a ViT-B, ViT-L or ViT-H image encoder (``variant``: vit_b, vit_l, vit_h)."""

    def __init__(
        self, variant: str = "vit_b", image_size: int = 1024, prompt_embed_dim: int = 256, **options: Any
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown SAM variant {variant!r}; known: {', '.join(VARIANTS)}")
        encoder = ImageEncoderViT(img_size=image_size, out_chans=prompt_embed_dim, **VARIANTS[variant])  # type: ignore[arg-type]
        super().__init__(encoder, image_size, prompt_embed_dim, **options)
