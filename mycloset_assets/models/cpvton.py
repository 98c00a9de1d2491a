"""CP-VTON (Wang et al., ECCV 2018): Geometric Matching Module and Try-On Module.

GMM: two feature extractors (person representation, in-shop cloth), L2-normalised features, a dense
correlation volume, a regression network to the 2 x grid_size^2 offsets of a thin-plate spline, and the TPS
sampling grid that warps the cloth onto the person. TOM: a 6-level U-Net whose decoder upsamples
bilinearly and applies a 3x3 convolution; its 4 raw output channels are the rendered person (tanh) and the
composition mask (sigmoid). Reference: sergeywong/cp-vton networks.py.
"""

from __future__ import annotations

import torch
from torch import nn

from mycloset_assets.vision.tps import tps_grid


class FeatureExtraction(nn.Module):
    """Four stride-2 4x4 convolutions and two 3x3 convolutions, each conv followed by ReLU then BatchNorm.

    Channels double from ``ngf`` up to 512; the last 3x3 conv has a ReLU and no BatchNorm.
    """

    def __init__(self, input_nc: int, ngf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ngf, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(ngf),
        ]
        for i in range(n_layers):
            in_ch, out_ch = min(2**i * ngf, 512), min(2 ** (i + 1) * ngf, 512)
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            layers += [nn.BatchNorm2d(out_ch)]
        layers += [nn.Conv2d(512, 512, kernel_size=3, stride=1, padding=1), nn.ReLU(), nn.BatchNorm2d(512)]
        layers += [nn.Conv2d(512, 512, kernel_size=3, stride=1, padding=1), nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class FeatureL2Norm(nn.Module):
    """Divide each feature vector by ``sqrt(sum over channels of its square + 1e-6)``."""

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        norm = torch.sqrt(feature.square().sum(dim=1, keepdim=True) + 1e-6)
        return feature / norm


class FeatureCorrelation(nn.Module):
    """Dense correlation: channel ``j * h + i`` at (y, x) is ``<A[:, :, i, j], B[:, :, y, x]>``.

    The reference orders the channels by position of ``A`` column-major (its ``transpose(2, 3)``).
    """

    def forward(self, feature_a: torch.Tensor, feature_b: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feature_a.shape
        correlation = torch.einsum("bcij,bcyx->bjiyx", feature_a, feature_b)
        return correlation.reshape(b, w * h, h, w)


class FeatureRegression(nn.Module):
    """Conv-BN-ReLU x 4 (two stride-2 4x4, two 3x3), flatten, linear, tanh.

    The reference flattens with ``view``, which fails on current torch: its correlation volume is
    channels-last in memory, and so is the convolution output. ``flatten`` gives the same NCHW order.
    """

    def __init__(self, input_nc: int = 512, output_dim: int = 6, linear_in: int = 64 * 4 * 3) -> None:
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
        self.linear = nn.Linear(linear_in, output_dim)
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).flatten(1)
        return self.tanh(self.linear(x))


class GMM(nn.Module):
    """Geometric Matching Module: ``forward(agnostic, cloth) -> (grid, theta)``.

    ``grid`` (N x height x width x 2) is the TPS sampling grid (x, y) of ``mycloset_assets.vision.tps``
    (extent 1.0) and ``theta`` (N x 2 grid_size^2) its control-point offsets, X then Y. The input size must
    be ``height`` x ``width``, multiples of 64 (the regression's linear layer is sized for it).
    """

    def __init__(
        self,
        input_nc_a: int = 22,
        input_nc_b: int = 3,
        height: int = 256,
        width: int = 192,
        grid_size: int = 5,
    ) -> None:
        super().__init__()
        self.height, self.width, self.grid_size = height, width, grid_size
        self.extractionA = FeatureExtraction(input_nc_a, ngf=64, n_layers=3)
        self.extractionB = FeatureExtraction(input_nc_b, ngf=64, n_layers=3)
        self.l2norm = FeatureL2Norm()
        self.correlation = FeatureCorrelation()
        self.regression = FeatureRegression(
            input_nc=(height // 16) * (width // 16),
            output_dim=2 * grid_size**2,
            linear_in=64 * (height // 64) * (width // 64),
        )

    def forward(self, agnostic: torch.Tensor, cloth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_a = self.l2norm(self.extractionA(agnostic))
        feature_b = self.l2norm(self.extractionB(cloth))
        theta = self.regression(self.correlation(feature_a, feature_b))
        grid = tps_grid(theta, self.height, self.width, grid_size=self.grid_size, extent=1.0)
        return grid, theta


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``x -> [x, up(submodule(down(x)))]``; the outermost level returns ``up(...)`` only.

    down = LeakyReLU(0.2), 4x4 stride-2 conv, InstanceNorm (outermost: the conv only; innermost: no norm);
    up = ReLU, bilinear x2 upsampling, 3x3 conv, InstanceNorm. (The reference's in-place LeakyReLU also
    rewrites the skip input; the parent's ReLU that follows the concatenation makes that invisible.)
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1)
        up_in = inner_nc if innermost else 2 * inner_nc
        up = [
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(up_in, outer_nc, kernel_size=3, stride=1, padding=1),
            nn.InstanceNorm2d(outer_nc),
        ]
        if outermost:
            layers = [downconv, submodule, *up]
        elif innermost:
            layers = [nn.LeakyReLU(0.2), downconv, *up]
        else:
            layers = [nn.LeakyReLU(0.2), downconv, nn.InstanceNorm2d(inner_nc), submodule, *up]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """CP-VTON's TOM: ``UnetGenerator(25, 4, 6, ngf=64, norm_layer=nn.InstanceNorm2d)``.

    ``num_downs`` stride-2 levels (the input size must be a multiple of ``2 ** num_downs``); convs have
    biases and InstanceNorm has no affine parameters. ``forward`` returns the raw ``output_nc`` channels
    (the output itself is instance-normalised).
    """

    def __init__(self, input_nc: int = 25, output_nc: int = 4, num_downs: int = 6, ngf: int = 64) -> None:
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
