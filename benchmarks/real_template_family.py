"""A held-out simulated family: real CAMUS frames moved by known cardiac motion (benchmark only).

Every DLIR model of the project learns from the project's simulator (and, for CAMUS-trained models,
from real ED / ES pairs without known motion). This family forms its images differently: the ED
frame of a real patient (CAMUS ``valid``, never trained on) is the tissue, moved by a smooth analytic
cardiac motion derived from its expert mask, and re-imaged frame by frame with speckle
decorrelation, receiver noise, stationary near-field haze and gain changes. The true motion is
known, so the myocardial end-point error and the GLS error can be measured on real anatomy and real
speckle texture. It is never used for training or tuning (the trainer has no reader for it).

Motion at ES, for an ED point p (mm), with the LV long axis from the apex (the LV cavity point
farthest from the mitral annulus, the cavity pixels next to the left atrium) to the annulus midpoint,
t the distance along it and r the signed distance from it:

* longitudinal shortening: ``-strain_long * t`` along the axis (the base descends to the apex);
* radial thickening: ``-strain_radial * g(|r|)`` towards the axis, g(r) = r inside the cavity
  half-width R, R^2 / r outside (an area-preserving wall: the endocardium moves more than the
  epicardium, so the wall thickens);
* faded outside the heart by a Gaussian of the distance to the LV and myocardium (12 mm), then
  smoothed (Gaussian, 4 mm). Frame k of K is the ES field times (1 - cos(pi k / (K - 1))) / 2.

The frame at time k samples the ED frame through the inverse map (so ED point p appears at
p + u_k(p)), times a multiplicative speckle pattern that moves with the tissue and decorrelates
(correlation 0.85^k with the ED pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from EchoRegistrationLib.sequence import LABEL_LV, LABEL_MYOCARDIUM, EchoSequence
from EchoRegistrationLib.spatial import field_to_numpy, field_to_torch, invert_field, warp

LABEL_LA = 3
STRAIN_LONG = (0.12, 0.20)  # longitudinal shortening of the LV at ES (GLS -12 .. -20 %)
STRAIN_RADIAL = (0.15, 0.30)  # radial shortening of the cavity at ES
FADE_MM, SMOOTH_MM = 12.0, 4.0
SPECKLE_DEPTH, SPECKLE_CORRELATION = 0.3, 0.85  # modulation amplitude; correlation per frame
HAZE_RANGE = (0.05, 0.20)  # of the 255 grey range, stationary, fading with depth
NOISE = 0.02  # additive noise standard deviation, of the 255 grey range
FRAME_GAIN = 0.05  # per-frame gain within 1 +- this
ES_SECONDS = 0.3  # ED -> ES duration


@dataclass
class TemplateCase:
    """One sequence of the family.

    Attributes:
        sequence: K frames ED -> ES, ED labels (frame 0), ``ed_index`` 0, ``es_index`` K - 1, view 4CH.
        displacement: (K, H, W, 2) float32 mm true field from frame 0 (project convention).
        myocardium: (H, W) bool ED myocardium (label 2).
    """

    sequence: EchoSequence
    displacement: np.ndarray
    myocardium: np.ndarray


def long_axis(labels: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(apex, base) in mm (x, y) of an (H, W) CAMUS label map: the base is the mean of the LV
    cavity pixels next to the left atrium (else the deepest cavity rows), the apex the cavity pixel
    farthest from it.

    Raises:
        ValueError: no LV cavity in the map.
    """
    cavity = labels == LABEL_LV
    if not cavity.any():
        raise ValueError("the label map has no LV cavity")
    atrium = cv2.dilate((labels == LABEL_LA).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rows, cols = np.nonzero(cavity & atrium)
    if rows.size == 0:
        rows, cols = np.nonzero(cavity)
        deepest = rows >= np.percentile(rows, 95)
        rows, cols = rows[deepest], cols[deepest]
    scale = np.asarray(spacing, dtype=np.float64)
    base = np.array([cols.mean(), rows.mean()]) * scale
    rows, cols = np.nonzero(cavity)
    points = np.stack([cols, rows], axis=1) * scale
    apex = points[np.argmax(np.linalg.norm(points - base, axis=1))]
    return apex, base


def es_field(labels: np.ndarray, spacing: tuple[float, float], strain_long: float,
             strain_radial: float) -> np.ndarray:
    """(H, W, 2) float32 mm ES field of the analytic motion (module docstring) for an ED label map."""
    apex, base = long_axis(labels, spacing)
    length = float(np.linalg.norm(base - apex))
    axis = (base - apex) / length
    normal = np.array([-axis[1], axis[0]])
    h, w = labels.shape
    x, y = np.meshgrid(np.arange(w) * spacing[0], np.arange(h) * spacing[1])
    offset = np.stack([x - apex[0], y - apex[1]], axis=-1)
    along, across = offset @ axis, offset @ normal
    half_width = (labels == LABEL_LV).sum() * spacing[0] * spacing[1] / (2 * length)
    distance = np.abs(across)
    radial = np.where(distance <= half_width, distance, half_width ** 2 / np.maximum(distance, 1e-6))
    field = (-strain_long * np.clip(along, 0, 1.2 * length))[..., None] * axis \
        - (strain_radial * radial * np.sign(across))[..., None] * normal
    heart = ((labels == LABEL_LV) | (labels == LABEL_MYOCARDIUM)).astype(np.uint8)
    outside = cv2.distanceTransform(1 - heart, cv2.DIST_L2, 5) * float(np.mean(spacing))
    field *= np.exp(-0.5 * (outside / FADE_MM) ** 2)[..., None]
    sigma = SMOOTH_MM / float(np.mean(spacing))
    return cv2.GaussianBlur(field.astype(np.float32), (0, 0), sigma)


def _speckle(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) unit-variance speckle-sized noise (white noise blurred over about a pixel)."""
    pattern = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.0)
    return pattern / pattern.std()


def make_case(ed_frame: np.ndarray, ed_labels: np.ndarray, spacing: tuple[float, float],
              n_frames: int, seed: int) -> TemplateCase:
    """A :class:`TemplateCase` of ``n_frames`` (>= 2) from a real (H, W) ED frame (grey 0..255) and
    its CAMUS label map; all randomness from ``seed``."""
    if n_frames < 2:
        raise ValueError(f"need at least 2 frames, got {n_frames}")
    rng = np.random.default_rng(seed)
    spacing = (float(spacing[0]), float(spacing[1]))
    u_es = es_field(ed_labels, spacing, rng.uniform(*STRAIN_LONG), rng.uniform(*STRAIN_RADIAL))
    shape = ed_labels.shape
    base_pattern = _speckle(shape, rng)
    depth = np.linspace(0, 1, shape[0])[:, None]
    clutter = cv2.resize(rng.random((6, 6)).astype(np.float32), shape[::-1], interpolation=cv2.INTER_CUBIC)
    haze = 255 * rng.uniform(*HAZE_RANGE) * np.clip(clutter, 0, 1) * np.exp(-depth / 0.25)
    sector = ed_frame > 0
    image = torch.from_numpy(np.asarray(ed_frame, np.float32))[None, None]
    frames, fields = [], []
    for k in range(n_frames):
        fraction = 0.5 * (1 - np.cos(np.pi * k / (n_frames - 1)))
        u = field_to_torch(fraction * u_es)
        inverse = invert_field(u, spacing, 30)
        rho = SPECKLE_CORRELATION ** k
        pattern = warp(torch.from_numpy(base_pattern)[None, None], inverse, spacing)[0, 0].numpy()
        pattern = np.sqrt(rho) * pattern + np.sqrt(1 - rho) * _speckle(shape, rng)
        moved = warp(image, inverse, spacing)[0, 0].numpy()
        moved_sector = warp(torch.from_numpy(sector.astype(np.float32))[None, None], inverse,
                            spacing)[0, 0].numpy() > 0.5
        frame = moved * np.clip(1 + SPECKLE_DEPTH * pattern, 0, None) * rng.uniform(1 - FRAME_GAIN, 1 + FRAME_GAIN)
        frame = (frame + haze + 255 * NOISE * rng.standard_normal(shape)) * (sector | moved_sector)
        frames.append(np.clip(frame, 0, 255).astype(np.float32))
        fields.append(field_to_numpy(u)[0])
    seq = EchoSequence(frames=np.stack(frames), spacing=spacing,
                       frame_times=np.linspace(0, ES_SECONDS, n_frames), labels=ed_labels.astype(np.uint8),
                       ed_index=0, es_index=n_frames - 1,
                       metadata={"source": f"real-template case {seed}", "view": "4CH"})
    return TemplateCase(seq, np.stack(fields).astype(np.float32), ed_labels == LABEL_MYOCARDIUM)
