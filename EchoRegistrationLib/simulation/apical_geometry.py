"""End-diastolic anatomy of the simulated apical views (A4C, A2C): shapes, labels, echogenicity.

The left ventricle is described in its own frame: ``s`` mm along the long axis from the
endocardial apex towards the base, ``r`` mm across it, positive towards +x (image right) when the
axis is not tilted. The endocardium is a prolate half-ellipse centred at ``s0`` on the axis with
semi-axes ``a = s0`` (long) and ``B`` (short), cut at the mitral annulus plane ``s = L``; the
epicardium is the ellipse with the same centre and semi-axes ``a + apical_thickness``,
``B + wall_thickness``. The left atrium is an ellipse on the same axis beyond the annulus whose
chord at ``s = L`` is the annulus. The A4C view adds a right ventricle and atrium (no labels) on
the left of the septum. Everything is in image mm (x, y) with the probe at the top centre.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..sequence import LABEL_LA, LABEL_LV, LABEL_MYOCARDIUM
from .appearance import ECHOGENICITY

VIEWS = ("A4C", "A2C")
PERICARDIUM_THICKNESS = 2.5   # mm
RV_WALL_THICKNESS = 4.0       # mm
LEAFLET_THICKNESS = 1.3       # mm
LEAFLET_BOW = 2.5             # mm, how far the closed mitral leaflets bulge into the atrium


def _inside_ellipse(s, r, centre_s, centre_r, semi_s, semi_r):
    return ((s - centre_s) / semi_s) ** 2 + ((r - centre_r) / semi_r) ** 2 < 1.0


@dataclass(frozen=True)
class ApicalGeometry:
    """ED anatomy of one apical view (all lengths in mm, angles in rad).

    Attributes:
        view: "A4C" or "A2C".
        apex: (x, y) image position of the endocardial apex.
        tilt: angle of the long axis (apex -> base) from +y, positive when the base lies towards +x.
        lv_length: L, endocardial apex to mitral annulus plane.
        lv_width: 2 B, largest endocardial diameter.
        wall_thickness: lateral wall thickness (septum and free wall).
        apical_thickness: wall thickness at the apex.
        centre_fraction: s0 / L, where the endocardial ellipse is widest.
        la_length: annulus plane to atrial roof.
        la_width: largest atrial diameter.
        rv_width: largest right-ventricular diameter (A4C only).
    """

    view: str
    apex: tuple[float, float]
    tilt: float
    lv_length: float
    lv_width: float
    wall_thickness: float
    apical_thickness: float
    centre_fraction: float
    la_length: float
    la_width: float
    rv_width: float

    # ------------------------------------------------------------------ frame of the LV
    @property
    def long_axis(self) -> np.ndarray:
        """Unit (x, y) vector from apex to base."""
        return np.array([np.sin(self.tilt), np.cos(self.tilt)])

    @property
    def short_axis(self) -> np.ndarray:
        """Unit (x, y) vector across the LV, towards image right for small tilts."""
        return np.array([np.cos(self.tilt), -np.sin(self.tilt)])

    def to_local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, r) LV coordinates of (..., 2) image points."""
        d = np.asarray(points, dtype=np.float64) - np.asarray(self.apex)
        return d @ self.long_axis, d @ self.short_axis

    def to_image(self, s: np.ndarray, r: np.ndarray) -> np.ndarray:
        """(..., 2) image points of LV coordinates."""
        return (np.asarray(self.apex) + np.asarray(s)[..., None] * self.long_axis
                + np.asarray(r)[..., None] * self.short_axis)

    # ------------------------------------------------------------------ shapes
    @property
    def s0(self) -> float:
        return self.centre_fraction * self.lv_length

    @property
    def endo_axes(self) -> tuple[float, float]:
        """(long, short) semi-axes of the endocardial ellipse."""
        return self.s0, 0.5 * self.lv_width

    @property
    def epi_axes(self) -> tuple[float, float]:
        a, b = self.endo_axes
        return a + self.apical_thickness, b + self.wall_thickness

    def half_width_squared(self, s: np.ndarray, surface: str) -> np.ndarray:
        """Squared half-width of the "endo" or "epi" ellipse at levels ``s`` (negative outside)."""
        a, b = self.endo_axes if surface == "endo" else self.epi_axes
        return b ** 2 * (1.0 - ((np.asarray(s, dtype=np.float64) - self.s0) / a) ** 2)

    @property
    def annulus_half_width(self) -> float:
        return float(np.sqrt(self.half_width_squared(self.lv_length, "endo")))

    @property
    def la_axes(self) -> tuple[float, float, float]:
        """(centre s, long semi-axis, short semi-axis) of the atrial ellipse."""
        b = max(0.5 * self.la_width, self.annulus_half_width + 2.0)
        k = np.sqrt(1.0 - (self.annulus_half_width / b) ** 2)
        a = self.la_length / (1.0 + k)
        return self.lv_length + a * k, a, b

    # ------------------------------------------------------------------ regions
    def _regions(self, points: np.ndarray) -> dict[str, np.ndarray]:
        s, r = self.to_local(points)
        L = self.lv_length
        (a, b), (ap, bp) = self.endo_axes, self.epi_axes
        in_endo = _inside_ellipse(s, r, self.s0, 0.0, a, b)
        in_epi = _inside_ellipse(s, r, self.s0, 0.0, ap, bp)
        below_base = s >= L
        la_s, la_a, la_b = self.la_axes
        in_la = _inside_ellipse(s, r, la_s, 0.0, la_a, la_b) & below_base
        regions = {
            "cavity": in_endo & ~below_base,
            "myocardium": in_epi & ~in_endo & ~below_base,
            "la": in_la,
            "pericardium": (_inside_ellipse(s, r, self.s0, 0.0, ap + PERICARDIUM_THICKNESS,
                                            bp + PERICARDIUM_THICKNESS) & ~in_epi & (s < L + 3.0)),
        }
        bow = LEAFLET_BOW * (1.0 - (r / self.annulus_half_width) ** 2)
        regions["valve"] = (np.abs(s - L - bow) < 0.5 * LEAFLET_THICKNESS) & (bow > 0)
        if self.view == "A4C":
            regions.update(self._right_heart(s, r, in_la | in_epi))
        return regions

    def _right_heart(self, s, r, left_heart) -> dict[str, np.ndarray]:
        """RV cavity and free wall, RA: image-only structures left of the septum."""
        L, bp = self.lv_length, self.epi_axes[1]
        rb = 0.5 * self.rv_width
        centre_s, centre_r, semi_s = 0.68 * L, -(bp + 0.55 * rb), 0.46 * L
        septum_edge = -np.sqrt(np.maximum(self.half_width_squared(s, "epi"), 0.0))
        valve_level = s < L - 6.0
        rv = _inside_ellipse(s, r, centre_s, centre_r, semi_s, rb) & (r < septum_edge - 1.0) & valve_level
        rv_outer = _inside_ellipse(s, r, centre_s, centre_r, semi_s + RV_WALL_THICKNESS,
                                   rb + RV_WALL_THICKNESS) & valve_level
        ra_a, ra_b = 21.0, 17.0
        la_s, la_a, la_b = self.la_axes
        ra = (_inside_ellipse(s, r, L - 6.0 + 0.9 * ra_a, -(self.annulus_half_width + 5.0 + ra_b),
                              ra_a, ra_b) & (s > L - 5.0)
              & ~_inside_ellipse(s, r, la_s, 0.0, la_a + 3.0, la_b + 3.0))
        return {"rv": rv & ~left_heart, "rv wall": rv_outer & ~rv & ~left_heart & (r < septum_edge),
                "ra": ra}

    def labels(self, points: np.ndarray) -> np.ndarray:
        """CAMUS label codes (uint8, shape (...)) at ED of (..., 2) image points."""
        regions = self._regions(points)
        out = np.zeros(regions["cavity"].shape, dtype=np.uint8)
        out[regions["la"]] = LABEL_LA
        out[regions["myocardium"]] = LABEL_MYOCARDIUM
        out[regions["cavity"]] = LABEL_LV
        return out

    def echogenicity(self, points: np.ndarray, chest_wall_depth: float,
                     table: Mapping[str, float] = ECHOGENICITY) -> np.ndarray:
        """Relative scatterer amplitude (shape (...)) of the ED tissue at (..., 2) points, per tissue
        from ``table`` (:data:`.appearance.ECHOGENICITY` by default); tissue shallower than
        ``chest_wall_depth`` (mm, y) is the chest wall."""
        regions = self._regions(points)
        y = np.asarray(points)[..., 1]
        out = np.where(y < chest_wall_depth, table["chest wall"], table["tissue"])
        order = (("pericardium", "pericardium"), ("rv wall", "myocardium"), ("myocardium", "myocardium"),
                 ("rv", "blood"), ("ra", "blood"), ("la", "blood"), ("cavity", "blood"),
                 ("valve", "valve"))
        for region, tissue in order:
            if region in regions:
                out = np.where(regions[region], table[tissue], out)
        return out

    # ------------------------------------------------------------------ contours and landmarks
    def contour(self, surface: str, n_points: int) -> np.ndarray:
        """(n_points, 2) image points of the "endo" or "mid" (mid-wall) contour from the first
        annulus point (the wall at negative r: septal in A4C, inferior in A2C) through the apex to
        the other, equally spaced in arc length."""
        (a, b), (ap, bp) = self.endo_axes, self.epi_axes
        if surface == "mid":
            a, b = 0.5 * (a + ap), 0.5 * (b + bp)
        elif surface != "endo":
            raise ValueError(f"surface must be 'endo' or 'mid', got {surface!r}")
        end = np.arccos((self.s0 - self.lv_length) / a)
        psi = np.linspace(-end, end, 20001)
        s, r = self.s0 - a * np.cos(psi), b * np.sin(psi)
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(s), np.diff(r)))])
        target = np.linspace(0.0, arc[-1], n_points)
        return self.to_image(np.interp(target, arc, s), np.interp(target, arc, r))


# Physiological ranges drawn when a parameter is not given (mm, degrees).
GEOMETRY_RANGES = {
    "lv_length": (76.0, 92.0), "lv_width": (42.0, 54.0), "wall_thickness": (8.5, 11.0),
    "tilt": (-6.0, 6.0), "apical_ratio": (0.6, 0.8), "centre_fraction": (0.57, 0.64),
    "la_length": (40.0, 52.0), "la_width": (34.0, 44.0), "rv_width": (26.0, 34.0),
    "apex_depth": (14.0, 22.0), "apex_offset": (-4.0, 4.0),
}
ALLOWED = {"lv_length": (40.0, 130.0), "lv_width": (20.0, 80.0), "wall_thickness": (3.0, 25.0),
           "tilt": (-30.0, 30.0)}
MIN_LA_LENGTH = 25.0
BOTTOM_MARGIN = 5.0


def random_apical_geometry(view: str, rng: np.random.Generator, probe: np.ndarray, depth: float,
                           **given: float | None) -> ApicalGeometry:
    """ED anatomy with every parameter not ``given`` drawn from :data:`GEOMETRY_RANGES`.

    ``given`` may set ``lv_length``, ``lv_width``, ``wall_thickness`` (mm) and ``tilt`` (degrees);
    all parameters are always drawn, so fixing one leaves the others unchanged. A drawn LV length
    that leaves no room for the atrium in ``depth`` is shortened to fit (within :data:`ALLOWED`);
    the atrium is shortened to end ``BOTTOM_MARGIN`` mm above the sector depth.

    Raises:
        ValueError: unknown view, a given value outside :data:`ALLOWED`, or a heart that does not
            fit in ``depth`` even at the shortest allowed LV (or at a given ``lv_length``).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    values = {name: float(rng.uniform(*bounds)) for name, bounds in GEOMETRY_RANGES.items()}
    for name, value in given.items():
        if name not in ALLOWED:
            raise TypeError(f"unknown geometry parameter {name!r}")
        if value is None:
            continue
        low, high = ALLOWED[name]
        if not low <= float(value) <= high:
            raise ValueError(f"{name}={value} is outside the supported range {low}..{high}")
        values[name] = float(value)
    tilt = np.deg2rad(values["tilt"])
    axis = np.array([np.sin(tilt), np.cos(tilt)])
    apical_thickness = values["apical_ratio"] * values["wall_thickness"]
    apex = (np.asarray(probe, dtype=np.float64) + [values["apex_offset"], values["apex_depth"]]
            + apical_thickness * axis)
    length_to_bottom = (depth - BOTTOM_MARGIN - apex[1]) / axis[1]
    if given.get("lv_length") is None:  # a drawn LV too long for this sector is shortened to fit
        values["lv_length"] = min(values["lv_length"],
                                  max(length_to_bottom - MIN_LA_LENGTH, ALLOWED["lv_length"][0]))
    room = length_to_bottom - values["lv_length"]
    if room < MIN_LA_LENGTH:
        raise ValueError(f"the heart does not fit in a {depth:.0f} mm deep sector: the LV base is at "
                         f"{apex[1] + values['lv_length'] * axis[1]:.0f} mm; increase the depth "
                         "(or the pixel spacing)")
    return ApicalGeometry(
        view=view, apex=(float(apex[0]), float(apex[1])), tilt=float(tilt),
        lv_length=values["lv_length"], lv_width=values["lv_width"],
        wall_thickness=values["wall_thickness"], apical_thickness=apical_thickness,
        centre_fraction=values["centre_fraction"], la_length=float(min(values["la_length"], room)),
        la_width=values["la_width"], rv_width=values["rv_width"])
