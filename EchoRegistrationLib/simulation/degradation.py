"""Image-quality degradation of B-mode cines: the project's own low-quality echo, with paired clean truth.

About a fifth of clinical echo studies are technically limited. The usual causes, each an effect here
(strengths are fractions of the 0..255 grey scale unless said otherwise):

* ``haze``: a diffuse, slowly varying fog over the mid field that fills the cavity (aberration and
  side-lobe clutter), static over the loop;
* ``clutter``: bright near-field clutter decaying with depth (e-folding ``clutter_depth``, a fraction
  of the image depth), a static texture with a small frame-to-frame flicker;
* ``reverberation``: horizontal-arc bands at multiples of a random spacing from the probe (multiple
  reflections between the probe and a strong reflector), static, fading with each echo;
* ``dropout``: one or two angular sectors in which the echo is attenuated by ``dropout`` (rib or
  lung shadow, poor contact), static, with soft edges;
* ``noise``: band-limited additive noise redrawn at every frame (lower signal-to-noise ratio);
* ``dynamic_range``: the fraction of the grey scale the tissue signal keeps (1 = unchanged): grey
  levels are compressed towards a dark grey, so contrast is lost.

The static effects are what makes low-quality echo hard to register: they do not move with the
heart and pull tracking towards zero motion. Geometry: the probe sits at the top centre of the
image (row 0, column (W - 1) / 2), as in :func:`.apical.simulate_sequence`; depth and angle are
measured from it, in mm with the sequence's spacing. Pixels outside the field of view (the
sequence's mask, else the pixels that are never 0 over the loop) stay 0.

All randomness derives from ``seed``: the same seed and degradation give the same frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..sequence import EchoSequence
from .result import pixel_positions
from .texture import SmoothRandomField

HAZE_CORRELATION = 25.0         # mm, smoothness of the haze
CLUTTER_CORRELATION = 1.5       # mm, grain of the near-field clutter
CLUTTER_FLICKER = 0.2           # share of the clutter texture redrawn at each frame
REVERBERATION_WIDTH = 1.2       # mm, Gaussian sigma of a reverberation band
REVERBERATION_FADE = 0.6        # each echo of the reverberation is this fraction of the last
NOISE_CORRELATION = 0.8         # mm, grain of the additive noise
DROPOUT_EDGE = 0.25             # soft edge of a dropout sector, fraction of its width
DARK_GREY = 0.1                 # grey (fraction of full scale) towards which dynamic range shrinks
# Ranges of random_degradation at severity 1 (each effect is on with probability EFFECT_PROBABILITY).
RANDOM_RANGES = {"haze": (0.1, 0.3), "clutter": (0.2, 0.5), "reverberation": (0.1, 0.3),
                 "dropout": (0.5, 0.9), "noise": (0.05, 0.15), "dynamic_range": (0.5, 0.8)}
EFFECT_PROBABILITY = 0.75


@dataclass(frozen=True)
class Degradation:
    """Strengths of the effects (module docstring); the defaults are all off (identity).

    Attributes:
        haze: peak fog level added, fraction of full scale (0..1).
        clutter: near-field clutter level at the probe, fraction of full scale.
        clutter_depth: e-folding depth of the clutter, fraction of the image depth.
        reverberation: level of the first reverberation band, fraction of full scale.
        reverberation_spacing: distance between bands, fraction of the image depth.
        dropout: attenuation in the dropout sectors (0 none, 1 black).
        dropout_width: width of a dropout sector, fraction of the sector opening.
        noise: standard deviation of the additive noise, fraction of full scale.
        dynamic_range: fraction of the grey scale kept (1 = unchanged, 0 < value <= 1).
    """

    haze: float = 0.0
    clutter: float = 0.0
    clutter_depth: float = 0.15
    reverberation: float = 0.0
    reverberation_spacing: float = 0.12
    dropout: float = 0.0
    dropout_width: float = 0.15
    noise: float = 0.0
    dynamic_range: float = 1.0

    def __post_init__(self) -> None:
        for name in ("haze", "clutter", "reverberation", "dropout", "noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in 0..1, got {getattr(self, name)}")
        if not 0.0 < self.dynamic_range <= 1.0:
            raise ValueError(f"dynamic_range must lie in (0, 1], got {self.dynamic_range}")
        for name in ("clutter_depth", "reverberation_spacing", "dropout_width"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)}")


def random_degradation(rng: np.random.Generator, severity: float = 1.0) -> Degradation:
    """A random mix of effects: each on with probability 0.75, its strength drawn uniformly in
    :data:`RANDOM_RANGES` scaled by ``severity`` (0..1; ``dynamic_range`` moves towards 1 as the
    severity falls); at least one effect is on."""
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must lie in 0..1, got {severity}")
    on = rng.random(len(RANDOM_RANGES)) < EFFECT_PROBABILITY
    on[rng.integers(len(on))] = True
    drawn = {name: float(rng.uniform(*bounds)) for name, bounds in RANDOM_RANGES.items()}
    values = {name: severity * drawn[name] for name, keep in zip(RANDOM_RANGES, on)
              if keep and name != "dynamic_range"}
    if on[list(RANDOM_RANGES).index("dynamic_range")]:
        values["dynamic_range"] = 1.0 - severity * (1.0 - drawn["dynamic_range"])
    values["clutter_depth"] = float(rng.uniform(0.08, 0.2))
    values["reverberation_spacing"] = float(rng.uniform(0.08, 0.15))
    return Degradation(**values)


def _field_of_view(frames: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return np.asarray(mask, dtype=bool) if mask is not None else (frames > 0).any(axis=0)


def _polar(shape: tuple[int, int], spacing: tuple[float, float],
           inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W) depth (fraction of the image depth), angle (fraction of the sector's half opening,
    -1..1 inside) and (H, W, 2) mm positions, from the probe at the top centre."""
    positions = pixel_positions(shape, spacing)
    d = positions - np.array([(shape[1] - 1) * spacing[0] / 2.0, 0.0])
    depth = np.hypot(d[..., 0], d[..., 1]) / ((shape[0] - 1) * spacing[1])
    angle = np.arctan2(d[..., 0], d[..., 1])
    half_opening = max(float(np.abs(angle[inside]).max()), 1e-6) if inside.any() else np.pi / 2
    return depth, angle / half_opening, positions


def _smooth(rng: np.random.Generator, positions: np.ndarray, correlation: float) -> np.ndarray:
    """(H, W) zero-mean unit-variance smooth random field over the pixel positions."""
    upper = positions.reshape(-1, 2).max(axis=0) + correlation
    return SmoothRandomField(rng, np.zeros(2), upper, correlation)(positions)


def _dropout_gain(rng: np.random.Generator, angle: np.ndarray, degradation: Degradation) -> np.ndarray:
    """(H, W) multiplicative gain: 1 - dropout inside one or two soft-edged angular sectors."""
    gain = np.ones_like(angle)
    half = degradation.dropout_width  # half-width on the -1..1 angle scale: width x the opening (2)
    for _ in range(int(rng.integers(1, 3))):
        centre = rng.uniform(-1.0 + half, 1.0 - half)
        distance = np.abs(angle - centre) / half
        edge = np.clip((1.0 - distance) / DROPOUT_EDGE, 0.0, 1.0)
        gain = gain * (1.0 - degradation.dropout * edge)
    return gain


def degrade_frames(frames: np.ndarray, degradation: Degradation, *, seed: int,
                   spacing: tuple[float, float] = (1.0, 1.0),
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Degrade (T, H, W) B-mode frames (0..255).

    Args:
        frames: (T, H, W) intensities, 0..255.
        degradation: the effects and their strengths.
        seed: all randomness (patterns, sector positions, noise) derives from it.
        spacing: (sx, sy) mm pixel spacing.
        mask: (H, W) field of view; default the pixels that are nonzero in some frame.

    Returns:
        (T, H, W) float32 0..255, 0 outside the field of view; equal to ``frames`` (as float32)
        when every effect is off.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise ValueError(f"expected (T, H, W) frames, got shape {frames.shape}")
    if degradation == Degradation():
        return frames.copy()
    static_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    inside = _field_of_view(frames, mask)
    depth, angle, positions = _polar(frames.shape[1:], tuple(spacing), inside)
    g = degradation
    image = frames / 255.0
    if g.dropout:
        image = image * _dropout_gain(static_rng, angle, g)
    image = DARK_GREY * (1.0 - g.dynamic_range) + g.dynamic_range * image
    static = np.zeros(frames.shape[1:])
    if g.haze:
        profile = np.exp(-0.5 * ((depth - static_rng.uniform(0.35, 0.6)) / 0.25) ** 2)
        static += g.haze * profile * np.clip(0.75 + 0.25 * _smooth(static_rng, positions, HAZE_CORRELATION),
                                             0.0, 1.0)
    clutter_decay = np.exp(-depth / g.clutter_depth)
    if g.reverberation:
        first = static_rng.uniform(0.5, 1.5) * g.reverberation_spacing
        depth_mm = depth * (frames.shape[1] - 1) * spacing[1]
        for k in range(int((1.0 - first) / g.reverberation_spacing) + 1):
            centre = (first + k * g.reverberation_spacing) * (frames.shape[1] - 1) * spacing[1]
            static += g.reverberation * REVERBERATION_FADE ** k * \
                np.exp(-0.5 * ((depth_mm - centre) / REVERBERATION_WIDTH) ** 2)
    clutter_texture = _smooth(static_rng, positions, CLUTTER_CORRELATION) if g.clutter else None
    out = np.empty_like(frames)
    for t in range(len(frames)):
        frame = image[t] + static
        if clutter_texture is not None:
            flicker = _smooth(noise_rng, positions, CLUTTER_CORRELATION)
            texture = np.sqrt(1 - CLUTTER_FLICKER) * clutter_texture + np.sqrt(CLUTTER_FLICKER) * flicker
            frame = frame + g.clutter * clutter_decay * np.clip(0.6 + 0.4 * texture, 0.0, None)
        if g.noise:
            frame = frame + g.noise * _smooth(noise_rng, positions, NOISE_CORRELATION)
        out[t] = np.where(inside, np.clip(frame, 0.0, 1.0) * 255.0, 0.0)
    return out


def degrade_sequence(seq: EchoSequence, degradation: Degradation | None = None, *,
                     seed: int = 0, severity: float = 1.0) -> EchoSequence:
    """A copy of ``seq`` with degraded frames (labels, geometry and timing unchanged: the clean
    sequence is the paired truth). ``degradation`` None draws one (:func:`random_degradation`)
    from ``seed`` and ``severity``; ``metadata["degradation"]`` records the strengths and seed."""
    if degradation is None:
        degradation = random_degradation(np.random.default_rng([seed, 1]), severity)
    frames = degrade_frames(seq.frames, degradation, seed=seed, spacing=seq.spacing, mask=seq.mask)
    metadata = {**seq.metadata, "degradation": {**dataclasses.asdict(degradation), "seed": int(seed)}}
    return dataclasses.replace(seq, frames=frames, metadata=metadata)
