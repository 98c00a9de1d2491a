"""Thin-plate-spline (TPS) sampling grids, as CP-VTON's and VITON-HD's ``TpsGridGen``, and the warp.

A regular ``grid_size`` x ``grid_size`` lattice of control points ``P_k`` spans
``[-extent, extent]^2`` in ``grid_sample``'s normalised (x, y) coordinates, stored X-major: point
``k`` is ``(a[k // grid_size], a[k % grid_size])`` with ``a = linspace(-extent, extent, grid_size)``.
``theta`` (N x 2K, K = grid_size^2) moves them to ``Q = P + (theta[:, :K], theta[:, K:])``. The spline
that maps every ``P_k`` to ``Q_k`` is

    f(p) = a_0 + a_x * x + a_y * y + sum_k w_k U(|p - P_k|^2),   U(r^2) = r^2 log r^2,  U(0) = 0,

with ``(w, a) = L^-1 [Q; 0]`` for the fixed system matrix ``L = [[K, P], [P^T, 0]]``,
``K_ij = U(|P_i - P_j|^2)`` and ``P = [1, x, y]``. It is evaluated on the output mesh
``linspace(-extent, extent, width)`` x ``linspace(-extent, extent, height)``; the result is the sampling
grid (x, y) that ``warp`` hands to ``grid_sample``.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F


def _radial_basis(dist_squared: torch.Tensor) -> torch.Tensor:
    """``U(r^2) = r^2 log r^2`` with ``U(0) = 0`` (the reference sets r^2 = 0 to 1 before the log)."""
    safe = torch.where(dist_squared == 0, torch.ones_like(dist_squared), dist_squared)
    return safe * torch.log(safe)


def control_points(grid_size: int = 5, extent: float = 1.0) -> torch.Tensor:
    """The K x 2 control points (x, y) of the regular lattice, X-major, in float64 on the CPU."""
    axis = torch.linspace(-extent, extent, grid_size, dtype=torch.float64, device="cpu")
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


@cache
def _solution_operator(grid_size: int, extent: float) -> torch.Tensor:
    """The first K columns of ``L^-1`` ((K + 3) x K, float64, CPU): maps target points to ``(w, a)``."""
    points = control_points(grid_size, extent)
    n = points.shape[0]
    kernel = _radial_basis((points[:, None, :] - points[None, :, :]).square().sum(dim=2))
    affine = torch.cat([torch.ones(n, 1, dtype=torch.float64, device="cpu"), points], dim=1)
    zeros = torch.zeros(3, 3, dtype=torch.float64, device="cpu")
    system = torch.cat([torch.cat([kernel, affine], dim=1), torch.cat([affine.T, zeros], dim=1)], dim=0)
    return torch.linalg.inv(system)[:, :n]


def tps_grid(theta: torch.Tensor, height: int, width: int, grid_size: int = 5, extent: float = 1.0) -> torch.Tensor:
    """N x 2K TPS parameters -> N x height x width x 2 sampling grid (x, y), as the reference ``TpsGridGen``.

    ``theta[:, :K]`` are the X offsets and ``theta[:, K:]`` the Y offsets of the control points. The grid
    is computed in float32 (float64 when ``theta`` is float64) and returned in ``theta``'s dtype.
    """
    n = grid_size * grid_size
    if theta.dim() != 2 or theta.shape[1] != 2 * n:
        raise ValueError(f"theta must be N x {2 * n} for grid_size {grid_size}, got {tuple(theta.shape)}")
    dtype = torch.promote_types(theta.dtype, torch.float32)
    device = theta.device
    points = control_points(grid_size, extent).to(device=device, dtype=dtype)
    solve = _solution_operator(grid_size, float(extent)).to(device=device, dtype=dtype)

    targets = theta.to(dtype).reshape(-1, 2, n) + points.T
    coefficients = targets @ solve.T

    ys = torch.linspace(-extent, extent, height, dtype=torch.float64, device="cpu").to(device, dtype)
    xs = torch.linspace(-extent, extent, width, dtype=torch.float64, device="cpu").to(device, dtype)
    mesh_y, mesh_x = torch.meshgrid(ys, xs, indexing="ij")
    mesh = torch.stack([mesh_x.reshape(-1), mesh_y.reshape(-1)], dim=1)
    dist_squared = (mesh[:, None, :] - points[None, :, :]).square().sum(dim=2)
    basis = torch.cat([_radial_basis(dist_squared), torch.ones_like(mesh[:, :1]), mesh], dim=1)

    grid = torch.einsum("pk,nck->npc", basis, coefficients)
    return grid.reshape(-1, height, width, 2).to(theta.dtype)


def warp(
    image: torch.Tensor, grid: torch.Tensor, align_corners: bool = False, padding_mode: str = "border"
) -> torch.Tensor:
    """Bilinear ``grid_sample`` of ``image`` (N x C x H x W) at ``grid`` (N x H' x W' x 2, (x, y) in [-1, 1]).

    CP-VTON's test.py calls ``F.grid_sample(c, grid, padding_mode='border')``: on torch >= 1.3 that is
    ``align_corners=False`` (the default here); torch 0.4, which it was trained with, sampled as
    ``align_corners=True``. Masks are warped with ``padding_mode="zeros"``.
    """
    return F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )
