"""Lagrangian strain fields of a displacement on the reference (ED) grid.

With the deformation gradient F = I + du/dX (X = reference position, mm/mm):

* Green-Lagrange strain tensor E = (F^T F - I) / 2;
* strain along a unit reference direction d: E_dd = d^T E d (Green-Lagrange) and the engineering
  (Lagrangian, "clinical") strain e_d = |F d| - 1 = sqrt(1 + 2 E_dd) - 1, the relative change of
  length of a small segment along d. Both are 0 for any rigid motion.

Longitudinal strain uses the local wall direction of :class:`~.myocardium.Myocardium` (the
mid-wall tangent), transverse strain the direction across the wall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..spatial import displacement_gradient, field_to_torch


def deformation_gradient(displacement: np.ndarray, spacing: Sequence[float],
                         mask: np.ndarray) -> np.ndarray:
    """(T, P, 2, 2) float64 deformation gradients F = I + du/dX (central differences in mm) of a
    (T, H, W, 2) mm field at the P pixels of the (H, W) bool ``mask`` (``np.nonzero`` order);
    ``[..., k, l]`` = d x_k / d X_l with k, l in (x, y)."""
    gradient = displacement_gradient(field_to_torch(displacement), tuple(float(s) for s in spacing))
    rows, cols = np.nonzero(mask)
    at_pixels = gradient[..., torch.from_numpy(rows), torch.from_numpy(cols)]  # (T, 2, 2, P)
    return at_pixels.permute(0, 3, 1, 2).double().numpy() + np.eye(2)


def green_lagrange(deformation: np.ndarray) -> np.ndarray:
    """(..., 2, 2) Green-Lagrange tensors E = (F^T F - I) / 2 of deformation gradients F."""
    return 0.5 * (np.swapaxes(deformation, -1, -2) @ deformation - np.eye(2))


def directional_green_lagrange(tensor: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(T, P) E_dd = d^T E d of (T, P, 2, 2) tensors along (P, 2) unit directions."""
    return np.einsum("pk,tpkl,pl->tp", direction, tensor, direction)


def engineering_from_green_lagrange(strain: np.ndarray) -> np.ndarray:
    """Engineering strain sqrt(1 + 2 E) - 1 of Green-Lagrange strain E along one direction."""
    return np.sqrt(np.maximum(1.0 + 2.0 * strain, 0.0)) - 1.0


def green_lagrange_from_engineering(strain: np.ndarray) -> np.ndarray:
    """Green-Lagrange strain e + e^2 / 2 of engineering strain e along one direction."""
    return strain + 0.5 * strain ** 2


def transverse_direction(direction: np.ndarray) -> np.ndarray:
    """(..., 2) unit vectors turned by 90 degrees from (..., 2) longitudinal directions."""
    return np.stack([direction[..., 1], -direction[..., 0]], axis=-1)


def wall_strain_maps(deformation: np.ndarray, direction: np.ndarray,
                     mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Engineering longitudinal and transverse strain maps in %.

    Args:
        deformation: (T, P, 2, 2) deformation gradients at the mask pixels
            (:func:`deformation_gradient`).
        direction: (H, W, 2) unit longitudinal directions.
        mask: (H, W) bool region (the myocardium) with P pixels; maps are NaN outside it.

    Returns:
        (longitudinal, transverse), each (T, H, W) float32 %.
    """
    tensor = green_lagrange(deformation)
    longitudinal = direction[mask]
    maps = []
    for d in (longitudinal, transverse_direction(longitudinal)):
        strain = np.full((len(deformation),) + mask.shape, np.nan, dtype=np.float32)
        strain[:, mask] = 100.0 * engineering_from_green_lagrange(directional_green_lagrange(tensor, d))
        maps.append(strain)
    return maps[0], maps[1]


def rereferenced_stretch(strain: np.ndarray, reference: int) -> np.ndarray:
    """(T, ...) % engineering strain of each material fibre relative to frame ``reference``
    instead of the frame it was measured from: (1 + e_t) / (1 + e_ref) - 1, the ratio of the
    fibre's stretches (exact for the fibre's own direction; frame ``reference`` becomes 0).

    Args:
        strain: (T, ...) % engineering strain along fixed material directions (NaN kept).
        reference: the frame to measure from.
    """
    stretch = 1.0 + np.asarray(strain) / 100.0
    return (100.0 * (stretch / stretch[reference] - 1.0)).astype(np.asarray(strain).dtype)
