"""The short-axis ring phantom: a contracting, thickening myocardial ring around a blood pool.

Motion (exact, radial about the image centre c): a point at radius rho from c moves along its
radius to rho' with

    rho'^2 = rho^2 - k(f) * (1 - exp(-rho^2 / sigma^2)),

f the activation (0 at ED, 1 at ES), k(f) set so that the endocardial radius shrinks by the factor
``1 - contraction * f``. Away from the centre the map preserves area (rho'^2 - rho^2 is nearly
constant: the ring is near-incompressible and thickens, the surroundings follow with a
displacement decaying like 1 / rho); near the centre it is a uniform contraction. sigma is chosen
so that the map stays monotone (d rho'^2 / d rho^2 >= 0.2). The images are a linear-array speckle
simulation on the pixel grid (PSF along the rows = depth).

Fields of :class:`~.result.SimulatedSequence` for this phantom: ``gls_endo`` / ``gls_mid`` hold the
*circumferential* strain (%) of the endocardial / mid-wall circles, ``segmental_strain`` that of
six 60-degree arcs of the endocardial circle (``segment_names``: the mid-ventricular short-axis
segments, anterior at the top, counter-clockwise on screen), ``lv_area`` the cavity area;
``lv_volume``, ``ef`` and ``landmarks_ed`` are NaN; ``metadata["fac"]`` is the fractional area
change in %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoSequence
from ..strain.definitions import length_strain, polygon_area
from .result import SimulatedSequence, displacement_fields, pixel_positions, pulled_back_labels
from .scan import LinearScan
from .speckle import BModeImager, PointSpreadFunction, render_frames
from .texture import SmoothRandomField
from .timing import cardiac_timing

SEGMENT_NAMES = ("anterior", "anteroseptal", "inferoseptal", "inferior", "inferolateral",
                 "anterolateral")
ECHOGENICITY = {"blood": 0.02, "myocardium": 1.0, "tissue": 0.4}
MIN_SLOPE = 0.2                 # lower bound of d rho'^2 / d rho^2
CONTOUR_POINTS = 6 * 100 + 1    # closed ground-truth contours (last point = first)
OUTPUT_CONTOUR_STRIDE = 5
SPECKLE_PIXELS = (2.0, 3.0)     # PSF FWHM in pixels (axial, lateral)
TEXTURE_CORRELATION = 4.0       # mm
TEXTURE_STRENGTH = 0.25


class RingMotion:
    """Radial contraction about ``centre`` (x, y) mm (see the module docstring)."""

    def __init__(self, centre: Sequence[float], inner_radius: float, contraction: float):
        if not 0 <= contraction <= 0.3:
            raise ValueError(f"contraction must lie in 0..0.3, got {contraction}")
        self.centre = np.asarray(centre, dtype=np.float64)
        self.inner_radius, self.contraction = float(inner_radius), float(contraction)
        shrink = 1.0 - (1.0 - contraction) ** 2  # relative loss of rho^2 at the endocardium at ES
        q = 4.0                                   # (inner radius / sigma)^2, as large as allowed
        while q > 0.05 and shrink * q / -np.expm1(-q) > 1.0 - MIN_SLOPE:
            q *= 0.95
        self.sigma_squared = self.inner_radius ** 2 / q
        self._q = q

    def _k(self, activation: float) -> float:
        new_inner = self.inner_radius * (1.0 - self.contraction * activation)
        return (self.inner_radius ** 2 - new_inner ** 2) / -np.expm1(-self._q)

    def radius_squared(self, rho_squared: np.ndarray, activation: float) -> np.ndarray:
        """rho'^2 at ``activation`` of ED squared radii."""
        return rho_squared + self._k(activation) * np.expm1(-rho_squared / self.sigma_squared)

    def _scale(self, d: np.ndarray, new_squared: np.ndarray, old_squared: np.ndarray) -> np.ndarray:
        ratio = np.sqrt(np.divide(new_squared, old_squared, out=np.ones_like(old_squared),
                                  where=old_squared > 1e-12))
        return self.centre + d * ratio[..., None]

    def forward(self, points: np.ndarray, activation: float) -> np.ndarray:
        d = np.asarray(points, dtype=np.float64) - self.centre
        rho2 = (d ** 2).sum(-1)
        new = self.radius_squared(rho2, activation)
        near_centre = 1.0 - self._k(activation) / self.sigma_squared  # limit of rho'^2 / rho^2
        return self._scale(d, np.where(rho2 > 1e-12, new, near_centre * rho2), rho2)

    def path(self, points: np.ndarray) -> Callable[[float], np.ndarray]:
        return lambda activation: self.forward(points, activation)

    def inverse(self, points: np.ndarray, activation: float) -> np.ndarray:
        d = np.asarray(points, dtype=np.float64) - self.centre
        target = (d ** 2).sum(-1)
        k = self._k(activation)
        x = target + k
        for _ in range(60):
            residual = self.radius_squared(x, activation) - target
            if np.max(np.abs(residual), initial=0.0) < 1e-10:
                break
            slope = 1.0 - k / self.sigma_squared * np.exp(-x / self.sigma_squared)
            x = np.maximum(x - residual / slope, 0.0)
        else:
            raise RuntimeError("ring inverse map did not converge")
        return self._scale(d, x, target)


def ring_phantom(*, size: int = 128, n_frames: int = 10, spacing: Sequence[float] = (0.5, 0.5),
                 contraction: float = 0.15, inner_radius: float | None = None,
                 thickness: float | None = None, cycle: str = "half",
                 frame_rate: float | None = None, noise: float = 0.02,
                 decorrelation: float = 0.02, seed: int = 0) -> SimulatedSequence:
    """A short-axis ring phantom (fast; the built-in demo data).

    Args:
        size: image height and width in pixels.
        n_frames: T.
        spacing: (sx, sy) mm.
        contraction: fractional shortening of the endocardial radius at ES (0..0.3).
        inner_radius, thickness: ED endocardial radius and wall thickness in mm (default 22 % and
            12 % of the field of view).
        cycle, frame_rate: as for :func:`~.apical.simulate_sequence`.
        noise, decorrelation: receiver noise and per-frame speckle decorrelation (0 = none).
        seed: all randomness derives from it.

    Returns:
        :class:`SimulatedSequence` with labels 1 (cavity) and 2 (ring); see the module docstring
        for what the strain fields hold.
    """
    spacing = (float(spacing[0]), float(spacing[1]))
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    fov = size * min(spacing)
    inner = 0.22 * fov if inner_radius is None else float(inner_radius)
    outer = inner + (0.12 * fov if thickness is None else float(thickness))
    centre = np.array([(size - 1) * spacing[0] / 2.0, (size - 1) * spacing[1] / 2.0])
    timing_rng, tissue_rng, acquisition_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    timing = cardiac_timing(cycle, n_frames, frame_rate, timing_rng)
    motion = RingMotion(centre, inner, contraction)

    def ed_labels(points: np.ndarray) -> np.ndarray:
        rho = np.linalg.norm(points - centre, axis=-1)
        return np.where(rho < inner, LABEL_LV, np.where(rho < outer, LABEL_MYOCARDIUM, 0)).astype(np.uint8)

    positions = pixel_positions((size, size), spacing)
    frames = _ring_frames((size, size), spacing, motion, ed_labels, timing.activation, noise,
                          decorrelation, tissue_rng, acquisition_rng)
    labels = np.stack([pulled_back_labels(motion, ed_labels, positions, f) for f in timing.activation])

    angle = np.linspace(0.0, 2.0 * np.pi, CONTOUR_POINTS)
    circle = np.stack([-np.sin(angle), -np.cos(angle)], axis=-1)  # from the top, counter-clockwise
    endo = np.stack([motion.forward(centre + inner * circle, f) for f in timing.activation])
    mid = np.stack([motion.forward(centre + 0.5 * (inner + outer) * circle, f) for f in timing.activation])
    arc = (CONTOUR_POINTS - 1) // 6
    area = polygon_area(endo[:, :-1])
    fac = float(100.0 * (area[0] - area[timing.es_index]) / area[0])
    sequence = EchoSequence(
        frames=frames, spacing=spacing, frame_times=timing.frame_times, labels=labels,
        ed_index=0, es_index=timing.es_index,
        metadata={"source": f"<ring phantom seed {seed}>", "modality": "US (simulated)",
                  "simulator": "EchoRegistrationLib.simulation.ring_phantom", "seed": int(seed),
                  "view": "SAX", "fac": fac,
                  "parameters": {"size": size, "n_frames": int(n_frames), "spacing": list(spacing),
                                 "contraction": float(contraction), "inner_radius": inner,
                                 "outer_radius": outer, "centre": centre.tolist(), "cycle": cycle,
                                 "sigma": float(np.sqrt(motion.sigma_squared)),
                                 "noise": float(noise), "decorrelation": float(decorrelation)}})
    nan = np.full(timing.activation.shape, np.nan)
    return SimulatedSequence(
        sequence=sequence, displacement=displacement_fields(motion, positions, timing.activation),
        activation=timing.activation, gls_endo=length_strain(endo), gls_mid=length_strain(mid),
        segmental_strain=np.stack([length_strain(endo[:, k * arc:(k + 1) * arc + 1])
                                   for k in range(6)], axis=1),
        segment_names=SEGMENT_NAMES, lv_area=area, lv_volume=nan, ef=float("nan"),
        endo_contour=endo[:, ::OUTPUT_CONTOUR_STRIDE].copy(),
        mid_contour=mid[:, ::OUTPUT_CONTOUR_STRIDE].copy(),
        landmarks_ed=np.full((3, 2), np.nan), myocardium_ed=labels[0] == LABEL_MYOCARDIUM, motion=motion)


def _ring_frames(shape: tuple[int, int], spacing: tuple[float, float], motion: RingMotion,
                 ed_labels: Callable[[np.ndarray], np.ndarray], activation: np.ndarray, noise: float,
                 decorrelation: float, tissue_rng: np.random.Generator,
                 acquisition_rng: np.random.Generator) -> np.ndarray:
    """(T, H, W) float32 B-mode frames of the moving ring (linear-array speckle)."""
    psf = PointSpreadFunction(axial_fwhm=SPECKLE_PIXELS[0] * spacing[1],
                              lateral_fwhm=SPECKLE_PIXELS[1] * spacing[0])
    margin = int(np.ceil(2 * max(SPECKLE_PIXELS)))
    scan = LinearScan(shape, spacing, margin)
    imager = BModeImager(scan, psf, dynamic_range=45.0, display_top=15.0)
    reference = scan.uniform_points(tissue_rng, imager.scatterer_count)
    texture = SmoothRandomField(tissue_rng, reference.min(axis=0), reference.max(axis=0),
                                TEXTURE_CORRELATION)
    tissue = np.array([ECHOGENICITY["tissue"], ECHOGENICITY["blood"], ECHOGENICITY["myocardium"]])
    strength = tissue[ed_labels(reference)] * np.exp(TEXTURE_STRENGTH * texture(reference))
    return render_frames(imager, motion.path(reference), strength, activation, noise=noise,
                         decorrelation=decorrelation, tissue_rng=tissue_rng,
                         acquisition_rng=acquisition_rng)
