"""Clinical ground-truth numbers from tracked material contours: length strain, area, volume.

Contours are (..., N, 2) point arrays in mm; a polygon is closed implicitly (last point joins the
first).
"""

from __future__ import annotations

import numpy as np


def polyline_length(points: np.ndarray) -> np.ndarray:
    """Length (mm) of the open polyline(s) (..., N, 2); shape (...)."""
    return np.linalg.norm(np.diff(points, axis=-2), axis=-1).sum(axis=-1)


def length_strain(points: np.ndarray, reference: int = 0) -> np.ndarray:
    """Lagrangian length strain in % of polylines (T, ..., N, 2) relative to frame ``reference``:
    100 * (L_t - L_ref) / L_ref, shape (T, ...)."""
    length = polyline_length(points)
    return 100.0 * (length - length[reference]) / length[reference]


def polygon_area(polygon: np.ndarray) -> np.ndarray:
    """Area (mm^2) enclosed by closed polygon(s) (..., M, 2) (shoelace formula, either orientation)."""
    x, y = polygon[..., 0], polygon[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y).sum(axis=-1))


def widths_across_axis(polygon: np.ndarray, base: np.ndarray, axis: np.ndarray,
                       levels: np.ndarray) -> np.ndarray:
    """(L,) widths (mm) of the closed polygon (M, 2) mm across the unit ``axis`` at the distances
    ``levels`` (L,) mm from ``base`` along it (extreme crossings of the perpendicular line); 0 where
    a level misses the polygon."""
    rel = polygon - base
    z, t = rel @ axis, rel @ np.array([-axis[1], axis[0]])
    z0, z1 = z[:, None], np.roll(z, -1)[:, None]
    t0, t1 = t[:, None], np.roll(t, -1)[:, None]
    crossing = (z0 - levels) * (z1 - levels) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        at = t0 + (levels - z0) * (t1 - t0) / (z1 - z0)
    width = np.where(crossing, at, -np.inf).max(axis=0) - np.where(crossing, at, np.inf).min(axis=0)
    return np.where(np.isfinite(width), width, 0.0)


def disc_volume(polygon: np.ndarray, base: np.ndarray, apex: np.ndarray, n_discs: int = 400) -> float:
    """Volume (mm^3) of the cavity outlined by a closed polygon (M, 2) taken as a body of
    revolution about the long axis from ``base`` (annulus midpoint) to ``apex``: the single-plane
    method of discs, sum of pi (w / 2)^2 dz over ``n_discs`` discs perpendicular to the axis,
    w the width of the polygon at each level (in the limit of many discs).
    """
    axis = np.asarray(apex, dtype=np.float64) - base
    axis /= np.linalg.norm(axis)
    z = (polygon - base) @ axis
    step = (z.max() - z.min()) / n_discs
    levels = z.min() + step * (np.arange(n_discs) + 0.5)
    width = widths_across_axis(polygon, base, axis, levels)
    return float(np.sum(np.pi * (0.5 * width) ** 2) * step)
