"""LPIPS v0.1: learned perceptual image patch similarity (Zhang et al., CVPR 2018).

Two images go through the same ImageNet trunk (torchvision AlexNet or VGG16 ``features``, cut into five
slices at its ReLU taps); each tap is unit-normalised over channels, the squared difference is weighted per
channel by a 1x1 convolution (``lin<k>``) and averaged over space; the distance is the sum over the taps.
The published lin files hold only ``lin0..lin4``; the trunk comes from torchvision's checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

# Trunk constructor, the features indices at which each of the five slices starts and ends, and the
# channel count of each tap (reference: lpips/pretrained_networks.py, lpips/lpips.py).
TRUNKS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "alex": ("alexnet", (0, 2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16", (0, 4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
}


def normalize_tensor(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each feature vector by its L2 norm over channels (plus ``eps``)."""
    norm = torch.sqrt(torch.sum(x**2, dim=1, keepdim=True))
    return x / (norm + eps)


class ScalingLayer(nn.Module):
    """Map [-1, 1] images to the trunk's ImageNet statistics: ``(x - shift) / scale`` (constants)."""

    def __init__(self) -> None:
        super().__init__()
        shift = torch.tensor([-0.030, -0.088, -0.188], device="cpu").view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450], device="cpu").view(1, 3, 1, 1)
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """Per-channel weights of one tap: dropout, then a 1x1 convolution to one channel without bias."""

    def __init__(self, in_channels: int, use_dropout: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout()] if use_dropout else []
        layers.append(nn.Conv2d(in_channels, 1, kernel_size=1, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SlicedTrunk(nn.Module):
    """A torchvision ``features`` stack cut into ``slice1..slice5``; each layer keeps its index as name."""

    def __init__(self, features: nn.Sequential, bounds: tuple[int, ...]) -> None:
        super().__init__()
        for n, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=1):
            part = nn.Sequential()
            for i in range(start, stop):
                part.add_module(str(i), features[i])
            self.add_module(f"slice{n}", part)
        self.n_slices = len(bounds) - 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for n in range(1, self.n_slices + 1):
            x = getattr(self, f"slice{n}")(x)
            taps.append(x)
        return taps


class LPIPS(nn.Module):
    """The reference's LPIPS(net, version="0.1") with linear calibration, and its ``forward``.

    ``forward(in0, in1, retPerLayer=False, normalize=False)`` returns the N x 1 x 1 x 1 distance, or
    ``(distance, [term_0, ..., term_4])`` with ``retPerLayer=True``; ``spatial=True`` gives N x 1 x H x W maps
    (each term bilinearly upsampled to the input size) instead of spatial averages.
    """

    def __init__(self, net: str = "alex", spatial: bool = False, use_dropout: bool = True) -> None:
        super().__init__()
        if net not in TRUNKS:
            raise ValueError(f"unknown LPIPS trunk {net!r}; expected one of {sorted(TRUNKS)}")
        builder, bounds, channels = TRUNKS[net]
        self.pnet_type = net
        self.spatial = spatial
        self.chns = channels
        self.L = len(channels)
        self.scaling_layer = ScalingLayer()
        self.net = SlicedTrunk(getattr(models, builder)(weights=None).features, bounds)
        self.net.requires_grad_(False)
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", NetLinLayer(c, use_dropout=use_dropout))

    @property
    def lins(self) -> list[NetLinLayer]:
        """The per-tap lin layers in order (not registered a second time)."""
        return [getattr(self, f"lin{k}") for k in range(self.L)]

    def forward(
        self, in0: torch.Tensor, in1: torch.Tensor, retPerLayer: bool = False, normalize: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if normalize:
            in0, in1 = 2 * in0 - 1, 2 * in1 - 1
        outs0 = self.net(self.scaling_layer(in0))
        outs1 = self.net(self.scaling_layer(in1))
        res = []
        for lin, f0, f1 in zip(self.lins, outs0, outs1, strict=True):
            diff = (normalize_tensor(f0) - normalize_tensor(f1)) ** 2
            term = lin(diff)
            if self.spatial:
                term = F.interpolate(term, size=tuple(in0.shape[2:]), mode="bilinear", align_corners=False)
            else:
                term = term.mean(dim=(2, 3), keepdim=True)
            res.append(term)
        val = sum(res[1:], start=res[0])
        return (val, res) if retPerLayer else val
