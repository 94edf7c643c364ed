"""Jacobian of the map x -> x + u(x) and the folding it reveals."""

from __future__ import annotations

import torch

from .coordinates import Spacing, spacing_tensor


def central_difference(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Derivative per pixel step along ``dim``, same shape as ``values``: central differences
    inside, one-sided at the two edges (as :func:`torch.gradient`, written with slices: about 3x
    faster on CPUs), 0 along an axis of length 1. Exact for linear data; differentiable. Integer
    values give float32 derivatives."""
    if not values.is_floating_point():
        values = values.float()
    n = values.shape[dim]
    if n == 1:
        return torch.zeros_like(values)
    out = torch.empty_like(values)
    out.narrow(dim, 1, n - 2).copy_(values.narrow(dim, 2, n - 2)).sub_(values.narrow(dim, 0, n - 2)).mul_(0.5)
    out.narrow(dim, 0, 1).copy_(values.narrow(dim, 1, 1)).sub_(values.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).copy_(values.narrow(dim, n - 1, 1)).sub_(values.narrow(dim, n - 2, 1))
    return out


def _derivatives(displacement: torch.Tensor, spacing: Spacing) -> tuple[torch.Tensor, torch.Tensor]:
    """(d u / dx, d u / dy) of a (B, 2, H, W) mm field, each (B, 2, H, W) in mm/mm, by
    :func:`central_difference`."""
    s = spacing_tensor(spacing, displacement)
    return central_difference(displacement, -1) / s[:, 0:1], central_difference(displacement, -2) / s[:, 1:2]


def displacement_gradient(displacement: torch.Tensor, spacing: Spacing) -> torch.Tensor:
    """(B, 2, 2, H, W) gradient of a (B, 2, H, W) mm field in mm/mm (dimensionless):
    ``[:, k, l]`` = d u_k / d x_l with k, l in (x, y), by :func:`central_difference`."""
    return torch.stack(_derivatives(displacement, spacing), dim=2)


def jacobian_determinant(displacement: torch.Tensor, spacing: Spacing) -> torch.Tensor:
    """(B, H, W) determinant of the Jacobian of x -> x + u(x) for a (B, 2, H, W) mm field.

    1 means area preserved, > 1 local expansion, <= 0 folding (the map is not invertible there).
    """
    d_dx, d_dy = _derivatives(displacement, spacing)  # (d u_x, d u_y) / dx and / dy, not stacked
    return (1 + d_dx[:, 0]) * (1 + d_dy[:, 1]) - d_dy[:, 0] * d_dx[:, 1]


def folding_fraction(displacement: torch.Tensor, spacing: Spacing,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) fraction of pixels whose Jacobian determinant is <= 0, within ``mask`` when given.

    Args:
        displacement: (B, 2, H, W) mm.
        spacing: (sx, sy) mm or (B, 2).
        mask: optional (B or 1, 1, H, W), bool or 0/1 weights; an empty mask gives nan.
    """
    folded = (jacobian_determinant(displacement, spacing) <= 0).to(displacement.dtype)
    if mask is None:
        return folded.mean(dim=(-2, -1))
    weights = mask[:, 0].to(displacement.dtype)
    return (folded * weights).sum(dim=(-2, -1)) / weights.sum(dim=(-2, -1))
