"""Analytic, folding-free motion of the apical-view phantom from ED to any activation.

In the LV frame of :class:`~.apical_geometry.ApicalGeometry` (s along the long axis from the
apex, r across it) the map from an ED point to its position at activation f (0 at ED, 1 at ES)
is the composition of two one-dimensional monotone maps:

1. transverse: ``r -> r1 = r + f * T(r; s)`` at fixed s. At each level s, T moves the
   endocardium inward by ``radial * R_endo(s)`` (times the segment's kept fraction, faded to zero
   at the apex and beyond the annulus), moves the epicardium so that the myocardial volume of that
   level (a body of revolution, also shortening by the local longitudinal strain) is conserved,
   which thickens the wall, and relaxes to zero displacement ``FAR_DISTANCE`` mm outside the
   epicardium. T is a sum of softplus ramps: piecewise linear in r with smooth knots at the
   endocardium, epicardium and far boundary, with positive slopes everywhere.
2. longitudinal: ``s -> s1 = s + f * A * W(r1) * I(s)`` at fixed r1, where I is the integral of
   the longitudinal strain profile of the wall side of r1 (septal/inferior for r1 < 0): zero above
   the epicardial apex, thickening across the apical cap, shortening of the apical, mid and basal
   segments (each scaled by its kept fraction), stretching of the atrium that brings the
   displacement back to zero at the atrial roof. W fades the motion far from the heart laterally.

Each step has a triangular Jacobian with a positive diagonal, so the map is a smooth
diffeomorphism (Jacobian determinant > 0 everywhere) as long as every slope is positive at ES
(checked at construction; the slopes at f < 1 lie between 1 and those at ES). The inverse is two
safeguarded scalar Newton solves (s first, then r).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .apical_geometry import ApicalGeometry
from .smooth import sigmoid, smooth_max, smooth_min, softplus

SEGMENT_WEIGHTS = (1.2, 1.0, 0.85)  # relative longitudinal shortening: apical, mid, basal
APICAL_CAP_STRETCH = 0.5             # thickening of the apical cap relative to A
LEVEL_WIDTH = 2.5                    # mm, smoothness of level (segment) boundaries along s
KNOT_WIDTH = 1.5                     # mm, smoothness of the endocardial / epicardial knots in r
FAR_DISTANCE = 20.0                  # mm beyond the epicardium where the transverse motion ends
FAR_WIDTH = 6.0                      # mm
SIDE_WIDTH = 3.0                     # mm, blend between the two walls across the long axis
LATERAL_REACH = 12.0                 # mm beyond the epicardium reached by the longitudinal motion
LATERAL_WIDTH = 8.0                  # mm
MIN_CAVITY_RADIUS = 2.0              # mm, floor of the endocardial knot near the apex
MIN_WALL = 3.0                       # mm, floor of the knot wall thickness
SQUARE_WIDTH = 4.0                   # mm^2, smoothness of the floors
MIN_SLOPE = 0.05                     # smallest allowed stretch of either 1D map at ES
NEWTON_TOLERANCE = 1e-7              # mm
NEWTON_ITERATIONS = 100
SEARCH_RANGE = 100.0                 # mm, bound on any displacement of the map


class ApicalMotion:
    """Ground-truth motion of an apical view.

    Args:
        geometry: the ED anatomy.
        longitudinal: A, the longitudinal shortening amplitude at ES (strain of the mid segments,
            e.g. 0.16).
        radial: endocardial radial fractional shortening at ES (e.g. 0.3).
        kept: (2, 3) fraction of normal motion kept per wall (row 0: wall at r < 0, row 1: r > 0)
            and level (apical, mid, basal).
        levels: (apical/mid, mid/basal) boundaries along s in mm.
    """

    def __init__(self, geometry: ApicalGeometry, longitudinal: float, radial: float,
                 kept: np.ndarray, levels: tuple[float, float]):
        self.geometry = geometry
        self.longitudinal, self.radial = float(longitudinal), float(radial)
        self.kept = np.asarray(kept, dtype=np.float64).reshape(2, 3)
        self.levels = (float(levels[0]), float(levels[1]))
        g = geometry
        L = g.lv_length
        self.knots = np.array([-g.apical_thickness, 0.0, *self.levels, L, L + g.la_length])
        spans = np.diff(self.knots[:5])  # apical cap, apical, mid, basal
        values = []
        for k_apical, k_mid, k_basal in self.kept:
            wall = [APICAL_CAP_STRETCH * k_apical, -SEGMENT_WEIGHTS[0] * k_apical,
                    -SEGMENT_WEIGHTS[1] * k_mid, -SEGMENT_WEIGHTS[2] * k_basal]
            atrium = -float(np.dot(wall, spans)) / g.la_length
            values.append([*wall, atrium, 0.0])
        self.jumps = np.diff(np.concatenate([np.zeros((2, 1)), np.array(values)], axis=1), axis=1)
        epi_half_width = g.epi_axes[1]
        extra_left = g.rv_width if g.view == "A4C" else 0.0
        self.reach = (epi_half_width + LATERAL_REACH + extra_left, epi_half_width + LATERAL_REACH)
        self._check_monotone()

    def _check_monotone(self) -> None:
        """Raise ValueError unless both one-dimensional maps increase at ES at every level."""
        g = self.geometry
        s = np.linspace(-g.apical_thickness - 20.0, g.lv_length + g.la_length + 20.0, 4001)
        _, slope, changes, _ = self._transverse(s)
        transverse = 1.0 + slope + np.concatenate([np.zeros((2, 1) + s.shape),
                                                   np.cumsum(changes, axis=1)], axis=1)
        longitudinal = 1.0 + self.longitudinal * self.longitudinal_profile(s)[1]
        if transverse.min() < MIN_SLOPE or longitudinal.min() < MIN_SLOPE:
            raise ValueError("the requested motion folds the tissue (a slope of the map reaches "
                             f"{min(transverse.min(), longitudinal.min()):.2f}); reduce the strain "
                             "or the dysfunction")

    # ------------------------------------------------------------------ longitudinal profile
    def longitudinal_profile(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitudinal strain per unit A at levels s (N,) and its integral from -inf to s (mm per
        unit A), each (2, N): row 0 for the wall at r < 0, row 1 for r > 0."""
        x = (s[None] - self.knots[:, None]) / LEVEL_WIDTH
        return self.jumps @ (LEVEL_WIDTH * softplus(x)), self.jumps @ sigmoid(x)

    def _kept_profile(self, s: np.ndarray) -> np.ndarray:
        """(2, N) kept fraction of each wall at levels s, smooth across the level boundaries."""
        k = self.kept
        return (k[:, :1] + (k[:, 1:2] - k[:, :1]) * sigmoid((s - self.levels[0]) / LEVEL_WIDTH)
                + (k[:, 2:3] - k[:, 1:2]) * sigmoid((s - self.levels[1]) / LEVEL_WIDTH))

    def _window(self, r1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lateral reach W and weight of the r > 0 wall at transverse positions r1."""
        reach = (sigmoid((r1 + self.reach[0]) / LATERAL_WIDTH)
                 * sigmoid((self.reach[1] - r1) / LATERAL_WIDTH))
        return reach, sigmoid(r1 / SIDE_WIDTH)

    # ------------------------------------------------------------------ transverse profile
    def _transverse(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients of the transverse displacement at full activation at levels s (N,):
        offset c (N,), slope m - 1 (N,), knot slope changes (2, 3, N) and knot positions (3, N)."""
        g = self.geometry
        s_clamped = smooth_min(s, g.lv_length + 4.0, 2.0)
        endo_sq = g.half_width_squared(s_clamped, "endo")
        r_endo_sq = smooth_max(endo_sq, 0.0, SQUARE_WIDTH) + MIN_CAVITY_RADIUS ** 2
        wall_sq = smooth_max(g.half_width_squared(s_clamped, "epi") - endo_sq, MIN_WALL ** 2,
                             SQUARE_WIDTH)
        r_endo, r_epi = np.sqrt(r_endo_sq), np.sqrt(r_endo_sq + wall_sq)
        r_far = r_epi + FAR_DISTANCE
        fade = sigmoid((s - 2.0) / 2.0) * (1.0 - sigmoid((s - g.lv_length - 3.0) / 4.0))
        d_endo = self.radial * r_endo * self._kept_profile(s) * fade  # (2, N) inward, per wall
        stretch = np.maximum(1.0 + self.longitudinal * self.longitudinal_profile(s)[1], 0.3)
        r_epi_new = np.sqrt((r_endo - d_endo) ** 2 + wall_sq / stretch)
        d_epi = r_epi - r_epi_new
        slope = 1.0 - (d_endo[0] + d_endo[1]) / (2.0 * r_endo)
        offset = 0.5 * (d_endo[0] - d_endo[1])
        changes = np.empty((2, 3) + s.shape)
        for wall, sign in enumerate((-1.0, 1.0)):
            c = sign * offset
            first = (r_epi - d_epi[wall] - c - slope * r_epi) / (r_epi - r_endo)
            second = (r_far - c - slope * r_far - first * (r_far - r_endo)) / (r_far - r_epi)
            changes[wall] = (first, second, 1.0 - slope - first - second)
        return offset, slope - 1.0, changes, np.stack([r_endo, r_epi, r_far])

    @staticmethod
    def _transverse_shift(r: np.ndarray, coefficients) -> tuple[np.ndarray, np.ndarray]:
        """Transverse displacement T(r) at full activation and its slope dT/dr, each (N,)."""
        offset, slope, changes, knots = coefficients
        widths = np.array([KNOT_WIDTH, KNOT_WIDTH, FAR_WIDTH])[:, None]
        shift, derivative = offset + slope * r, slope + 0.0 * r
        for wall, sign in enumerate((-1.0, 1.0)):
            x = (sign * r[None] - knots) / widths
            shift = shift + sign * (changes[wall] * widths * softplus(x)).sum(axis=0)
            derivative = derivative + (changes[wall] * sigmoid(x)).sum(axis=0)
        return shift, derivative

    # ------------------------------------------------------------------ the map
    def path(self, points: np.ndarray) -> Callable[[float], np.ndarray]:
        """A function giving, for activation f, the positions (N, 2) mm of the ED points
        (N, 2); the activation-independent work is done once here."""
        s, r = self.geometry.to_local(np.asarray(points, dtype=np.float64))
        shift = self._transverse_shift(r, self._transverse(s))[0]
        integral = self.longitudinal * self.longitudinal_profile(s)[0]

        def at(f: float) -> np.ndarray:
            r1 = r + f * shift
            reach, right = self._window(r1)
            s1 = s + f * reach * (right * integral[1] + (1.0 - right) * integral[0])
            return self.geometry.to_image(s1, r1)

        return at

    def forward(self, points: np.ndarray, activation: float) -> np.ndarray:
        """Positions at ``activation`` of ED points (..., 2) mm."""
        points = np.asarray(points, dtype=np.float64)
        return self.path(points.reshape(-1, 2))(activation).reshape(points.shape)

    def inverse(self, points: np.ndarray, activation: float) -> np.ndarray:
        """ED positions (..., 2) mm of the points (..., 2) seen at ``activation``."""
        points = np.asarray(points, dtype=np.float64)
        s1, r1 = self.geometry.to_local(points.reshape(-1, 2))
        reach, right = self._window(r1)
        gain = activation * self.longitudinal * reach
        weights = np.stack([1.0 - right, right])

        def longitudinal(s):
            integral, rate = self.longitudinal_profile(s)
            return (s + gain * (weights * integral).sum(0) - s1,
                    1.0 + gain * (weights * rate).sum(0))

        s = _newton(longitudinal, s1.copy())
        coefficients = self._transverse(s)

        def transverse(r):
            shift, slope = self._transverse_shift(r, coefficients)
            return r + activation * shift - r1, 1.0 + activation * slope

        r = _newton(transverse, r1.copy())
        return self.geometry.to_image(s, r).reshape(points.shape)


def _newton(residual_and_slope, x: np.ndarray) -> np.ndarray:
    """Solve residual(x) = 0 elementwise for a monotone increasing residual whose root lies within
    ``SEARCH_RANGE`` mm of the start ``x``: Newton steps, replaced by bisection whenever they
    leave the bracket that is known to hold the root."""
    low, high = x - SEARCH_RANGE, x + SEARCH_RANGE
    for _ in range(NEWTON_ITERATIONS):
        value, slope = residual_and_slope(x)
        if np.max(np.abs(value), initial=0.0) < NEWTON_TOLERANCE:
            return x
        low = np.where(value < 0, x, low)
        high = np.where(value > 0, x, high)
        step = x - value / slope
        x = np.where((step >= low) & (step <= high), step, 0.5 * (low + high))
    raise RuntimeError(f"inverse map did not converge (residual {np.max(np.abs(value)):.3g} mm)")
