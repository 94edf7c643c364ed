"""A held-out physics-simulated family: SIMUS echo of a synthetic beating LV (benchmark only).

Every model of the project learns from images formed by texture models: the project's own simulator
(a speckle-texture model) and CAMUS frames re-imaged with multiplicative speckle. This family forms
its images from acoustics instead: the RF signals of a 64-element 2.7 MHz phased array (the P4-2v of
:func:`pymust.getparam`) are computed by SIMUS (Garcia, "SIMUS: an open-source simulator for medical
ultrasound imaging. Part I: theory & examples", Comput. Methods Programs Biomed. 218, 2022; the
``pymust`` port on PyPI) from point scatterers, demodulated, beamformed by delay-and-sum on a
Cartesian grid (:func:`pymust.dasmtx`) and log-compressed. The speckle, the point-spread function that
widens with depth, the side lobes of a single diverging-wave transmit, and the speckle changes under
deformation all come from the physics, not from a texture model. It is never used for training or
tuning (the trainer has no reader for it); it needs the benchmark extra ``pymust``.

Anatomy (ED, mm, probe at the origin, depth z): a left ventricle in apical four-chamber view, the long
axis from the apex (25-35 mm deep) tilted by up to 8 degrees; the cavity a half-ellipse of half-width
``a`` (20-25 mm) and length ``L`` (65-75 mm), the wall 8-11 mm thick (myocardium), the left atrium below
the base and the right ventricle beside the septum (blood), pericardium brighter than the rest of the
tissue. Echogenicity (scatterer amplitude): blood 0.03, tissue 0.5, myocardium 1, pericardium 1.8.

Motion at ES of an ED point, in the axis frame (t along the axis from the apex, s across it):

* longitudinal shortening ``-e(s) * t`` along the axis, e(s) blending a septal and a lateral strain
  (12-22 %), one case in two with a hypokinetic region (strain halved over about 25 mm of one wall);
  beyond the base (the atrium and below) the base's motion fades over :data:`BEYOND_BASE_MM`;
* radial motion towards the axis: the cavity contracts by a fraction (15-30 %) of its half-width, the
  epicardium moves half as far as the endocardium (the wall thickens), fading outside the heart;
* the whole field smoothed (Gaussian, sigma 3 mm); frame k of K is the ES field times
  (1 - cos(pi k / (K - 1))) / 2; K frames span ED -> ES in 0.3 s (6 frames: 17 frames/s, a low rate:
  neighbouring frames move up to about 3 mm apart).

Scatterer p of ED is at p + u_k(p) in frame k (the project's convention), so the field on the ED pixel
grid is the truth. Each scatterer's random amplitude changes a little from frame to frame (correlation
0.995: decorrelation beyond the deformation's own), receiver noise is added to the RF, and 60 bright
stationary point scatterers 4-14 mm deep stay where they are (near-field clutter that does not move with
the heart). Scatterers fill the sector and :data:`BELOW_SECTOR_MM` below it, so tissue moving up into
the sector comes with its speckle. The images are normalised per case and log-compressed over a dynamic
range drawn in 40-55 dB. One diverging wave per frame, no compounding: the blood pool is mid-grey
(side lobes of the walls), darker than the wall but less dark than in clinical echo.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.real_template_family import LABEL_LA, TemplateCase
from EchoRegistrationLib.io.atomic import atomic_output
from EchoRegistrationLib.sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoSequence

PROBE = "P4-2v"
SECTOR_DEG = 75.0
DEPTH_MM = 120.0
PIXEL_MM = 0.4  # output grid (x and z)
SCATTERERS_PER_MM2 = 2.0
ECHOGENICITY = {"blood": 0.03, "tissue": 0.5, "myocardium": 1.0, "pericardium": 1.8}
STRAIN_LONG = (0.12, 0.22)
STRAIN_RADIAL = (0.15, 0.30)
SMOOTH_MM = 3.0
FADE_MM = 15.0
BEYOND_BASE_MM = 20.0  # sd of the Gaussian fade of the longitudinal motion beyond the base
BELOW_SECTOR_MM = 25.0  # scatterers also this far below the imaged depth
AMPLITUDE_CORRELATION = 0.995  # of each scatterer's random amplitude from one frame to the next
CLUTTER = (60, (-15.0, 15.0), (4.0, 14.0), 1.5)  # stationary scatterers: count, x range, z range mm, amplitude sd
DYNAMIC_RANGE_DB = (40.0, 55.0)
NOISE_DB = -40.0  # receiver noise, relative to the RF's RMS
ES_SECONDS = 0.3
VERSION = 2  # of the generator (2: motion fading beyond the base, scatterers below the sector)


def _axis_coordinates(x: np.ndarray, z: np.ndarray, geometry: dict) -> tuple[np.ndarray, np.ndarray]:
    """(t, s) mm of points (x, z) mm: along the long axis from the apex, and across it."""
    angle = np.deg2rad(geometry["tilt_deg"])
    dx, dz = x - geometry["apex"][0], z - geometry["apex"][1]
    t = dx * np.sin(angle) + dz * np.cos(angle)
    s = dx * np.cos(angle) - dz * np.sin(angle)
    return t, s


def _half_width(t: np.ndarray, half: float, length: float) -> np.ndarray:
    """Half-width (mm) at t of a half-ellipse of base half-width ``half`` from the apex (t = 0) to the
    base (t = ``length``); 0 outside 0..length."""
    inside = np.clip(1 - ((t - length) / length) ** 2, 0, None)
    return half * np.sqrt(inside) * (t <= length)


def tissue_labels(x: np.ndarray, z: np.ndarray, geometry: dict) -> dict[str, np.ndarray]:
    """Boolean masks of the same shape as ``x`` / ``z`` (mm): cavity, myocardium, atrium, right
    ventricle, pericardium."""
    t, s = _axis_coordinates(x, z, geometry)
    a, length, wall = geometry["half_width"], geometry["length"], geometry["wall"]
    cavity = (np.abs(s) < _half_width(t, a, length)) & (t >= 0)
    outer = (np.abs(s) < _half_width(t + wall, a + wall, length + wall)) & (t >= -wall) & (t <= length)
    myocardium = outer & ~cavity
    atrium = ((s / (0.85 * a)) ** 2 + ((t - length - 0.8 * a) / (0.9 * a)) ** 2) < 1
    rv_centre = -(a + wall + 0.7 * a)
    right = (((s - rv_centre) / (0.7 * a)) ** 2 + ((t - 0.6 * length) / (0.45 * length)) ** 2) < 1
    band = (np.abs(s) < _half_width(t + wall + 3, a + wall + 3, length + wall + 3)) & (t >= -wall - 3)
    pericardium = band & ~outer & ~atrium & ~right & (t <= length)
    return {"cavity": cavity, "myocardium": myocardium, "atrium": atrium & ~outer, "right": right & ~outer,
            "pericardium": pericardium}


def es_motion(x: np.ndarray, z: np.ndarray, geometry: dict, motion: dict) -> np.ndarray:
    """(..., 2) mm ES displacement (x, z) of ED points (x, z) mm, before smoothing (module docstring)."""
    t, s = _axis_coordinates(x, z, geometry)
    a, length, wall = geometry["half_width"], geometry["length"], geometry["wall"]
    side = 1 / (1 + np.exp(-s / 8.0))  # 0 septal (s < 0), 1 lateral
    strain = motion["septal"] + (motion["lateral"] - motion["septal"]) * side
    if motion["hypokinetic_wall"] is not None:
        on_wall = side if motion["hypokinetic_wall"] == "lateral" else 1 - side
        strain = strain * (1 - 0.5 * on_wall * np.exp(-0.5 * ((t - motion["hypokinetic_t"]) / 12.0) ** 2))
    beyond_base = np.clip(t - length, 0, None)
    along = -strain * np.clip(t, 0, length) * np.exp(-0.5 * (beyond_base / BEYOND_BASE_MM) ** 2)
    endo = _half_width(np.clip(t, 0.05 * length, length), a, length)
    depth_in_wall = np.clip((np.abs(s) - endo) / wall, 0, None)
    radial = np.where(np.abs(s) <= endo, np.abs(s),
                      endo * np.where(depth_in_wall <= 1, 1 - 0.5 * depth_in_wall,
                                      0.5 * np.exp(-0.5 * ((depth_in_wall - 1) * wall / FADE_MM) ** 2)))
    across = -motion["radial"] * radial * np.sign(s)
    outside = np.clip(np.abs(s) - _half_width(np.clip(t, 0, length), a + wall, length), 0, None)
    beyond_apex = np.clip(-t - wall, 0, None)
    fade = np.exp(-0.5 * (np.hypot(outside, beyond_apex) / FADE_MM) ** 2)
    along, across = along * fade, across * fade
    angle = np.deg2rad(geometry["tilt_deg"])
    ux = along * np.sin(angle) + across * np.cos(angle)
    uz = along * np.cos(angle) - across * np.sin(angle)
    return np.stack([ux, uz], axis=-1)


def draw_case(seed: int) -> tuple[dict, dict]:
    """(geometry, motion) of case ``seed``: every random choice of the case."""
    rng = np.random.default_rng(seed)
    geometry = {"apex": (float(rng.uniform(-6, 6)), float(rng.uniform(25, 35))),
                "tilt_deg": float(rng.uniform(-8, 8)), "half_width": float(rng.uniform(20, 25)),
                "length": float(rng.uniform(65, 75)), "wall": float(rng.uniform(8, 11))}
    hypokinetic = rng.random() < 0.5
    motion = {"septal": float(rng.uniform(*STRAIN_LONG)), "lateral": float(rng.uniform(*STRAIN_LONG)),
              "radial": float(rng.uniform(*STRAIN_RADIAL)),
              "hypokinetic_wall": (str(rng.choice(["septal", "lateral"])) if hypokinetic else None),
              "hypokinetic_t": float(rng.uniform(0.3, 0.8) * geometry["length"])}
    return geometry, motion


class _SmoothField:
    """The ES field smoothed on a fine grid, sampled anywhere by bilinear interpolation."""

    STEP_MM = 0.25

    def __init__(self, geometry: dict, motion: dict):
        half = DEPTH_MM * np.sin(np.deg2rad(SECTOR_DEG / 2)) + 10
        self.x0, self.z0 = -half, -5.0
        xs = np.arange(self.x0, half, self.STEP_MM)
        zs = np.arange(self.z0, DEPTH_MM + 10, self.STEP_MM)
        x, z = np.meshgrid(xs, zs)
        raw = es_motion(x, z, geometry, motion)
        sigma = SMOOTH_MM / self.STEP_MM
        self.field = cv2.GaussianBlur(raw.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)

    def __call__(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(..., 2) float32 mm field at points (x, z) mm of any shape."""
        shape, count = np.shape(x), np.size(x)
        width = 1024  # cv2.remap takes maps of fewer than 32767 columns: the points in rows of this many
        padded = -(-count // width) * width
        columns, rows = (np.resize(((np.ravel(v) - origin) / self.STEP_MM).astype(np.float32), padded)
                         .reshape(-1, width) for v, origin in ((x, self.x0), (z, self.z0)))
        sampled = cv2.remap(self.field, columns, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return sampled.reshape(-1, 2)[:count].reshape(*shape, 2)


def output_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, z, sector) of the output pixels: (H, W) mm and the mask of pixels inside the sector."""
    half = DEPTH_MM * np.sin(np.deg2rad(SECTOR_DEG / 2))
    xs = np.arange(-half, half + 1e-6, PIXEL_MM)
    zs = np.arange(0, DEPTH_MM + 1e-6, PIXEL_MM)
    x, z = np.meshgrid(xs, zs)
    radius, angle = np.hypot(x, z), np.degrees(np.arctan2(x, z))
    return x, z, (radius <= DEPTH_MM) & (radius >= 2) & (np.abs(angle) <= SECTOR_DEG / 2)


def _scatterers(rng: np.random.Generator, geometry: dict,
                density: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, z, echogenicity) of the ED scatterers, ``density`` per mm^2 uniform over the sector and
    :data:`BELOW_SECTOR_MM` below it (mm)."""
    reach = DEPTH_MM + BELOW_SECTOR_MM
    area = np.deg2rad(SECTOR_DEG) / 2 * reach ** 2
    n = int(density * area)
    radius = reach * np.sqrt(rng.uniform(0.0003, 1, n))
    angle = np.deg2rad(rng.uniform(-SECTOR_DEG / 2, SECTOR_DEG / 2, n))
    x, z = radius * np.sin(angle), radius * np.cos(angle)
    parts = tissue_labels(x, z, geometry)
    echo = np.full(n, ECHOGENICITY["tissue"])
    for name, key in (("cavity", "blood"), ("atrium", "blood"), ("right", "blood"),
                      ("myocardium", "myocardium"), ("pericardium", "pericardium")):
        echo[parts[name]] = ECHOGENICITY[key]
    return x, z, echo


def _beamform(x_mm: np.ndarray, z_mm: np.ndarray, amplitude: np.ndarray, grid: tuple[np.ndarray, np.ndarray],
              rng: np.random.Generator, param) -> np.ndarray:
    """|IQ| (H, W) of one diverging-wave transmit over the scatterers, on the output grid (mm)."""
    import pymust  # the benchmark extra

    delays = pymust.txdelay(param, 0, np.deg2rad(SECTOR_DEG))
    rf = pymust.simus(x_mm / 1000, z_mm / 1000, amplitude, delays, param)[0]
    rf = rf + rng.standard_normal(rf.shape) * np.sqrt(np.mean(rf ** 2)) * 10 ** (NOISE_DB / 20)
    iq = pymust.rf2iq(rf, param)
    x, z = grid[0] / 1000, grid[1] / 1000
    das = pymust.dasmtx(iq, x, z, delays, param)
    return np.abs(das @ iq.flatten(order="F")).reshape(x.shape, order="F")


def frame_fractions(n_frames: int) -> np.ndarray:
    """(K,) fraction of the ES motion reached at each frame: (1 - cos(pi k / (K - 1))) / 2."""
    return 0.5 * (1 - np.cos(np.pi * np.arange(n_frames) / (n_frames - 1)))


def case_truth(seed: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What case ``seed`` is, without its images: ((H, W) uint8 ED labels (LV 1, myocardium 2, atrium
    3, 0 elsewhere and outside the sector), (K, H, W, 2) float32 mm true fields from ED, (H, W) bool
    sector) on the output grid (:func:`output_grid`).

    Raises:
        ValueError: fewer than 2 frames.
    """
    if n_frames < 2:
        raise ValueError(f"need at least 2 frames, got {n_frames}")
    geometry, motion = draw_case(seed)
    x, z, sector = output_grid()
    truth = frame_fractions(n_frames)[:, None, None, None] * _SmoothField(geometry, motion)(x, z)[None]
    parts = tissue_labels(x, z, geometry)
    labels = np.zeros(x.shape, np.uint8)
    labels[parts["atrium"]] = LABEL_LA
    labels[parts["cavity"]] = LABEL_LV
    labels[parts["myocardium"]] = LABEL_MYOCARDIUM
    labels[~sector] = 0
    return labels, truth.astype(np.float32), sector


def make_simus_case(seed: int, n_frames: int, cache: Path | None = None) -> TemplateCase:
    """A :class:`TemplateCase` of ``n_frames`` (>= 2) SIMUS frames ED -> ES; all randomness from
    ``seed``. With ``cache``, the frames are read from (or written to) a file there named by the seed,
    the frame count and the generator's constants (a case of 6 frames takes about 2 min on 2 cores).

    Raises:
        ValueError: fewer than 2 frames.
        ImportError: the frames are not in ``cache`` and ``pymust`` is not installed (``pip install -e
            ".[benchmark]"``).
    """
    labels, truth, sector = case_truth(seed, n_frames)
    frames = _cached_frames(seed, n_frames, cache, lambda: simulate_frames(seed, n_frames))
    seq = EchoSequence(frames=np.where(sector[None], frames, 0).astype(np.float32), spacing=(PIXEL_MM, PIXEL_MM),
                       frame_times=np.linspace(0, ES_SECONDS, n_frames), labels=labels, ed_index=0,
                       es_index=n_frames - 1, metadata={"source": f"SIMUS case {seed}", "view": "4CH"})
    return TemplateCase(seq, truth, labels == LABEL_MYOCARDIUM)


def _cached_frames(seed: int, n_frames: int, cache: Path | None, simulate) -> np.ndarray:
    """``simulate()``, or the frames it made before, kept in ``cache`` (written atomically)."""
    if cache is None:
        return simulate()
    constants = [VERSION, PROBE, SECTOR_DEG, DEPTH_MM, PIXEL_MM, SCATTERERS_PER_MM2, ECHOGENICITY, STRAIN_LONG,
                 STRAIN_RADIAL, SMOOTH_MM, FADE_MM, BEYOND_BASE_MM, BELOW_SECTOR_MM, AMPLITUDE_CORRELATION, CLUTTER,
                 DYNAMIC_RANGE_DB, NOISE_DB, ES_SECONDS]
    key = hashlib.sha1(json.dumps([constants, seed, n_frames], sort_keys=True).encode()).hexdigest()
    path = Path(cache) / f"simus_{seed}_{n_frames}_{key[:10]}.npy"
    if path.exists():
        return np.load(path)
    frames = simulate()
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as handle:
        np.save(handle, frames)
    return frames


def simulate_frames(seed: int, n_frames: int, scatterers_per_mm2: float = SCATTERERS_PER_MM2) -> np.ndarray:
    """(K, H, W) float32 grey 0..255 frames of case ``seed`` on the output grid (log-compressed |IQ|,
    0 outside the sector's beamformed area). ``scatterers_per_mm2`` below the default only for tests.

    Raises:
        ImportError: ``pymust`` is not installed.
    """
    import pymust  # the benchmark extra

    geometry, motion = draw_case(seed)
    field = _SmoothField(geometry, motion)
    x, z, _ = output_grid()
    rng = np.random.default_rng(seed + 1_000_003)
    param = pymust.getparam(PROBE)
    x0, z0, echo = _scatterers(rng, geometry, scatterers_per_mm2)
    amplitude = rng.standard_normal(x0.size)
    count, x_range, z_range, clutter_sd = CLUTTER
    clutter_x, clutter_z = rng.uniform(*x_range, count), rng.uniform(*z_range, count)
    clutter_amplitude = clutter_sd * rng.standard_normal(count)
    es = field(x0, z0)
    dynamic_range = rng.uniform(*DYNAMIC_RANGE_DB)
    rho = AMPLITUDE_CORRELATION
    images = []
    for fraction in frame_fractions(n_frames):
        amplitude = rho * amplitude + np.sqrt(1 - rho ** 2) * rng.standard_normal(amplitude.size)
        xs = np.concatenate([x0 + fraction * es[:, 0], clutter_x])
        zs = np.concatenate([z0 + fraction * es[:, 1], clutter_z])
        reflection = np.concatenate([echo * amplitude, clutter_amplitude])
        images.append(_beamform(xs, zs, reflection, (x, z), rng, param))
    envelope = np.stack(images)
    db = 20 * np.log10(envelope / np.percentile(envelope, 99.9) + 1e-12)
    return np.clip(255 * (db + dynamic_range) / dynamic_range, 0, 255).astype(np.float32)
