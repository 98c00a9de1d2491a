"""VITON-HD geometric matching module (Choi et al., "VITON-HD", CVPR 2021), stage 2 of the try-on.

Two CNNs extract features of the person representation (upper-cloth mask, pose, agnostic image: 7
channels) and of the cloth (3 channels) at 256x192; the features are unit-normalised over channels and
correlated position by position; a regression CNN turns the correlation volume into 50 thin-plate-spline
offsets (tanh) of a 5x5 control grid, and the TPS transform gives the sampling grid at the full
1024x768 resolution, its mesh and control points spanning [-0.9, 0.9].

Reference: shadow2496/VITON-HD@02afa4b, networks.py (`GMM(opt, inputA_nc=7, inputB_nc=3)` with load size
1024x768 and grid size 5). The feature extraction, correlation and regression blocks are CP-VTON's (reused
from ``cpvton``); the input channels, the normalisation (`F.normalize`) and the TPS extent differ.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mycloset_assets.vision.tps import tps_grid

from .cpvton import FeatureCorrelation, FeatureExtraction, FeatureRegression

TPS_EXTENT = 0.9  # VITON-HD's TpsGridGen spans linspace(-0.9, 0.9) for the mesh and the control points


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
        self.extractionA = FeatureExtraction(input_a_nc, ngf=64, n_layers=3)
        self.extractionB = FeatureExtraction(input_b_nc, ngf=64, n_layers=3)
        self.correlation = FeatureCorrelation()
        self.regression = FeatureRegression(
            input_nc=(load_width // 64) * (load_height // 64),
            output_dim=2 * grid_size**2,
            linear_in=64 * (load_height // 256) * (load_width // 256),
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
