"""The cardiac time course of a simulated sequence: frame times and the contraction profile.

The *activation* of a frame is the fraction of the end-systolic deformation it shows: 0 at end
diastole (ED), 1 at end systole (ES). Systole is a fast-ejection profile (steepest early, flat at
ES); diastole has early rapid filling, diastasis and the atrial kick. Both have zero slope at ED
and ES, so a full cycle is a smooth periodic function of time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .smooth import cosine_ramp

CYCLES = ("half", "full")
HEART_RATE_RANGE_BPM = (60.0, 85.0)
EJECTION_SHAPE = 0.75       # exponent < 1 moves the peak ejection velocity early in systole
EARLY_FILLING_SHARE = 0.7   # fraction of the diastolic recovery done by early (E) filling


def systole_duration(heart_rate_bpm: float) -> float:
    """Electromechanical systole (QS2) in s from the heart rate: 0.546 - 0.0021 * HR (Weissler)."""
    return 0.546 - 0.0021 * heart_rate_bpm


def systolic_activation(tau: np.ndarray) -> np.ndarray:
    """Activation (0 -> 1) at normalised systolic time ``tau`` in [0, 1]."""
    tau = np.clip(np.asarray(tau, dtype=np.float64), 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * tau ** EJECTION_SHAPE))


def diastolic_activation(tau: np.ndarray) -> np.ndarray:
    """Activation (1 -> 0) at normalised diastolic time ``tau`` in [0, 1]: isovolumic relaxation,
    early filling, diastasis, atrial contraction."""
    tau = np.asarray(tau, dtype=np.float64)
    early = cosine_ramp((tau - 0.08) / 0.32)
    atrial = cosine_ramp((tau - 0.72) / 0.28)
    return 1.0 - EARLY_FILLING_SHARE * early - (1.0 - EARLY_FILLING_SHARE) * atrial


@dataclass(frozen=True)
class CardiacTiming:
    """Frame timing of a simulated sequence.

    Attributes:
        frame_times: (T,) s from ED (0).
        activation: (T,) fraction of the ES deformation, 0 at ED, 1 at ES.
        es_index: the ES frame.
        heart_rate: beats per minute.
        systole: ED -> ES duration in s.
    """

    frame_times: np.ndarray
    activation: np.ndarray
    es_index: int
    heart_rate: float
    systole: float


def cardiac_timing(cycle: str, n_frames: int, frame_rate: float | None,
                   rng: np.random.Generator) -> CardiacTiming:
    """Timing of ``n_frames`` frames for ``cycle`` "half" (ED -> ES, ES last) or "full"
    (ED -> ES -> ED, the last frame is the next ED).

    Without ``frame_rate`` (frames per second) the heart rate is drawn from ``rng`` in
    60-85 bpm and the frames span systole (half) or the whole beat (full). With it, the frames are
    ``1 / frame_rate`` apart and the sequence duration sets systole (half) or the beat (full).
    """
    if cycle not in CYCLES:
        raise ValueError(f"cycle must be one of {CYCLES}, got {cycle!r}")
    minimum = 2 if cycle == "half" else 3
    if int(n_frames) != n_frames or n_frames < minimum:
        raise ValueError(f"a {cycle} cycle needs at least {minimum} frames, got {n_frames}")
    if frame_rate is not None and not (np.isfinite(frame_rate) and frame_rate > 0):
        raise ValueError(f"frame_rate must be positive (frames per second), got {frame_rate}")
    n = int(n_frames)
    index = np.arange(n)
    if cycle == "half":
        if frame_rate is None:
            heart_rate = float(rng.uniform(*HEART_RATE_RANGE_BPM))
            systole = systole_duration(heart_rate)
        else:
            systole = (n - 1) / frame_rate
            heart_rate = float(np.clip((0.546 - systole) / 0.0021, 30.0, 200.0))
        times = index * systole / (n - 1)
        return CardiacTiming(times, systolic_activation(index / (n - 1)), n - 1, heart_rate, systole)
    if frame_rate is None:
        heart_rate = float(rng.uniform(*HEART_RATE_RANGE_BPM))
        period = 60.0 / heart_rate
    else:
        period = (n - 1) / frame_rate
        heart_rate = 60.0 / period
    share = float(np.clip(systole_duration(heart_rate) / period, 0.3, 0.6))
    es = int(np.clip(round(share * (n - 1)), 1, n - 2))
    times = index * period / (n - 1)
    activation = np.where(index <= es, systolic_activation(index / es),
                          diastolic_activation((index - es) / (n - 1 - es)))
    return CardiacTiming(times, activation, es, heart_rate, times[es])
