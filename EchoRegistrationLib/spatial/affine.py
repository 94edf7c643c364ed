"""Rigid and affine maps in physical coordinates about the image centre, and their dense fields.

A map is a (B, 3, 3) homogeneous matrix M = [[A, t], [0, 1]] acting on centred physical positions:
it maps a FIXED point x (mm) to its MOVING point

    x' = A (x - c) + c + t,        c = image centre in mm,

the same direction as every displacement field here (``u(x) = x' - x``), and as ITK's
``AffineTransform`` with centre c. Composition is the matrix product: first M_a then M_b is
``M_b @ M_a``; the inverse map is ``torch.linalg.inv(M)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .coordinates import Spacing, centred_positions


def _homogeneous(linear: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) from (B, 2, 2) linear parts and (B, 2) translations."""
    top = torch.cat((linear, translation[..., None]), dim=-1)
    bottom = torch.zeros_like(top[:, :1])
    bottom[:, 0, 2] = 1
    return torch.cat((top, bottom), dim=1)


def rigid_matrix(angle: torch.Tensor | float,
                 translation: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """(B, 3, 3) rigid map: rotation by ``angle`` about the image centre, then ``translation``.

    Args:
        angle: (B,) or scalar, radians. Positive angles turn the +x (lateral) axis towards +y
            (depth): clockwise on screen, where depth points down.
        translation: (B, 2) or (2,) mm, (tx, ty).
    dtype and device follow ``angle`` when it is a tensor, else ``translation``; differentiable.
    """
    like = angle if isinstance(angle, torch.Tensor) else torch.as_tensor(translation)
    angle = torch.as_tensor(angle, dtype=like.dtype, device=like.device).reshape(-1)
    translation = torch.as_tensor(translation, dtype=like.dtype, device=like.device).reshape(-1, 2)
    batch = max(len(angle), len(translation))
    angle, translation = angle.expand(batch), translation.expand(batch, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    linear = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)
    return _homogeneous(linear, translation)


def affine_matrix(parameters: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) affine map from (B, 6) or (6,) parameters in ITK's order (a11, a12, a21, a22, tx,
    ty): A = [[a11, a12], [a21, a22]], t in mm. Identity: (1, 0, 0, 1, 0, 0). Differentiable."""
    p = parameters.reshape(-1, 6)
    return _homogeneous(p[:, :4].reshape(-1, 2, 2), p[:, 4:])


def rigid_parameters(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Angle (B,) rad and translation (B, 2) mm of (B, 3, 3) maps; inverse of :func:`rigid_matrix`.

    For a non-rigid A the angle is that of the closest rotation (least squares):
    atan2(a21 - a12, a11 + a22).
    """
    a = matrix[:, :2, :2]
    angle = torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])
    return angle, matrix[:, :2, 2]


def affine_to_displacement(matrix: torch.Tensor, shape: Sequence[int],
                           spacing: Spacing) -> torch.Tensor:
    """(B, 2, H, W) mm displacement of x -> A (x - c) + c + t on a fixed grid of ``shape`` (H, W):
    u(x) = (A - I)(x - c) + t, c = image centre in mm. ``matrix`` is (B, 3, 3)."""
    centred = centred_positions(shape, spacing, matrix)
    gradient = matrix[:, :2, :2] - torch.eye(2, dtype=matrix.dtype, device=matrix.device)
    displacement = gradient @ centred.flatten(2) + matrix[:, :2, 2:]
    return displacement.reshape(-1, 2, *centred.shape[-2:])


def fit_affine(displacement: torch.Tensor, spacing: Spacing,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, 3) least-squares affine map closest to a (B, 2, H, W) mm field (within ``mask``, an
    optional (B or 1, 1, H, W) bool or weight map); exact for the field of an affine map.
    Inverse of :func:`affine_to_displacement`; differentiable."""
    shape = displacement.shape[-2:]
    centred = centred_positions(shape, spacing, displacement)
    centred = centred.expand(displacement.shape[0], -1, -1, -1).flatten(2)
    design = torch.cat((centred, torch.ones_like(centred[:, :1])), dim=1)  # (B, 3, N)
    weights = torch.ones_like(design[:, :1]) if mask is None else mask.flatten(2).to(design.dtype)
    normal = (design * weights) @ design.transpose(1, 2)  # (B, 3, 3)
    rhs = (design * weights) @ displacement.flatten(2).transpose(1, 2)  # (B, 3, 2)
    solution = torch.linalg.solve(normal, rhs).transpose(1, 2)  # (B, 2, 3): [A - I | t]
    eye = torch.eye(2, dtype=displacement.dtype, device=displacement.device)
    return _homogeneous(solution[:, :, :2] + eye, solution[:, :, 2])
