"""VITON-HD geometric matching module (Choi et al., "VITON-HD", CVPR 2021), stage 2 of the try-on.

Two CNNs extract features of the person representation (upper-cloth mask, pose, agnostic image: 7
channels) and of the cloth (3 channels) at 256x192; the features are unit-normalised over channels and
correlated position by position; a regression CNN turns the correlation volume into 50 thin-plate-spline
offsets (tanh) of a 5x5 control grid, and the TPS transform gives the sampling grid at the full
1024x768 resolution, its mesh and control points spanning [-0.9, 0.9].

Reference: shadow2496/VITON-HD@02afa4b, networks.py (`GMM(opt, inputA_nc=7, inputB_nc=3)` with load size
1024x768 and grid size 5). The layer layout is CP-VTON's; the input channels, the correlation layout, the
normalisation (`F.normalize`) and the TPS extent differ.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mycloset_assets.vision.tps import tps_grid

TPS_EXTENT = 0.9  # VITON-HD's TpsGridGen spans linspace(-0.9, 0.9) for the mesh and the control points


class FeatureExtraction(nn.Module):
    """Strided conv / ReLU / BatchNorm stages (4x4, stride 2), then two 3x3 convs at 512 channels."""

    def __init__(self, input_nc: int, ngf: int = 64, num_layers: int = 4) -> None:
        super().__init__()
        channels = [input_nc] + [min(ngf * 2**i, 512) for i in range(num_layers)]
        layers: list[nn.Module] = []
        for in_ch, out_ch in pairwise(channels):
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(out_ch),
            ]
        layers += [nn.Conv2d(channels[-1], 512, kernel_size=3, padding=1), nn.ReLU(), nn.BatchNorm2d(512)]
        layers += [nn.Conv2d(512, 512, kernel_size=3, padding=1), nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """N x input_nc x H x W -> N x 512 x H/2^num_layers x W/2^num_layers."""
        return self.model(x)


class FeatureCorrelation(nn.Module):
    """Dot products of every position of A with every position of B.

    Output channel k = x * h + y indexes the position (y, x) of A (column-major); the spatial axes index B.
    """

    def forward(self, feature_a: Tensor, feature_b: Tensor) -> Tensor:
        """Two N x C x H x W maps -> N x (W*H) x H x W correlation volume."""
        b, c, h, w = feature_a.shape
        feature_a = feature_a.permute(0, 3, 2, 1).reshape(b, w * h, c)
        feature_b = feature_b.reshape(b, c, h * w)
        return torch.bmm(feature_a, feature_b).reshape(b, w * h, h, w)


class FeatureRegression(nn.Module):
    """Conv / BatchNorm / ReLU stages down to 64 channels, a linear layer to the TPS offsets, tanh."""

    def __init__(self, input_nc: int = 512, output_size: int = 6) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(input_nc, 512, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(512),
            nn.ReLU(),
            nn.Conv2d(512, 256, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, 128, kernel_size=3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        )
        self.linear = nn.Linear(64 * (input_nc // 16), output_size)

    def forward(self, x: Tensor) -> Tensor:
        """N x input_nc x H x W correlation -> N x output_size offsets in (-1, 1)."""
        x = self.conv(x)
        return torch.tanh(self.linear(x.reshape(x.size(0), -1)))


class GMM(nn.Module):
    """Geometric matching: (person representation, cloth) at 256x192 -> (theta, sampling grid).

    ``load_height`` x ``load_width`` is the resolution of the output grid; the model is fed inputs a
    quarter of that size, so the correlation has ``(load_width // 64) * (load_height // 64)`` channels.
    """

    def __init__(
        self,
        input_a_nc: int = 7,
        input_b_nc: int = 3,
        load_height: int = 1024,
        load_width: int = 768,
        grid_size: int = 5,
    ) -> None:
        super().__init__()
        self.load_height = load_height
        self.load_width = load_width
        self.grid_size = grid_size
        self.extractionA = FeatureExtraction(input_a_nc, ngf=64, num_layers=4)
        self.extractionB = FeatureExtraction(input_b_nc, ngf=64, num_layers=4)
        self.correlation = FeatureCorrelation()
        self.regression = FeatureRegression(
            input_nc=(load_width // 64) * (load_height // 64), output_size=2 * grid_size**2
        )

    def forward(self, input_a: Tensor, input_b: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(theta, grid)``: N x 50 TPS offsets (25 x then 25 y) and the N x H x W x 2 (x, y) grid.

        The grid is for ``F.grid_sample(cloth, grid, padding_mode="border")`` with the default
        ``align_corners=False``, as the reference's test.py warps the full-resolution cloth.
        """
        feature_a = F.normalize(self.extractionA(input_a), dim=1)
        feature_b = F.normalize(self.extractionB(input_b), dim=1)
        theta = self.regression(self.correlation(feature_a, feature_b))
        grid = tps_grid(theta, self.load_height, self.load_width, grid_size=self.grid_size, extent=TPS_EXTENT)
        return theta, grid
