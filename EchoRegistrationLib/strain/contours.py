"""Length strain of tracked material contours: GLS and the six segments of an apical view.

Definitions (EACVI/ASE/Industry task force, Voigt et al. 2015): Lagrangian strain relative to
the reference (ED) frame, in percent, negative for shortening:

    GLS(t) = 100 (L_t - L_0) / L_0,     L = length of the whole contour, annulus -> apex -> annulus.

A material contour at frame t is the ED contour with every point moved by the displacement
interpolated (bilinearly, in mm) at it. Segments are equal thirds of each wall's ED arc length;
their strain is the length strain of their piece of the endocardial contour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .definitions import SEGMENT_NAMES, length_strain
from .sampling import sample_at

N_SEGMENTS = 6
GENERIC_SEGMENT_NAMES = ("basal left", "mid left", "apical left",
                         "apical right", "mid right", "basal right")
VIEW_ALIASES = {"A4C": "A4C", "4CH": "A4C", "A2C": "A2C", "2CH": "A2C"}


def apical_view(view: str | None) -> str | None:
    """"A4C" or "A2C" for the names of those views (CAMUS "4CH" / "2CH" too), else None."""
    return None if view is None else VIEW_ALIASES.get(str(view).strip().upper())


def segment_names(view: str | None) -> tuple[str, ...]:
    """The six segment names in contour order: first wall (image left) basal -> apical, second
    wall apical -> basal. A4C: inferoseptal / anterolateral; A2C: inferior / anterior; an unknown
    view gets side names (left / right of the image)."""
    known = apical_view(view)
    return SEGMENT_NAMES[known] if known else GENERIC_SEGMENT_NAMES


def track_points(displacement: np.ndarray, points: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """(T, N, 2) mm positions in every frame of the (N, 2) reference points, moved by the
    (T, H, W, 2) mm displacement interpolated bilinearly at them."""
    return points[None] + sample_at(displacement, points, spacing)


def segment_strain(contours: np.ndarray, points_per_segment: int, reference: int) -> np.ndarray:
    """(T, 6) % length strain of the six pieces of (T, 6 n + 1, 2) contours (n intervals per
    segment) relative to frame ``reference``."""
    n = points_per_segment
    pieces = np.stack([contours[:, k * n:(k + 1) * n + 1] for k in range(N_SEGMENTS)], axis=1)
    return length_strain(pieces, reference)


def signed_peak(curve: np.ndarray) -> tuple[float, int]:
    """(value, frame) of the sample of largest magnitude, sign kept: the most negative value of a
    shortening curve, the positive peak of a lengthening (dyskinetic) one."""
    index = int(np.argmax(np.abs(curve)))
    return float(curve[index]), index
