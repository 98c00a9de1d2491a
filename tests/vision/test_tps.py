"""TPS sampling grids (CP-VTON / VITON-HD ``TpsGridGen``) and the bilinear warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mycloset_assets.vision.tps import control_points, tps_grid, warp


def _mesh(height: int, width: int, extent: float) -> torch.Tensor:
    ys = torch.linspace(-extent, extent, height, dtype=torch.float64)
    xs = torch.linspace(-extent, extent, width, dtype=torch.float64)
    mesh_y, mesh_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([mesh_x, mesh_y], dim=-1)


def _reference_grid(theta: np.ndarray, height: int, width: int, grid_size: int, extent: float) -> np.ndarray:
    """The reference algorithm in float64 numpy: P_Y, P_X = meshgrid(a, a); r^2 = 0 -> 1 before the log."""
    axis = np.linspace(-extent, extent, grid_size)
    p_y, p_x = np.meshgrid(axis, axis)
    p_x, p_y = p_x.reshape(-1), p_y.reshape(-1)
    n = p_x.size
    d2 = (p_x[:, None] - p_x[None]) ** 2 + (p_y[:, None] - p_y[None]) ** 2
    d2[d2 == 0] = 1
    affine = np.stack([np.ones(n), p_x, p_y], axis=1)
    system = np.block([[d2 * np.log(d2), affine], [affine.T, np.zeros((3, 3))]])
    inverse = np.linalg.inv(system)[:, :n]
    grid_x, grid_y = np.meshgrid(np.linspace(-extent, extent, width), np.linspace(-extent, extent, height))
    out = np.empty((theta.shape[0], height, width, 2))
    for b, row in enumerate(theta):
        for c, (base, offsets) in enumerate([(p_x, row[:n]), (p_y, row[n:])]):
            w_a = inverse @ (base + offsets)
            r2 = (grid_x[..., None] - p_x) ** 2 + (grid_y[..., None] - p_y) ** 2
            r2[r2 == 0] = 1
            out[b, :, :, c] = w_a[n] + w_a[n + 1] * grid_x + w_a[n + 2] * grid_y + (r2 * np.log(r2)) @ w_a[:n]
    return out


@pytest.mark.parametrize("extent", [1.0, 0.9])
def test_identity_theta_gives_the_mesh(extent: float) -> None:
    grid = tps_grid(torch.zeros(2, 50), 32, 24, grid_size=5, extent=extent)
    assert grid.shape == (2, 32, 24, 2) and grid.dtype == torch.float32
    expected = _mesh(32, 24, extent).float().expand(2, -1, -1, -1)
    torch.testing.assert_close(grid, expected, atol=1e-5, rtol=0)  # float32: the U terms cancel to ~3e-6
    exact = tps_grid(torch.zeros(1, 50, dtype=torch.float64), 32, 24, grid_size=5, extent=extent)
    torch.testing.assert_close(exact[0], _mesh(32, 24, extent), atol=1e-12, rtol=0)


def test_control_points_are_x_major() -> None:
    points = control_points(3, 1.0)
    assert points.tolist()[:4] == [[-1.0, -1.0], [-1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]]
    assert torch.allclose(control_points(5, 0.9).abs().max(), torch.tensor(0.9, dtype=torch.float64))


@pytest.mark.parametrize("extent", [1.0, 0.9])
def test_control_points_move_to_their_targets(extent: float) -> None:
    """On a 5 x 5 mesh (= the control points, r^2 = 0 at every one) the spline interpolates them exactly."""
    theta = 0.2 * torch.randn(1, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = tps_grid(theta, 5, 5, grid_size=5, extent=extent)[0]
    assert torch.isfinite(grid).all()
    points = control_points(5, extent)
    for k in range(25):
        row, col = k % 5, k // 5  # point k is x = a[k // 5], y = a[k % 5]; the grid is indexed [y, x]
        target = points[k] + torch.stack([theta[0, k], theta[0, 25 + k]])
        torch.testing.assert_close(grid[row, col], target, atol=1e-10, rtol=0)


def test_affine_theta_is_reproduced() -> None:
    theta = torch.zeros(1, 50, dtype=torch.float64)
    theta[0, :25] = 0.1
    theta[0, 25:] = -0.05 * control_points(5, 1.0)[:, 1]
    grid = tps_grid(theta, 16, 12)
    mesh = _mesh(16, 12, 1.0)
    torch.testing.assert_close(grid[0, ..., 0], mesh[..., 0] + 0.1, atol=1e-12, rtol=0)
    torch.testing.assert_close(grid[0, ..., 1], 0.95 * mesh[..., 1], atol=1e-12, rtol=0)


@pytest.mark.parametrize(("grid_size", "extent"), [(5, 1.0), (5, 0.9), (3, 1.0)])
def test_matches_the_reference_algorithm(grid_size: int, extent: float) -> None:
    n = grid_size**2
    theta = 0.3 * torch.randn(3, 2 * n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want = _reference_grid(theta.numpy(), 20, 15, grid_size, extent)
    got = tps_grid(theta, 20, 15, grid_size=grid_size, extent=extent)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10, rtol=0)
    np.testing.assert_allclose(tps_grid(theta.float(), 20, 15, grid_size, extent).numpy(), want, atol=5e-5)


def test_zero_distance_has_finite_gradient() -> None:
    theta = torch.zeros(1, 50, requires_grad=True)
    tps_grid(theta, 5, 5).sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_rejects_a_theta_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="N x 50"):
        tps_grid(torch.zeros(1, 18), 8, 8)


def test_warp_is_grid_sample_with_border_padding() -> None:
    generator = torch.Generator().manual_seed(2)
    image = torch.randn(2, 3, 16, 12, generator=generator)
    grid = 1.2 * torch.rand(2, 10, 8, 2, generator=generator) - 0.6
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(warp(image, grid), expected, atol=0, rtol=0)
    zeros = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(warp(image, grid, align_corners=True, padding_mode="zeros"), zeros, atol=0, rtol=0)


def test_identity_grid_with_align_corners_true_reproduces_the_image() -> None:
    image = torch.randn(1, 3, 16, 12, generator=torch.Generator().manual_seed(3))
    grid = tps_grid(torch.zeros(1, 50, dtype=torch.float64), 16, 12)
    torch.testing.assert_close(warp(image, grid, align_corners=True), image, atol=1e-5, rtol=0)
