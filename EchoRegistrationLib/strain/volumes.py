"""LV cavity area and volume by the method of discs (single plane and biplane), and EF.

The cavity of a frame is the tracked endocardial contour (annulus -> apex -> annulus) closed by the
annulus line. Its long axis runs from the annulus midpoint to the apex, the contour point farthest
from that midpoint (length L). The axis is cut into ``N_DISCS`` discs of height h = L / N_DISCS
perpendicular to it; d_i is the width of the cavity across the axis at the middle of disc i:

* single plane: V = sum pi (d_i / 2)^2 h (each disc circular);
* biplane (A4C and A2C): V = sum pi (a_i / 2) (b_i / 2) h, a_i and b_i the widths in the two
  views, h from the longer of the two axes (elliptical discs).
"""

from __future__ import annotations

import numpy as np

from .definitions import widths_across_axis

N_DISCS = 20


def long_axis(contour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(annulus midpoint, apex), each (2,) mm, of an (N, 2) contour running annulus -> annulus."""
    base = 0.5 * (contour[0] + contour[-1])
    return base, contour[int(np.argmax(np.linalg.norm(contour - base, axis=1)))]


def disc_diameters(contour: np.ndarray, n_discs: int = N_DISCS) -> tuple[np.ndarray, float]:
    """Widths (n_discs,) mm of the cavity across its long axis at the disc mid-levels (from the
    annulus midpoint to the apex), and the axis length L in mm.

    Args:
        contour: (N, 2) mm endocardial contour annulus -> apex -> annulus; the polygon is closed by
            the annulus line.
    """
    base, apex = long_axis(contour)
    length = float(np.linalg.norm(apex - base))
    levels = length * (np.arange(n_discs) + 0.5) / n_discs
    return widths_across_axis(contour, base, (apex - base) / length, levels), length


def single_plane_volume(contour: np.ndarray, n_discs: int = N_DISCS) -> float:
    """Cavity volume in ml of one (N, 2) mm contour by the single-plane method of discs."""
    diameters, length = disc_diameters(contour, n_discs)
    return float(np.pi / 4 * np.sum(diameters ** 2) * length / n_discs / 1000.0)


def biplane_volume(four_chamber: np.ndarray, two_chamber: np.ndarray, n_discs: int = N_DISCS) -> float:
    """Cavity volume in ml from the (N, 2) mm contours of an A4C and an A2C view of the same
    heart at the same phase, by the biplane method of discs."""
    a, length_a = disc_diameters(four_chamber, n_discs)
    b, length_b = disc_diameters(two_chamber, n_discs)
    return float(np.pi / 4 * np.sum(a * b) * max(length_a, length_b) / n_discs / 1000.0)


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in %: 100 (EDV - ESV) / EDV."""
    return 100.0 * (edv - esv) / edv
