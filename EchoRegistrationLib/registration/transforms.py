"""Trainable transformation models for optimisation-based registration.

Each model holds the parameters of B independent transforms and returns their displacement field
(B, 2, h, w) in mm on a fixed grid of any size over the same physical extent (see :mod:`.pyramid`),
in the project convention (fixed point p -> p + u(p) in the moving frame). Parameters are kept in
pixel-equivalent units of the full-resolution grid (``unit`` mm) so that one step size suits
rotations, translations and control points alike.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spatial import affine_matrix, affine_to_displacement, rigid_matrix


class RigidModel(nn.Module):
    """Rotation about the image centre and translation, per batch item.

    Args:
        batch: number of transforms B.
        unit: mm per parameter unit (the full-resolution pixel size).
        radius: mm, half the image diagonal: an angle parameter of 1 moves the image corners ~1 unit.
    """

    def __init__(self, batch: int, unit: float, radius: float):
        super().__init__()
        self.unit, self.radius = unit, radius
        self.angle = nn.Parameter(torch.zeros(batch))
        self.translation = nn.Parameter(torch.zeros(batch, 2))

    def matrix(self) -> torch.Tensor:
        """(B, 3, 3) fixed-to-moving map about the image centre (see :mod:`..spatial.affine`)."""
        return rigid_matrix(self.angle * (self.unit / self.radius), self.translation * self.unit)

    def field(self, shape: Sequence[int], spacing: Sequence[float]) -> torch.Tensor:
        return affine_to_displacement(self.matrix(), shape, spacing)


class AffineModel(RigidModel):
    """General affine map about the image centre: A = I + G, per batch item (G starts at 0)."""

    def __init__(self, batch: int, unit: float, radius: float):
        super().__init__(batch, unit, radius)
        del self.angle
        self.gradient = nn.Parameter(torch.zeros(batch, 2, 2))

    def matrix(self) -> torch.Tensor:
        eye = torch.eye(2, dtype=self.gradient.dtype, device=self.gradient.device)
        linear = eye + self.gradient * (self.unit / self.radius)
        return affine_matrix(torch.cat((linear.flatten(1), self.translation * self.unit), dim=1))


class ControlGridModel(nn.Module):
    """Free-form deformation: displacements on a coarse control grid spanning the image,
    interpolated bicubically (a smooth C1 field) to any grid over the same extent.

    Args:
        batch: number of fields B.
        grid_shape: (gh, gw) control points, the corners included.
        unit: mm per parameter unit.
    """

    def __init__(self, batch: int, grid_shape: Sequence[int], unit: float):
        super().__init__()
        self.unit = unit
        self.control = nn.Parameter(torch.zeros(batch, 2, *grid_shape))

    @staticmethod
    def grid_shape(shape: Sequence[int], spacing: Sequence[float], control_spacing: float) -> tuple[int, int]:
        """Control points needed for at most ``control_spacing`` mm between neighbours over an
        image of ``shape`` (H, W) and ``spacing`` (sx, sy) mm."""
        extent = ((shape[0] - 1) * spacing[1], (shape[1] - 1) * spacing[0])
        return tuple(max(2, math.ceil(e / control_spacing) + 1) for e in extent)

    def refine(self, grid_shape: Sequence[int]) -> None:
        """Resample the control displacements onto a finer control grid, keeping the field."""
        with torch.no_grad():
            fine = F.interpolate(self.control, size=tuple(grid_shape), mode="bicubic", align_corners=True)
        self.control = nn.Parameter(fine)

    def field(self, shape: Sequence[int], spacing: Sequence[float]) -> torch.Tensor:
        """(B, 2, H, W) mm field on a ``shape`` (H, W) grid over the image's extent: the control
        displacements interpolated bicubically, as ``F.interpolate(mode="bicubic",
        align_corners=True)`` does, written as its two separable 1D operators (two small matrix
        products: several times faster than the interpolation kernel, forward and backward)."""
        del spacing  # the control grid spans the same extent at every level
        rows = bicubic_matrix(self.control.shape[-2], int(shape[0]), self.control.device, self.control.dtype)
        cols = bicubic_matrix(self.control.shape[-1], int(shape[1]), self.control.device, self.control.dtype)
        return rows @ (self.control * self.unit) @ cols.T


@functools.lru_cache(maxsize=32)
def bicubic_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_out, n_in) matrix of 1D bicubic interpolation from ``n_in`` to ``n_out`` samples with the
    end samples aligned (``F.interpolate(mode="bicubic", align_corners=True)`` along one axis,
    borders clamped): row k holds the weights of output sample k. Cached: a registration asks for
    the same few sizes at every step. Built outside inference mode and without autograd history, so a
    matrix first made under ``torch.inference_mode`` still serves a later optimisation."""
    with torch.inference_mode(False), torch.no_grad():
        impulses = torch.eye(n_in, device=device, dtype=dtype).view(n_in, 1, n_in, 1)
        matrix = F.interpolate(impulses, size=(n_out, 1), mode="bicubic", align_corners=True)
        return matrix[:, 0, :, 0].T.contiguous()
