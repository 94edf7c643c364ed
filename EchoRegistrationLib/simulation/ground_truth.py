"""The simulator's ground-truth volume: the method of discs in the limit of many discs.

The clinical definitions it shares with the measurement (contour length strain, polygon area, disc
widths, segment names) live in :mod:`EchoRegistrationLib.strain.definitions`: the simulator makes
its truth with the very definitions the strain package measures.
"""

from __future__ import annotations

import numpy as np

from ..strain.definitions import widths_across_axis


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
