"""Simulated apical echocardiography sequences (A4C / A2C) with exact motion and strain.

Pipeline: random ED anatomy (:mod:`.apical_geometry`) -> analytic motion calibrated to the
nominal GLS (:mod:`.apical_motion`) -> moving speckle imaged by a phased-array sector scan
(:mod:`.speckle`, :mod:`.scan`) -> labels pulled back through the exact inverse map -> clinical
ground truth from tracked material contours (:mod:`.ground_truth`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from ..sequence import LABEL_MYOCARDIUM, EchoSequence
from ..strain.definitions import SEGMENT_NAMES, length_strain, polygon_area
from .appearance import NOMINAL_APPEARANCE, TissueAppearance
from .apical_geometry import VIEWS, ApicalGeometry, random_apical_geometry
from .apical_motion import ApicalMotion
from .ground_truth import disc_volume
from .result import SimulatedSequence, displacement_fields, pixel_positions, pulled_back_labels
from .scan import SectorScan
from .speckle import BModeImager, PointSpreadFunction, render_frames
from .texture import SmoothRandomField
from .timing import cardiac_timing

DEPTH_RANGE = (140.0, 160.0)            # mm, sector depth when neither depth nor spacing is given
SECTOR_ANGLE_RANGE = (70.0, 80.0)       # degrees
GLS_RANGE = (-35.0, 0.0)                # %
RADIAL_PER_GLS_RANGE = (1.4, 1.75)      # radial fractional shortening per unit |GLS| (-20 % -> 0.28-0.35)
CONTOUR_POINTS_PER_SEGMENT = 100        # ground-truth contours: 6 x 100 + 1 points
OUTPUT_CONTOUR_STRIDE = 5               # published contours: every 5th point (121 points)
BASE_LINE_POINTS = 40
TEXTURE_CORRELATION = 5.0               # mm
DYNAMIC_RANGE = 50.0                    # dB
GAIN_RANGE = (-3.0, 3.0)                # dB
CENTRE_FREQUENCY = 3.0                  # MHz
MIN_SPECKLE_PIXELS = (2.0, 2.5)         # axial, lateral resolution floor in output pixels


def simulate_sequence(*, view: str = "A4C", cycle: str = "half", n_frames: int = 20,
                      image_size: Sequence[int] = (256, 256),
                      spacing: Sequence[float] | None = None, frame_rate: float | None = None,
                      gls: float = -20.0, dysfunction: Mapping[str | int, float] | None = None,
                      lv_length: float | None = None, lv_width: float | None = None,
                      wall_thickness: float | None = None, tilt: float | None = None,
                      sector_angle: float | None = None, depth: float | None = None,
                      radial_shortening: float | None = None, noise: float = 0.02,
                      decorrelation: float = 0.05, appearance: TissueAppearance = NOMINAL_APPEARANCE,
                      seed: int = 0) -> SimulatedSequence:
    """Simulate an apical 2D echo sequence with its exact displacement and clinical ground truth.

    Args:
        view: "A4C" (walls: inferoseptal, anterolateral; with right heart) or "A2C" (inferior,
            anterior).
        cycle: "half" (ED at frame 0 -> ES at the last frame, like CAMUS half sequences) or "full"
            (ED -> ES -> ED; ES near the middle at a physiological systolic share of the beat).
        n_frames: number of frames T.
        image_size: (H, W) pixels.
        spacing: (sx, sy) mm; default isotropic, the sector depth over the H rows.
        frame_rate: frames per second; default from a heart rate drawn in 60-85 bpm.
        gls: nominal peak endocardial GLS (%) of normal myocardium, in -35..0; the longitudinal
            motion is calibrated so that the endocardial contour of the normal heart reaches it.
        dysfunction: {segment name or index 0-5: fraction of normal motion kept, -0.5..1.5}, e.g.
            ``{"apical septal": 0.3}``; the segment's longitudinal and radial motion are scaled
            smoothly (neighbours are tethered).
        lv_length, lv_width, wall_thickness: ED endocardial length (apex to annulus plane),
            largest endocardial diameter and wall thickness in mm; drawn when None.
        tilt: long-axis tilt in degrees (base towards image right when positive); drawn when None.
        sector_angle: sector opening in degrees (default drawn in 70-80).
        depth: sector depth in mm (default from ``spacing``, else drawn in 140-160).
        radial_shortening: endocardial radial fractional shortening at ES (default k |gls| / 100, k
            drawn in 1.4-1.75, which gives EF 50-63 % at GLS -20 %).
        noise: receiver noise amplitude relative to myocardial echoes (0 = none).
        decorrelation: fraction of the scatterer amplitude variance redrawn each frame
            (out-of-plane motion; 0 = speckle changes only through the motion).
        appearance: tissue echogenicity, texture and PSF (:mod:`.appearance`; the nominal one by
            default, :func:`.appearance.random_appearance` for domain randomisation).
        seed: all randomness (anatomy, timing, speckle, noise) derives from it.

    Returns:
        :class:`SimulatedSequence`; ``metadata["parameters"]`` records every parameter used.
    """
    view = str(view).upper()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if not GLS_RANGE[0] <= gls <= GLS_RANGE[1]:
        raise ValueError(f"gls must lie in {GLS_RANGE[0]}..{GLS_RANGE[1]} %, got {gls}")
    if noise < 0 or not 0 <= decorrelation <= 1:
        raise ValueError(f"noise must be >= 0 and decorrelation in 0..1, got {noise}, {decorrelation}")
    height, width = (int(v) for v in image_size)
    if height < 16 or width < 16:
        raise ValueError(f"image_size must be at least 16 x 16 pixels, got {image_size}")
    scene_rng, timing_rng, tissue_rng, acquisition_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))

    drawn_depth = float(scene_rng.uniform(*DEPTH_RANGE))
    drawn_angle = float(scene_rng.uniform(*SECTOR_ANGLE_RANGE))
    if spacing is None:
        depth = drawn_depth if depth is None else float(depth)
        spacing = (depth / (height - 1), depth / (height - 1))
    else:
        spacing = (float(spacing[0]), float(spacing[1]))
        depth = (height - 1) * spacing[1] if depth is None else float(depth)
    half_angle = 0.5 * np.deg2rad(drawn_angle if sector_angle is None else float(sector_angle))
    probe = np.array([(width - 1) * spacing[0] / 2.0, 0.0])
    geometry = random_apical_geometry(view, scene_rng, probe, depth, lv_length=lv_length,
                                      lv_width=lv_width, wall_thickness=wall_thickness, tilt=tilt)
    radial_per_gls = float(scene_rng.uniform(*RADIAL_PER_GLS_RANGE))
    timing = cardiac_timing(cycle, n_frames, frame_rate, timing_rng)

    n_contour = 6 * CONTOUR_POINTS_PER_SEGMENT + 1
    endo_ed, mid_ed = geometry.contour("endo", n_contour), geometry.contour("mid", n_contour)
    levels = _segment_levels(geometry, endo_ed)
    radial = radial_per_gls * abs(gls) / 100.0 if radial_shortening is None else float(radial_shortening)
    longitudinal = _calibrated_longitudinal(geometry, radial, levels, gls, endo_ed)
    kept = _kept_fractions(dysfunction, view)
    motion = ApicalMotion(geometry, longitudinal, radial, kept, levels)

    scan, imager = _sector_imager((height, width), spacing, probe, half_angle, depth, appearance)
    frames = _render_frames(geometry, motion, imager, appearance, spacing, timing.activation, noise,
                            decorrelation, tissue_rng, acquisition_rng)

    positions = pixel_positions((height, width), spacing)
    labels = np.stack([pulled_back_labels(motion, geometry.labels, positions, f)
                       for f in timing.activation])
    truth = _contour_truth(geometry, motion, timing.activation, timing.es_index, endo_ed, mid_ed)
    parameters = {
        "view": view, "cycle": cycle, "n_frames": int(n_frames), "image_size": [height, width],
        "spacing": list(spacing), "depth_mm": depth, "sector_angle_deg": float(np.rad2deg(2 * half_angle)),
        "frame_rate": float((n_frames - 1) / timing.frame_times[-1]), "heart_rate_bpm": timing.heart_rate,
        "gls_nominal": float(gls), "longitudinal_amplitude": longitudinal, "radial_shortening": radial,
        "dysfunction": {SEGMENT_NAMES[view][i]: float(k) for i, k in _segment_kept(kept).items() if k != 1.0},
        "noise": float(noise), "decorrelation": float(decorrelation),
        "psf_axial_fwhm_mm": imager.psf.axial_fwhm,
        "psf_lateral_fwhm_deg": float(np.rad2deg(imager.psf.lateral_fwhm)),
        "centre_frequency_mhz": CENTRE_FREQUENCY, "scatterers": imager.scatterer_count,
        "appearance": appearance.describe(),
        "geometry": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in dataclasses.asdict(geometry).items()},
    }
    sequence = EchoSequence(
        frames=frames, spacing=spacing, frame_times=timing.frame_times, labels=labels,
        ed_index=0, es_index=timing.es_index,
        metadata={"source": f"<simulated {view} seed {seed}>", "modality": "US (simulated)",
                  "simulator": "EchoRegistrationLib.simulation.simulate_sequence", "seed": int(seed),
                  "view": view, "ef": truth["ef"], "gls_nominal": float(gls),
                  "gls_endo_peak": float(truth["gls_endo"].min()), "parameters": parameters})
    return SimulatedSequence(
        sequence=sequence, displacement=displacement_fields(motion, positions, timing.activation),
        activation=timing.activation, segment_names=SEGMENT_NAMES[view],
        myocardium_ed=labels[0] == LABEL_MYOCARDIUM, motion=motion, **truth)


# ---------------------------------------------------------------------- motion set-up
def _segment_levels(geometry: ApicalGeometry, endo: np.ndarray) -> tuple[float, float]:
    """Long-axis levels of the apical/mid and mid/basal boundaries: the thirds (by ED arc length)
    of the first wall's endocardial contour."""
    s, _ = geometry.to_local(endo)
    n = CONTOUR_POINTS_PER_SEGMENT
    return float(s[2 * n]), float(s[n])


def _contour_gls(motion: ApicalMotion, endo: np.ndarray) -> float:
    return float(length_strain(np.stack([endo, motion.forward(endo, 1.0)]))[1])


def _calibrated_longitudinal(geometry: ApicalGeometry, radial: float, levels: tuple[float, float],
                             gls: float, endo: np.ndarray) -> float:
    """Longitudinal amplitude A at which the normal heart's endocardial GLS at ES equals ``gls``
    (secant iterations; GLS is nearly linear in A)."""
    if gls == 0 and radial == 0:
        return 0.0
    normal = np.ones((2, 3))

    def error(amplitude):
        return _contour_gls(ApicalMotion(geometry, amplitude, radial, normal, levels), endo) - gls

    a0, a1 = 0.0, abs(gls) / 100.0
    e0, e1 = error(a0), error(a1)
    for _ in range(20):
        if abs(e1) < 1e-4 or e1 == e0:
            break
        a0, a1, e0 = a1, a1 - e1 * (a1 - a0) / (e1 - e0), e1
        e1 = error(a1)
    if a1 < 0 or abs(e1) > 0.05:
        raise ValueError(f"cannot reach GLS {gls} % with radial shortening {radial} "
                         f"(the radial motion alone gives {error(0.0) + gls:.1f} %)")
    return float(a1)


def _kept_fractions(dysfunction: Mapping[str | int, float] | None, view: str) -> np.ndarray:
    """(2, 3) kept fractions [wall][apical, mid, basal] from a {segment: fraction} mapping."""
    names = [n.lower() for n in SEGMENT_NAMES[view]]
    per_segment = np.ones(6)
    for key, fraction in (dysfunction or {}).items():
        if isinstance(key, (int, np.integer)) and 0 <= key < 6:
            index = int(key)
        elif isinstance(key, str) and key.strip().lower() in names:
            index = names.index(key.strip().lower())
        else:
            raise ValueError(f"unknown {view} segment {key!r}: use 0-5 or one of {SEGMENT_NAMES[view]}")
        if not -0.5 <= float(fraction) <= 1.5:
            raise ValueError(f"kept fraction of {names[index]} must lie in -0.5..1.5, got {fraction}")
        per_segment[index] = float(fraction)
    return np.array([per_segment[2::-1], per_segment[3:]])


def _segment_kept(kept: np.ndarray) -> dict[int, float]:
    """{segment index: kept fraction}, the inverse of :func:`_kept_fractions`."""
    return dict(enumerate(np.concatenate([kept[0, ::-1], kept[1]]).tolist()))


# ---------------------------------------------------------------------- images
def _sector_imager(shape: tuple[int, int], spacing: tuple[float, float], probe: np.ndarray,
                   half_angle: float, depth: float,
                   appearance: TissueAppearance) -> tuple[SectorScan, BModeImager]:
    """Sector scan and imager; the PSF is never finer than ``MIN_SPECKLE_PIXELS`` output pixels
    (at mid depth laterally) so the speckle is resolved on the output grid."""
    psf = PointSpreadFunction(
        axial_fwhm=max(appearance.axial_fwhm, MIN_SPECKLE_PIXELS[0] * spacing[1]),
        lateral_fwhm=max(appearance.lateral_fwhm, MIN_SPECKLE_PIXELS[1] * spacing[0] / (0.5 * depth)),
        centre_frequency=CENTRE_FREQUENCY)
    axial_step, angular_step = psf.grid_steps()
    margin = (int(np.ceil(3 * psf.axial_fwhm / axial_step)),
              int(np.ceil(3 * psf.lateral_fwhm / angular_step)))
    scan = SectorScan(shape, spacing, probe, half_angle, depth, axial_step, angular_step, margin)
    return scan, BModeImager(scan, psf, dynamic_range=DYNAMIC_RANGE)


def _gain_map(scan: SectorScan, shape: tuple[int, int], spacing: tuple[float, float],
              rng: np.random.Generator) -> np.ndarray:
    """(H, W) dB: overall gain, a gently uneven time-gain compensation with depth and the
    darker sector edges of a phased array."""
    d = pixel_positions(shape, spacing) - scan.probe
    r = np.hypot(d[..., 0], d[..., 1]) / scan.depth
    angle = np.arctan2(d[..., 0], d[..., 1]) / scan.half_angle
    ripple = sum(rng.uniform(-1.0, 1.0) * np.cos(np.pi * k * r + rng.uniform(0, 2 * np.pi))
                 for k in (1, 2, 3))
    return rng.uniform(*GAIN_RANGE) + ripple - 5.0 * np.clip(np.abs(angle), 0, 1) ** 6


def _render_frames(geometry: ApicalGeometry, motion: ApicalMotion, imager: BModeImager,
                   appearance: TissueAppearance, spacing: tuple[float, float],
                   activation: np.ndarray, noise: float,
                   decorrelation: float, tissue_rng: np.random.Generator,
                   acquisition_rng: np.random.Generator) -> np.ndarray:
    """(T, H, W) float32 B-mode frames of scatterers placed at ED and carried by ``motion``."""
    scan = imager.scan
    reference = scan.uniform_points(tissue_rng, imager.scatterer_count)
    texture = SmoothRandomField(tissue_rng, reference.min(axis=0), reference.max(axis=0),
                                TEXTURE_CORRELATION)
    chest_wall = geometry.apex[1] - geometry.apical_thickness - 4.0
    strength = (geometry.echogenicity(reference, chest_wall, appearance.echogenicity)
                * np.exp(appearance.texture_strength * texture(reference)))
    gain = _gain_map(scan, scan.mask.shape, spacing, acquisition_rng)
    return render_frames(imager, motion.path(reference), strength, activation, noise=noise,
                         decorrelation=decorrelation, tissue_rng=tissue_rng,
                         acquisition_rng=acquisition_rng, gain=gain)


# ---------------------------------------------------------------------- clinical ground truth
def _contour_truth(geometry: ApicalGeometry, motion: ApicalMotion, activation: np.ndarray,
                   es_index: int, endo: np.ndarray, mid: np.ndarray) -> dict:
    """GLS, segmental strain, cavity area and volume, EF and published contours over time."""
    n = CONTOUR_POINTS_PER_SEGMENT
    base = np.linspace(endo[-1], endo[0], BASE_LINE_POINTS + 2)[1:-1]
    cavity = np.concatenate([endo, base])
    tracked = {name: np.stack([motion.forward(points, f) for f in activation])
               for name, points in (("endo", endo), ("mid", mid), ("cavity", cavity))}
    e = tracked["endo"]
    volume = np.array([disc_volume(polygon, 0.5 * (c[0] + c[-1]), c[3 * n])
                       for polygon, c in zip(tracked["cavity"], e)]) / 1000.0
    return {
        "gls_endo": length_strain(e), "gls_mid": length_strain(tracked["mid"]),
        "segmental_strain": np.stack([length_strain(e[:, k * n:(k + 1) * n + 1]) for k in range(6)], axis=1),
        "lv_area": polygon_area(tracked["cavity"]), "lv_volume": volume,
        "ef": float(100.0 * (volume[0] - volume[es_index]) / volume[0]),
        "endo_contour": e[:, ::OUTPUT_CONTOUR_STRIDE].copy(),
        "mid_contour": tracked["mid"][:, ::OUTPUT_CONTOUR_STRIDE].copy(),
        "landmarks_ed": e[0, [0, 3 * n, -1]].copy(),
    }
