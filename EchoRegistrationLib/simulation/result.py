"""The result of a simulation: the sequence with its exact motion and clinical ground truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..sequence import EchoSequence

LABEL_INVERSE_STRIDE = 2  # pre-images for the labels are solved on every 2nd pixel, then interpolated


class MotionModel(Protocol):
    """An analytic map from ED (activation 0) positions to positions at an activation."""

    def path(self, points: np.ndarray) -> Callable[[float], np.ndarray]:
        """For (N, 2) ED points, a function activation -> (N, 2) positions."""

    def forward(self, points: np.ndarray, activation: float) -> np.ndarray:
        """(..., 2) ED points -> their positions at ``activation``."""

    def inverse(self, points: np.ndarray, activation: float) -> np.ndarray:
        """(..., 2) points at ``activation`` -> their ED positions."""


def pixel_positions(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """(H, W, 2) float64 mm positions (j * sx, i * sy) of the pixel centres."""
    rows, cols = np.mgrid[0:int(shape[0]), 0:int(shape[1])]
    return np.stack([cols * float(spacing[0]), rows * float(spacing[1])], axis=-1).astype(np.float64)


def displacement_fields(motion: MotionModel, positions: np.ndarray,
                        activation: np.ndarray) -> np.ndarray:
    """(T, H, W, 2) float32 mm: u_t(p) = position at activation[t] of the ED pixel p, minus p
    (exactly 0 at activation 0)."""
    flat = positions.reshape(-1, 2)
    at = motion.path(flat)
    return np.stack([(at(f) - flat).reshape(positions.shape) if f else np.zeros(positions.shape)
                     for f in activation]).astype(np.float32)


def pulled_back_labels(motion: MotionModel, ed_labels: Callable[[np.ndarray], np.ndarray],
                       positions: np.ndarray, activation: float) -> np.ndarray:
    """(H, W) uint8 labels at ``activation``: the ED label of each pixel's ED pre-image.

    Pre-images are solved exactly on every ``LABEL_INVERSE_STRIDE``-th pixel (and the last row and
    column) and interpolated bilinearly in between; the inverse map is smooth, so this moves label
    boundaries by well under 0.1 mm while cutting the cost by the stride squared.
    """
    if activation == 0:
        return ed_labels(positions)
    h, w = positions.shape[:2]
    rows = np.unique(np.r_[np.arange(0, h, LABEL_INVERSE_STRIDE), h - 1])
    cols = np.unique(np.r_[np.arange(0, w, LABEL_INVERSE_STRIDE), w - 1])
    coarse = motion.inverse(positions[np.ix_(rows, cols)], activation)
    pre_images = _interpolate_rows_cols(coarse, rows, cols, h, w)
    return ed_labels(pre_images)


def _interpolate_rows_cols(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, h: int,
                           w: int) -> np.ndarray:
    """Separable linear interpolation of (R, C, 2) samples at increasing integer ``rows`` x
    ``cols`` (first and last included) onto the full (h, w, 2) grid."""
    def neighbours(samples, n):
        full = np.arange(n)
        upper = np.clip(np.searchsorted(samples, full, side="right"), 1, len(samples) - 1)
        frac = (full - samples[upper - 1]) / (samples[upper] - samples[upper - 1])
        return upper - 1, upper, frac

    low, high, frac = neighbours(rows, h)
    along_rows = values[low] * (1.0 - frac)[:, None, None] + values[high] * frac[:, None, None]
    low, high, frac = neighbours(cols, w)
    return along_rows[:, low] * (1.0 - frac)[None, :, None] + along_rows[:, high] * frac[None, :, None]


@dataclass(eq=False)
class SimulatedSequence:
    """A simulated echo sequence with its exact motion and clinical ground truth.

    Attributes:
        sequence: the B-mode frames (T, H, W) float32 0..255 with spacing, frame times, per-frame
            labels (CAMUS codes), ED (0) and ES indices and metadata (all simulation parameters).
        displacement: (T, H, W, 2) float32 mm, the true field from frame 0 (ED) to frame t in the
            project convention: the frame-0 point p is at p + u_t(p) in frame t; u_0 = 0.
        activation: (T,) fraction of the ES deformation shown by each frame (0 at ED, 1 at ES).
        gls_endo, gls_mid: (T,) % global longitudinal strain of the endocardial and mid-wall
            material contours (annulus -> apex -> annulus) relative to ED; negative = shortening.
        segmental_strain: (T, 6) % length strain of the six segments of the endocardial contour
            (equal thirds by ED arc length of each wall), ordered basal -> apical on the first wall,
            then apical -> basal on the second (see ``segment_names``).
        segment_names: the six segment names.
        lv_area: (T,) mm^2, area of the LV cavity (endocardium closed by the annulus line).
        lv_volume: (T,) ml, the cavity as a body of revolution about its long axis (the limit of
            the single-plane method of discs).
        ef: % ejection fraction, 100 (V_ED - V_ES) / V_ED.
        endo_contour, mid_contour: (T, N, 2) mm material points (x, y), the first annulus point
            first, the apex in the middle.
        landmarks_ed: (3, 2) mm: first annulus point, apex, second annulus point at ED.
        myocardium_ed: (H, W) bool myocardium mask at ED.
        motion: the analytic map (``forward``, ``inverse``, ``path``) behind ``displacement``.

    Fields that do not apply to a phantom (e.g. volumes of the short-axis ring) are NaN; the
    phantom's docstring says what its fields hold.
    """

    sequence: EchoSequence
    displacement: np.ndarray
    activation: np.ndarray
    gls_endo: np.ndarray
    gls_mid: np.ndarray
    segmental_strain: np.ndarray
    segment_names: tuple[str, ...]
    lv_area: np.ndarray
    lv_volume: np.ndarray
    ef: float
    endo_contour: np.ndarray
    mid_contour: np.ndarray
    landmarks_ed: np.ndarray
    myocardium_ed: np.ndarray
    motion: MotionModel = field(repr=False)

    def displacement_between(self, reference: int, target: int) -> np.ndarray:
        """(H, W, 2) float32 mm field from frame ``reference`` to frame ``target``: the point p of
        frame ``reference`` is at p + u(p) in frame ``target`` (exact, from the analytic map)."""
        n = self.sequence.n_frames
        for name, index in (("reference", reference), ("target", target)):
            if not 0 <= int(index) < n:
                raise IndexError(f"{name} frame {index} is not in 0..{n - 1}")
        if self.activation[reference] == 0:
            return self.displacement[target].copy()
        positions = pixel_positions(self.sequence.frame_shape, self.sequence.spacing)
        ed_points = self.motion.inverse(positions, float(self.activation[reference]))
        moved = self.motion.forward(ed_points, float(self.activation[target]))
        return (moved - positions).astype(np.float32)
