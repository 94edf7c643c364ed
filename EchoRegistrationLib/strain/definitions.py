"""The clinical definitions of the strain package, which the simulator also uses to make its truth:
contour length strain, polygon area, polygon widths across the long axis (method of discs), and the
names of the six apical segments.

Contours are (..., N, 2) point arrays in mm; a polygon is closed implicitly (last point joins the
first).
"""

from __future__ import annotations

import numpy as np

# The six segments of an apical view in contour order: the first wall (image left) basal -> apical,
# the second wall apical -> basal (ASE/EACVI 17-segment model, the segments an apical view shows).
SEGMENT_NAMES = {
    "A4C": ("basal inferoseptal", "mid inferoseptal", "apical septal",
            "apical lateral", "mid anterolateral", "basal anterolateral"),
    "A2C": ("basal inferior", "mid inferior", "apical inferior",
            "apical anterior", "mid anterior", "basal anterior"),
}


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
