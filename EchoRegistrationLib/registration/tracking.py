"""Sequence tracking: every frame of an echo cine registered to a reference frame.

``register_sequence`` is the public entry point of every method (optimisation-based here; the
deep-learning method plugs into the same result type). Fields follow the project convention: on the
reference frame's grid, in mm, components (x, y), mapping a reference point to its position in
frame t; the reference frame's own field is zero.

Frames without signal (constant intensity: a dropped or blanked frame) carry no motion information.
They are left out of the registration: tracking goes across them (the next frame is registered to
the last frame with signal), and their own field is interpolated linearly in time between the
nearest frames with signal on either side (held from the nearest one past the last such frame).
They are marked in :attr:`RegistrationResult.no_signal` and named in its ``warnings``, as is every
frame whose similarity to the reference the registration lowered. The frames without signal, those
whose NCC with the reference stays under :data:`LOW_SIMILARITY` after registration, and those uncorrelated
with it before registration that it makes resemble the reference only weakly (a field fitted to noise) are
the frames whose field is not a measurement of motion (:func:`unmeasured_frames`,
:attr:`RegistrationResult.unmeasured`): strain leaves them out of ED / ES detection and peak strain
(:mod:`..strain.reference`).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..losses import ncc
from ..memory import allocator_setting, keep_freed_memory
from ..sequence import EchoDataError, EchoSequence, no_signal_frames
from ..device import resolve_device
from ..spatial import compose, field_to_numpy, folding_fraction, warp
from ..spatial.pairs import (SYSTOLE_ANCHOR, anchor_frames, chain_to_reference, check_anchors, fixed_indices,
                             frame_pairs, systole_anchors)
from ..spatial.pyramid import level_shape
from ..strain.contours import apical_view
from .pairwise import KINDS, RegistrationCancelled, _schedule, as_image_batch, image_mismatch, register_pair

if TYPE_CHECKING:
    from ..dlir.model import DLIRModel

# NCC drops smaller than this are numerical noise, not a worse alignment.
NCC_DROP_TOLERANCE = 1e-3
# A frame whose NCC with the reference stays under this after registration hardly resembles it (another
# view, a scene cut, noise): its field is not a measurement of motion. The project's threshold, set far
# below what echo cines reach after registration (0.95-0.98 mean on the shared real cines, README).
LOW_SIMILARITY = 0.3
# A frame uncorrelated with the reference before registration (NCC under UNCORRELATED) counts as a measurement
# only when the registration makes it clearly resemble the reference (NCC UNCORRELATED_RESEMBLANCE or more): a
# deformable field fits a frame of noise up to NCC 0.49 (a simulated cine's, -0.006 before), while a texture
# that moved (a speckle pattern shifted by a few pixels is uncorrelated with itself) matches again (NCC near 1).
# Echo frames do not reach the first threshold: CAMUS A4C ES frames have 0.66 or more with their ED frame over
# the whole frame (250 train patients), 0.15 or more inside an approximate sector, the shared real A4C cine 0.31
# or more inside its sector mask; after registration they reach 0.9 and more.
UNCORRELATED, UNCORRELATED_RESEMBLANCE = 0.1, 0.6
METHODS = (*KINDS, "dlir")
ProgressCallback = Callable[[int, int], None]

# Defaults chosen on simulated apical sequences (benchmarks/benchmark_registration.py, README):
# neighbouring frames tracked with MSE and a short schedule were both the most accurate and the
# fastest (0.45 mm myocardial error at ES in 2.9 s for 20 frames of 256 x 256, against 0.60 mm
# in 12 s with local NCC); direct registration of ES to ED fails on the large, decorrelated motion.
DEFAULT_MODE = "sequential"

# Rigid and affine use global NCC with Adam and a short schedule (gain-invariant, and several
# times faster on a whole sequence than local NCC with L-BFGS at the same alignment).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "rigid": {"loss": "ncc", "optimizer": "adam", "iterations": (60, 40, 40)},
    "affine": {"loss": "ncc", "optimizer": "adam", "iterations": (60, 40, 40)},
    "deformable": {"loss": "mse", "iterations": (60, 40, 20)},
}


# DLIR refinement warm-starts the optimiser from the network's field, at most two pyramid levels
# (:func:`refine_schedule`): ``refine // 2`` steps at half resolution (control points 12 mm apart),
# ``refine // 4`` at full resolution (6 mm), the step halved after 5 steps without gain. A half level
# with fewer rows than the network's working grid is skipped (the refinement is then ``refine // 2``
# steps at full resolution): it cannot resolve more than the network already did. The images are
# compared at each level's resolution; the regulariser and the folding penalty see the field on the
# network's working grid (``penalty_rows`` of :func:`register_pair`): the field is smooth on that
# scale (control points 6 mm apart, the network's own grid 1.2 mm), and at full resolution they cost
# a third of the refinement's time. Chosen on validation data with stage-5 echoreg-dlir-camus
# (benchmarks/validate_refine_schedule.py; README, "Deep-learning registration", gives the table).
REFINE_PATIENCE = 5
# Adam's step size per level (``learning_rate`` of :func:`register_pair`, in full-resolution pixels, scaled by the
# level's factor), coarse levels first: the half level keeps register_pair's 0.5 (1 pixel of the full-resolution
# grid per step: the refinement's reach), the full level takes 0.25 (a refinement of one level, on small frames,
# keeps 0.5: it has to reach too). The full level starts where the half level ended and only polishes; Adam's
# first steps move every control point by about the step size whatever its gradient, and at 0.5 the few steps
# left did not take that out again. Chosen on validation data only (the twentieth session;
# benchmarks/validate_tracking_modes.py --digits 3 with and without --learning-rate 0.5,
# benchmarks/validate_refine_schedule.py --learning-rates 0.5; probes in runs/s20), the default refinement
# (refine 24, the better of two starts), 0.5 at both levels -> 0.25 at the full level, mean ES end-point error in mm:
#   SIMUS seeds 40000-40007                      0.357 -> 0.346  (the same starts kept)
#   the simulator's seeds 5000-5007              0.722 -> 0.720; randomised 1.031 -> 1.023; plain 1.049 -> 1.045
#   whole simulated cycles (mean over frames)    0.509 -> 0.497
#   the real-template generator, train patients  0.237 -> 0.221
#   from the true fields (the floor)             0.17 / 0.32 / 0.07 -> 0.16 / 0.31 / 0.05 (SIMUS / simulator /
#                                                real-template); from 0.8 x them (the reach) 0.32 / 0.84 / 0.15 ->
#                                                0.31 / 0.83 / 0.14
#   25 CAMUS train patients x 2 directions       Dice LV / myocardium 0.895 / 0.826, 0.918 / 0.823 -> 0.895 / 0.827,
#                                                0.918 / 0.823 (112-pixel pairs: one level, unchanged); 230 -> 237 ms
#                                                a pair (0.36x -> 0.37x the optimiser's)
# One smaller step at both levels (0.3 to 0.1) gained about as much from the network's starts (the best start,
# 0.3 / 0.15: 0.345 / 0.341, 0.732 / 0.729, 0.222 / 0.221; 0.25 and 0.2 kept the direct start of one SIMUS case, 0.74
# mm off: 0.386, 0.383) but lost reach: from 0.8 x the true fields, without the anatomy maps, SIMUS 0.32 -> 0.35
# (0.3), 0.40 (0.25), 0.46 (0.2), 0.52 (0.15), 0.63 (0.1); the real-template generator 0.15 -> 0.24 (0.3), 0.41
# (0.2), 0.55 (0.15).
REFINE_LEARNING_RATES = (0.5, 0.25)
# The refinement also penalises non-positive Jacobian determinants of the whole field (network +
# residual; :func:`..losses.folding_penalty`, ``folding_weight`` of :func:`register_pair`). The
# network's field does not fold, but the refined one did, bending energy notwithstanding: refine 40
# on 25 CAMUS *training* patients x 2 directions folded 0.28 % of the pixels on average, 2.8 % at
# most. Weight 100 (margin det J 0.1) brought that to 0.000 % / 0.008 % with Dice unchanged (weight
# 10: 0.040 % at most; 1000: no better); benchmarks/benchmark_refine_folding.py.
REFINE_FOLDING: dict[str, float] = {"folding_weight": 100.0, "folding_margin": 0.1}
# The refinement regularises only its residual, not the network's field (``regularise`` of
# :func:`register_pair`), with bending-energy weight 3: regularising the whole field smoothed the
# network's field too and cost ED->ES Dice. On 50 CAMUS *training* patients x 2 directions (ED->ES /
# ES->ED, LV / myocardium) the network alone gave 0.891/0.821 / 0.914/0.811, refine 40 regularising
# the whole field 0.875/0.804 / 0.908/0.817, the residual with weight 3 0.888/0.824 / 0.914/0.813
# (weights 1, 0.3, 0.1 lower; 10 0.890/0.824 / 0.914/0.813); ES end-point error on the simulator's
# validation seeds 5000-5007 0.84, 0.73, 0.70 (weight 10: 0.74) mm; benchmarks/benchmark_refine_folding.py.
REFINE_REGULARISATION: dict[str, Any] = {"regularise": "residual", "regularisation_weight": 3.0}
# A model with an anatomy network (:mod:`..dlir.anatomy`) refines against its LV, myocardium and LA
# probability maps too, weighted 0.1 beside the image MSE (``features`` / ``feature_weight`` of
# :func:`register_pair`). The image alone lost Dice on real pairs against the network alone, in each of
# the 19 similarities, grids and gates tried (docs/generalisation.md, "Eighth session"): the speckle's optimum is not
# where experts draw the walls. Chosen on data neither network trained on: a prototype anatomy network
# (the same U-Net on a 1 mm grid, a probe script) trained on 200 CAMUS *training* patients, refine 40
# scored on the other 50 x 2 directions (Dice gain over the network alone, LV / myocardium, 95 %
# bootstrap interval) and on the simulator's validation seeds 5000-5007 and 16 warped training templates
# (ES end-point error against the network alone):
#   weight  ED->ES LV        myocardium       ES->ED LV        myocardium       sim EPE  template EPE
#   0       -0.003           +0.001           -0.002           -0.003           -0.037   -0.085 mm
#   0.03    +0.001           +0.004           +0.002           +0.002           -0.065   -0.082
#   0.1     +0.007           +0.007           +0.006           +0.006           -0.061   -0.047
#           [+0.002, +0.010] [+0.003, +0.012] [+0.002, +0.009] [+0.001, +0.010]
#   0.3     +0.011           +0.008           +0.008           +0.006           +0.185   +0.097
#   1       +0.014           +0.009           +0.008           +0.006           +1.02    +0.44
# (0: the image alone, as before; runs/seg10/probe_seg.py, not kept: the numbers are in docs/generalisation.md,
# "Tenth session".)
# The rule: the weight gaining Dice on both structures in both directions
# (intervals above 0) without losing end-point error on either simulated family against the network
# alone. 0.1 is the only one (0.3 and above follow the maps where the simulated motion differs:
# per-frame segmentations have their own errors; 0.03 gains too little). With the shipped recipe instead of
# the prototype (benchmarks/validate_refine_anatomy.py, refine 24, the same patients) 0.1 gained over the
# network alone in the mean only: +0.002 / +0.003 / +0.001 / +0.001, every interval containing 0; over
# the image alone +0.004 [+0.002, +0.007] / +0.002 / +0.002 / +0.003, at +0.047 mm on the templates.
# Trained 10000 steps instead of 4000 (the shipped recipe since 2026-12-01), that anatomy network gave
# +0.006 / +0.007 / +0.005 / +0.007 over the network alone, every interval above 0, end-point error
# unchanged (simulator +0.000, templates -0.031 mm).
REFINE_ANATOMY_WEIGHT = 0.1
# Where the refinement of a DLIR registration to the reference starts (``refine_start`` of
# :func:`register_sequence`):
#   "direct": each frame from the network's field of it (through the systole anchor);
#   "chained": frame by frame outwards from the reference, each from the previous key frame's refined field
#       (CHAIN_KEY_SECONDS) composed with the network's field between the two frames (a predictor, the network's small
#       step, and a corrector, the refinement against the reference; errors still add up along the chain
#       where the images let the refinement drift, as on whole simulated cycles below);
#   "best": both, and the sequence keeps the one whose frames, warped, match the reference better (the
#       refinement's own image term, :func:`.pairwise.image_mismatch`, averaged over the frames): one
#       choice per sequence, so that strain curves do not jump between the two.
# Where the motion from the reference is large and the speckle decorrelates along it, the network's
# direct field falls short and no refinement against the reference finds the rest (docs/generalisation.md,
# "The images favour the truth; the search does not reach it"); the chained start does, since each
# step is within the speckle's reach. On other data the chain costs accuracy, and the images' match tells
# which to keep. Chosen on validation data only (refine 24, the shipped model;
# benchmarks/validate_tracking_modes.py's sets through register_sequence), mean ES end-point error in mm,
# direct / best (the start kept, d or c, per sequence):
#   SIMUS seeds 40000-40007                     0.737 / 0.356  (cccdddcc)
#   the simulator's seeds 5000-5007             0.721 / 0.721  (all d)
#   the same, randomised and plain appearance   1.03 / 1.03, 1.05 / 1.05  (all d)
#   the real-template generator, train patients 0.236 / 0.236  (one c in 10)
#   whole simulated cycles (ES, mean, last)     0.683, 0.508, 0.275 both  (all d)
# (the chained start alone, in a probe without the anatomy maps: 0.35 / 0.93 / - / 0.29 / mean 0.92).
# With echoreg-dlir-sim the choice is not always right: SIMUS 3.57 -> 1.21, real-template 3.42 -> 0.42, but
# the simulator 0.415 -> 0.595 (c kept in 4 of 8, the images of this simulator preferring fields off the
# truth: docs/generalisation.md, "The refinement's floor and reach"). Held out
# (benchmarks/benchmark_generalisation.py; docs/generalisation.md, "The chained start"): SIMUS 0.64 -> 0.37 mm,
# GLS error 0.86 -> 0.33 points, segments 3.15 -> 2.03 points, the
# real-template family and the real cines unchanged, no folding; 2.3-2.7x the direct refinement's time on
# sequences on 2 CPU cores (the chained frames are refined one at a time).
# Chosen after the first of the refinement's two levels (the nineteenth session; _split_levels): both starts
# refine the half level, the chain carrying half-level fields, and only the start kept refines the full level,
# all frames at once. On the validation sets above the same starts were kept (26 of 26 sequences), at 0.77x the
# time, the errors level (the best 0.36 / 0.72 / 0.24, randomised and plain 1.03 / 1.05, cycles 0.68 / 0.51; the
# chained start alone 0.38 / 1.02 / 0.31 against 0.37 / 0.97 / 0.30). Resumed without the first level's residual
# in the regulariser (register_pair's earlier_residual) the simulator lost 0.04 mm. Held out: SIMUS 0.39 mm, GLS
# 0.40, segments 2.15 (0.37 / 0.33 / 2.03 with both starts refined in full), the rest unchanged; 1.9-2.1x the
# direct refinement's time (on a GPU, where a batch of frames costs little more than one, the chained half
# level's share is likely larger: not measured). With the full level's step at 0.25 pixel (the twentieth session,
# REFINE_LEARNING_RATES): SIMUS 0.37 mm, GLS 0.39, segments 2.11; the family 0.20 mm.
# The chain hops between key frames, at least CHAIN_KEY_SECONDS apart: the reference and, outwards from it, each
# frame that far from the last key frame; every other frame hops once, from the last key frame before it (the
# twenty-first session). Each hop adds about the refinement's floor to the error it hands on (0.15 mm on SIMUS,
# adding as a random walk: docs/generalisation.md, "The chain's hops by time"), so a chain through every frame
# lost accuracy as the frame rate rose: mean ES end-point error of the chained start alone, SIMUS validation
# seeds 40000-40007 at 17 and 33 frames/s, the project's simulator (seeds 5000-5007, ED->ES in 0.41 s) in 10 and
# 20 frames, every frame -> key frames 0.05 s apart: see the docs. Spans of 0.12 s lost the speckle's reach on
# one SIMUS case in eight (the twentieth session's stride of two at 17 frames/s). Frames without known times
# (placeholders 1 s apart) hop through every frame, as before.
CHAIN_KEY_SECONDS = 0.05
REFINE_STARTS = ("best", "direct", "chained")
DEFAULT_REFINE_START = REFINE_STARTS[0]
# register_sequence's ``**options``: register_pair's keywords but those it sets itself for every pair
PAIR_OPTIONS = frozenset(inspect.signature(register_pair).parameters) - {
    "fixed", "moving", "kind", "spacing", "mask", "initial", "earlier_residual", "features", "cancel", "progress"}


def refine_schedule(steps: int, rows: int, working_rows: int) -> tuple[int, ...]:
    """Steps per pyramid level, coarse to fine (one entry per level), of a DLIR refinement of
    ``steps`` on frames of ``rows`` rows by a network that worked on ``working_rows`` rows:
    ``(steps // 2, steps // 4)`` at half and full resolution, or ``(max(1, steps // 2),)`` at full
    resolution alone when the half level would have fewer rows than the working grid or ``steps``
    is under 4 (too few to share between two levels). See the comment above
    :data:`REFINE_PATIENCE` for how it was chosen.

    Raises:
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"a refinement takes at least 1 step, got {steps}")
    half_rows = level_shape((rows, rows), 2)[0]
    if half_rows < working_rows or steps < 4:
        return (max(1, steps // 2),)
    return steps // 2, steps // 4


def refine_learning_rates(levels: int, rates: tuple[float, float] = REFINE_LEARNING_RATES) -> tuple[float, ...]:
    """Adam's step per level, coarse to fine (full-resolution pixels), of a refinement of ``levels`` pyramid levels:
    ``rates[0]`` at every level but the finest of several, which takes ``rates[1]`` (:data:`REFINE_LEARNING_RATES`;
    a lone level takes ``rates[0]``: it has to reach too)."""
    coarse, fine = rates
    return (coarse,) * (levels - 1) + (fine if levels > 1 else coarse,)


def full_resolution_steps(schedule: tuple[int, ...] | list[int]) -> float:
    """The cost of a per-level step schedule (coarse to fine, each level half the size of the next)
    in full-resolution steps: a step at a level 2^k times coarser costs 4^-k of one."""
    return float(sum(n / 4 ** (len(schedule) - 1 - level) for level, n in enumerate(schedule)))


def default_mode(method: str, model_mode: str = "to_reference") -> str:
    """The tracking mode a method uses unless told otherwise.

    DLIR, alone or refined, tracks as its model was trained to (``model_mode``,
    :attr:`..dlir.model.DLIRModel.mode`: the shipped to-reference models register every frame to the
    reference, the shipped sequential model composes neighbour fields). Refinement used to switch to
    sequential tracking; on the simulator's validation seeds 5000-5007 (10 frames ED -> ES, refine 40)
    refining to the reference was as good or better and composes no chain that can fold:
    echoreg-dlir-camus 0.75 mm at ES against 1.07 mm sequential, echoreg-dlir-sim 0.66 against
    0.67 mm. The optimisation methods track sequentially (small motions per step)."""
    if method == "dlir":
        return model_mode
    return DEFAULT_MODE


@dataclass(eq=False)
class RegistrationResult:
    """Registration of a sequence to one of its frames.

    Attributes:
        displacement: (T, H, W, 2) float32 mm on the reference grid; reference point p is at
            p + displacement[t, row, col] in frame t. Zero at the reference frame.
        warped: (T, H, W) float32, frame t resampled onto the reference grid.
        reference: index of the reference frame.
        method, mode: how it was computed; ``parameters`` the settings used.
        similarity_before, similarity_after: (T,) global NCC of each frame with the reference,
            before and after warping (within ``mask`` when one was given).
        folding_fraction: (T,) fraction of reference pixels where the map folds (det J <= 0).
        seconds: wall time of the registration; ``device`` where it ran.
        no_signal: (T,) bool, frames without signal whose field is interpolated in time, not
            measured (module docstring); :attr:`unmeasured` adds the frames unlike the reference.
        warnings: one line per problem: the input's (:func:`input_warnings`), then per frame (no
            signal; similarity lowered).
        enhanced: (T, H, W) float32 grey 0..255, the frames as registered when they were enhanced
            first (``enhance`` of :func:`register_sequence`; unwarped, on the input's grid); None
            when enhancement was off.
    """

    displacement: np.ndarray
    warped: np.ndarray
    reference: int
    method: str
    mode: str
    similarity_before: np.ndarray
    similarity_after: np.ndarray
    folding_fraction: np.ndarray
    seconds: float
    device: str
    parameters: dict[str, Any] = field(default_factory=dict)
    no_signal: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    enhanced: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.no_signal is None:
            self.no_signal = np.zeros(len(self.displacement), dtype=bool)

    @property
    def unmeasured(self) -> np.ndarray:
        """(T,) bool, the frames whose field is not a measurement of motion (:func:`unmeasured_frames`:
        no signal, an NCC with the reference under :data:`LOW_SIMILARITY` after registration, or a field
        fitted to noise), as the ``warnings`` name them."""
        return unmeasured_frames(self.similarity_before, self.similarity_after, self.no_signal, self.reference)

    def mean_similarity(self) -> tuple[float, float]:
        """Mean NCC with the reference (before, after warping) over every frame but the reference
        itself (whose NCC is 1 by definition and would only raise both means); frames without
        signal are left out too (their fields are interpolated, not measured). NaN when no frame
        remains."""
        frames = np.arange(len(self.similarity_after))
        measured = (frames != self.reference) & ~np.asarray(self.no_signal, dtype=bool)
        if not measured.any():
            return float("nan"), float("nan")
        return float(self.similarity_before[measured].mean()), float(self.similarity_after[measured].mean())

    @property
    def seconds_per_pair(self) -> float:
        """Wall time divided by the number of registered frame pairs."""
        return self.seconds / max(len(self.warped) - 1, 1)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: settings, timing and per-frame quality (the fields' convention, which
        depends on whether the sequence's pixel size is known, is added by
        :func:`.export.registration_report`)."""
        return {
            "method": self.method,
            "mode": self.mode,
            "reference_frame": self.reference,
            "device": self.device,
            "seconds": round(self.seconds, 4),
            "seconds_per_pair": round(self.seconds_per_pair, 5),
            "parameters": self.parameters,
            "warnings": self.warnings,
            "frames": [
                {"frame": t, "ncc_before": round(float(b), 5), "ncc_after": round(float(a), 5),
                 "folding_fraction": float(f), "no_signal": bool(n), "motion_measured": not bool(u)}
                for t, (b, a, f, n, u) in enumerate(zip(self.similarity_before, self.similarity_after,
                                                        self.folding_fraction, self.no_signal, self.unmeasured))
            ],
        }


def interpolate_in_time(fields: torch.Tensor, missing: np.ndarray, frame_times: np.ndarray) -> torch.Tensor:
    """(T, 2, H, W) ``fields`` with each frame where the (T,) bool ``missing`` is True replaced by
    linear interpolation in ``frame_times`` (s) between the nearest present frames before and after
    it, or a copy of the nearest present frame where there is none on one side. With no frame
    missing, ``fields`` itself (no copy)."""
    missing = np.asarray(missing, dtype=bool)
    if not missing.any():
        return fields
    present = np.flatnonzero(~missing)
    filled = fields.clone()
    for t in np.flatnonzero(missing):
        before, after = present[present < t], present[present > t]
        if not len(before) or not len(after):
            filled[t] = fields[(after if len(after) else before)[0 if len(after) else -1]]
            continue
        a, b = before[-1], after[0]
        weight = float((frame_times[t] - frame_times[a]) / (frame_times[b] - frame_times[a]))
        filled[t] = (1 - weight) * fields[a] + weight * fields[b]
    return filled


# A sequence with more than this fraction of clearly coloured pixels (metadata["colour_pixel_fraction"]
# from the DICOM and video readers: colour Doppler, coloured annotations) is named in the warnings.
COLOURED_PIXELS_WARNING = 0.01


def input_warnings(seq: EchoSequence) -> list[str]:
    """What the input leaves unknown or doubtful that the registration's numbers depend on: a
    placeholder pixel size (displacements are then pixels times it, not measured mm) and more than
    :data:`COLOURED_PIXELS_WARNING` of coloured pixels (their luma is not an echo intensity)."""
    lines = []
    if not seq.spacing_known:
        sx, sy = seq.spacing
        lines.append(f"pixel size unknown in {seq.source}: displacements are pixels times the placeholder "
                     f"spacing {sx:g} x {sy:g}, not measured mm")
    coloured = float(seq.metadata.get("colour_pixel_fraction") or 0.0)
    if coloured > COLOURED_PIXELS_WARNING:
        lines.append(f"{100 * coloured:.1f} % of the pixels of {seq.source} are coloured (Doppler or "
                     "annotations): their luma is not an echo intensity, and the registration matches it")
    return lines


def anatomy_view_warnings(seq: EchoSequence, anatomy_weight: float | None) -> list[str]:
    """A line when the refinement compared anatomy maps (``anatomy_weight`` > 0) on a sequence whose
    view (``metadata["view"]``, e.g. CAMUS "2CH") is known and is not the apical four-chamber view
    the shipped anatomy network learnt from (CAMUS A4C frames only; README, Generalisation); empty
    otherwise, also for an unknown view."""
    view = seq.metadata.get("view")
    if not anatomy_weight or not view or apical_view(view) == "A4C":
        return []
    return [f"the refinement compared anatomy maps from a network that learnt apical four-chamber (A4C) frames "
            f"only, on this {view} view: check the warped frames (--refine 0: the network alone)"]


def unmeasured_frames(before: np.ndarray, after: np.ndarray, no_signal: np.ndarray, reference: int) -> np.ndarray:
    """(T,) bool: the frames whose field is not a measurement of motion: those without signal (``no_signal``,
    (T,) bool: their field is interpolated in time) and, but for the frame ``reference`` itself, those whose
    NCC with the reference after registration (``after``, (T,)) stays under :data:`LOW_SIMILARITY` (another
    view, a scene cut, noise), or under :data:`UNCORRELATED_RESEMBLANCE` for a frame uncorrelated with it
    before registration (``before``, (T,), under :data:`UNCORRELATED`: a field fitted to noise). The one
    definition of the flag: :func:`quality_warnings` names these frames, :func:`..strain.compute_strain` leaves
    them out of ED / ES detection and peak strain."""
    after = np.asarray(after, dtype=np.float64)
    unlike = (after < LOW_SIMILARITY) | ((np.asarray(before, dtype=np.float64) < UNCORRELATED)
                                         & (after < UNCORRELATED_RESEMBLANCE))
    unlike[reference] = False
    return np.asarray(no_signal, dtype=bool) | unlike


def _counted(frames: list[int], registered: int) -> str:
    """"N of M frames (frames a, b, ...)": ``frames`` among the ``registered`` ones, the first five named."""
    return (f"{len(frames)} of {registered} frames ({'frame' if len(frames) == 1 else 'frames'} "
            f"{', '.join(map(str, frames[:5]))}{', ...' if len(frames) > 5 else ''})")


def quality_warnings(before: np.ndarray, after: np.ndarray, no_signal: np.ndarray,
                     pairs: list[tuple[int, int]], reference: int) -> list[str]:
    """One line per frame without signal (how it was bridged) and per frame whose NCC with the
    reference the registration lowered by more than :data:`NCC_DROP_TOLERANCE`, in frame order;
    then one line for the other frames :func:`unmeasured_frames` flags by NCC with the frame ``reference``
    under :data:`LOW_SIMILARITY`, and one for those it flags as fitted to noise (uncorrelated before
    registration, under :data:`UNCORRELATED_RESEMBLANCE` after). ``before``, ``after``: (T,) NCC;
    ``no_signal``: (T,) bool; ``pairs``: the (fixed, moving) frames registered."""
    fixed_of = {m: f for f, m in pairs}
    present = np.flatnonzero(~no_signal)
    lines = {}
    for t in np.flatnonzero(no_signal):
        sides = [str(f) for f in (*present[present < t][-1:], *present[present > t][:1])]
        lines[t] = (f"frame {t}: no signal (constant intensity); not registered, tracking goes across "
                    f"it and its field is interpolated in time from frame(s) {' and '.join(sides)}, "
                    f"not measured")
    for t in fixed_of:
        if after[t] < before[t] - NCC_DROP_TOLERANCE:
            lines[t] = (f"frame {t}: registration lowered the similarity to the reference "
                        f"(NCC {before[t]:.3f} -> {after[t]:.3f}); check this frame's field")
    flagged = unmeasured_frames(before, after, no_signal, reference)
    flagged_here = [t for t in sorted(fixed_of) if flagged[t] and t not in lines]
    low = [t for t in flagged_here if after[t] < LOW_SIMILARITY]
    fitted = [t for t in flagged_here if after[t] >= LOW_SIMILARITY]
    unlike = []
    if low:
        worst = min(low, key=lambda t: after[t])
        unlike.append(f"{_counted(low, len(fixed_of))} keep an NCC with the reference under {LOW_SIMILARITY:g} "
                      f"after registration (lowest {after[worst]:.3f}, frame {worst}): they hardly resemble it "
                      "(another view, a scene cut, noise); their fields are not measurements of motion")
    if fitted:
        best = max(fitted, key=lambda t: after[t])
        unlike.append(f"{_counted(fitted, len(fixed_of))} were uncorrelated with the reference before registration "
                      f"(NCC under {UNCORRELATED:g}) and resemble it only weakly after (under "
                      f"{UNCORRELATED_RESEMBLANCE:g}; highest {after[best]:.3f}, frame {best}; a texture that moved "
                      "matches again): fields fitted to noise, not measurements of motion")
    return [lines[t] for t in sorted(lines)] + unlike


# frame_quality measures this many frames at a time: at 512 x 422 px each temporary is then 3.5 MB and
# stays in the CPU's cache (NCC and folding about 3-4x faster on 2 cores than the whole sequence at once).
QUALITY_CHUNK = 4


def frame_quality(reference: torch.Tensor, frames: torch.Tensor, warped: torch.Tensor,
                  displacement: torch.Tensor, spacing: tuple[float, float],
                  mask: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (NCC before, NCC after, folding fraction), each (T,), for (T, 1, H, W) frames and
    warped frames against a (1, 1, H, W) reference, with (T, 2, H, W) mm fields, within the
    (1, 1, H, W) ``mask`` when given; :data:`QUALITY_CHUNK` frames at a time."""
    parts = []
    for first in range(0, len(frames), QUALITY_CHUNK):
        chunk = slice(first, first + QUALITY_CHUNK)
        parts.append(torch.stack((ncc(reference, frames[chunk], mask=mask),
                                  ncc(reference, warped[chunk], mask=mask),
                                  folding_fraction(displacement[chunk], spacing, mask))))
    before, after, folding = torch.cat(parts, dim=1).cpu().numpy()
    return before, after, folding


def tracking_plan(method: str, model: Any = None, mode: str | None = None,
                  device: str | torch.device = "auto") -> tuple[torch.device, Any, str, str | None]:
    """What :func:`register_sequence` decides before registering: the device, the DLIR model
    (loaded; None for the optimisation methods), the tracking mode (``mode``, else
    :func:`default_mode`, which asks the DLIR model how it was trained) and the model's name for
    the report (the shipped model's name when none was given). One place, so that registering a single frame
    (the Slicer module's quick look) tracks exactly as the whole sequence would.

    Raises:
        ValueError: an unknown method or device.
        EchoDataError: an unusable model file.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dev = resolve_device(device)
    model_name = None
    if method == "dlir":  # the model says how it tracks
        from ..dlir.inference import as_model
        from ..dlir.shipped import SHIPPED_MODEL, shipped_model_path

        model_name = SHIPPED_MODEL if model is None else \
            str(model) if isinstance(model, (str, os.PathLike)) else getattr(model, "name", type(model).__name__)
        model = as_model(shipped_model_path() if model is None else model, dev)
    mode = mode or default_mode(method, model.mode if method == "dlir" else "to_reference")
    return dev, model, mode, model_name


def anchor_setting(method: str, mode: str, anchor: float | Mapping[int, int] | None) -> float | dict[int, int]:
    """The systole anchor a registration runs with (:func:`register_sequence`'s ``anchor``, default resolved):
    None is :data:`~..spatial.pairs.SYSTOLE_ANCHOR` for "dlir" to the reference and 0 (none) otherwise; a
    fraction in (0, 1) or a map frame -> fixed frame (ints) is kept for "dlir" to the reference.

    Raises:
        ValueError: a fraction outside [0, 1), a map of other than frame numbers, or an anchor other than 0
            for another method or ``mode``.
    """
    tracked_directly = (method, mode) == ("dlir", "to_reference")
    if anchor is None:
        return SYSTOLE_ANCHOR if tracked_directly else 0
    if isinstance(anchor, Mapping):
        setting: float | dict[int, int] = anchor_frames(anchor)
    elif not 0 <= anchor < 1:
        raise ValueError(f"the systole anchor is a fraction of the way from the reference to ES in [0, 1) "
                         f"(0: none), got {anchor}")
    else:
        setting = round(float(anchor), 6) + 0.0  # one value however given (np.float32, -0.0) for the records
    if setting != 0 and not tracked_directly:
        raise ValueError(f"the systole anchor is for 'dlir' tracking to the reference; this registration is "
                         f"{method!r}, {mode!r} (anchor 0 or None)")
    return setting


def frame_anchors(seq: EchoSequence, reference: int, method: str, mode: str,
                  anchor: float | Mapping[int, int] | None) -> dict[int, int] | None:
    """The fixed frame of each frame (frame -> the reference or the anchor frame) that
    :func:`register_sequence`'s ``anchor`` (:func:`anchor_setting`) asks for, or None: every frame
    registered directly. A fraction places the anchor by :func:`~..spatial.pairs.systole_anchors` from
    ``seq.es_index`` (none when ES is unknown or not after the reference); a map is checked
    (:func:`~..spatial.pairs.check_anchors`) and taken as it is (frames left out go to the reference).

    Raises:
        ValueError: as :func:`anchor_setting` and :func:`~..spatial.pairs.check_anchors`.
    """
    setting = anchor_setting(method, mode, anchor)
    if isinstance(setting, dict):
        return check_anchors(setting, seq.n_frames, reference)
    es = seq.es_index
    if setting == 0 or es is None or es <= reference:
        return None
    return systole_anchors(seq.n_frames, reference, es, setting)


def register_sequence(
    seq: EchoSequence,
    method: str = "deformable",
    *,
    reference: int | None = None,
    mode: str | None = None,
    mask: np.ndarray | None = None,
    device: str | torch.device = "auto",
    chunk_size: int = 32,
    model: Any = None,
    refine: int = 0,
    refine_start: str = DEFAULT_REFINE_START,
    flip_average: bool = False,
    anchor: float | Mapping[int, int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    enhance: Any = None,
    amp: bool = True,
    **options: Any,
) -> RegistrationResult:
    """Register every frame of ``seq`` to its reference frame.

    Args:
        seq: the echo sequence (at least 2 frames).
        method: "rigid", "affine", "deformable" (optimisation, :func:`register_pair`) or "dlir"
            (a trained network, :mod:`..dlir`).
        reference: reference frame index; default the ED frame when known, else 0.
        mode: "sequential" registers neighbouring frames and composes the fields back to the
            reference (small motions per step; errors can accumulate over long loops), the default
            of the optimisation methods; "to_reference" registers each frame directly to the
            reference. "dlir", alone or refined, tracks as its model was trained to
            (:func:`default_mode`).
        mask: optional (H, W) region of interest on the reference grid (e.g. the sector); default
            ``seq.mask``.
        device: "auto", "cpu", "cuda" ...
        chunk_size: frame pairs registered together in one batch.
        model: "dlir" only: a DLIR model or checkpoint path; default the shipped model.
        refine: "dlir" only: optimisation steps of :func:`register_pair` (deformable) refining
            the network's pair fields before any composition, coarse to fine
            (:func:`refine_schedule`: ``refine // 2`` steps at half resolution and ``refine // 4`` at
            full resolution, or ``refine // 2`` (at least 1) at full resolution alone for
            ``refine`` < 4 or for frames whose half level would be coarser than the network's
            working grid (under about twice its rows); the regulariser and the folding penalty
            evaluated on the network's working grid; with early stopping, a penalty on folding of the whole field,
            :data:`REFINE_FOLDING`, and bending energy of the residual alone,
            :data:`REFINE_REGULARISATION`; Adam's step 0.5 pixel, 0.25 at the full level of two,
            :data:`REFINE_LEARNING_RATES`); 0 = the network alone. The steps per level used (the
            schedule, or ``iterations`` when given) are recorded in ``parameters["refine_iterations"]``,
            the step sizes in ``parameters["refine_learning_rates"]``, the penalties' grid rows in
            ``parameters["refine_penalty_rows"]``. A model with an anatomy
            network (:mod:`..dlir.anatomy`; the shipped CAMUS model has one) also compares the frames'
            LV, myocardium and LA probability maps, weighted :data:`REFINE_ANATOMY_WEIGHT`
            (``feature_weight=0`` turns them off), recorded in ``parameters["refine_anatomy_weight"]``
            (None: the model has none).
        refine_start: "dlir" refined to the reference: where each frame's refinement starts,
            :data:`REFINE_STARTS`: "best" (the default: the direct and the chained start both refined,
            the sequence keeping the one whose warped frames match the reference better), "direct" (the
            network's field of the frame) or "chained" (the refined field of the last key frame before it composed
            with the network's field between the two; the key frames at least :data:`CHAIN_KEY_SECONDS` apart,
            :func:`chain_hops`, their time recorded in ``parameters["refine_chain_key_seconds"]``). A refinement
            of two pyramid levels refines the chained start (and, for "best", both starts) by the first level
            alone, hop by hop, the chain carrying each frame's first-level field; "best" chooses there; the
            later level then refines the start kept, every frame at once, resumed where its first level ended
            (the same optimisation as uninterrupted, :func:`register_pair`'s ``earlier_residual``). A sequence
            with nothing to chain (no frame beyond the reference's neighbours, or none more than
            :data:`CHAIN_KEY_SECONDS` from it) and sequential tracking refine the direct start, all levels at
            once.
            Recorded in ``parameters["refine_start"]``, the start kept in ``parameters["refine_start_used"]``
            and, where both were refined, each one's mean :func:`.pairwise.image_mismatch` (dimensionless)
            after the first level in ``parameters["refine_start_mismatch"]`` (else None). Used by refined
            "dlir" tracking to the reference only.
        flip_average: "dlir" only: average each pair's field with the mirror image of the mirrored
            pair's (:meth:`..dlir.model.DLIRModel.mirror_averaged`; twice the network time).
        anchor: "dlir" to the reference: the network registers the frames beyond one anchor frame in
            systole (this fraction of the way from the reference to ES) to that frame and composes
            their fields with the anchor's (:func:`..dlir.inference.predict_anchored_fields`), before any
            refinement against the reference; needs ES after the reference (else every frame goes
            directly, as when the anchor frame has no signal). None: the default,
            :data:`~..spatial.pairs.SYSTOLE_ANCHOR` (0.6) for "dlir" to the reference, none otherwise; 0:
            none; or the map frame -> fixed frame itself (:func:`frame_anchors`). The setting
            (:func:`anchor_setting`) is recorded in ``parameters["anchor"]``, the anchor frame used (None:
            none, also where the refinement kept the chained start) in ``parameters["anchor_frame"]``.
            docs/generalisation.md, "A second held-out family": on
            physics-simulated echo it takes the refined error at ES from 1.41 to 0.60 mm.
        progress: called as ``progress(done_pairs, total_pairs)`` (ints) as the work advances:
            a chunk of pairs optimised together counts as done in proportion to its optimiser
            steps, so the count rises many times per chunk. Where the DLIR refinement chains (``refine_start``
            "best" or "chained") each pair counts once per part of the work (each start's refinement, or its
            first level and then the later level of the start kept): the total is then 2 or 3 times the pairs.
        cancel: returning True stops the work (:class:`RegistrationCancelled`).
        enhance: an enhancement model (installed name, checkpoint or generator;
            :func:`..enhancement.enhance_sequence`) applied to the frames first; the fields and the
            warped frames are then those of the enhanced frames, the enhanced frames are kept in
            :attr:`RegistrationResult.enhanced`, and ``parameters`` records the model and its
            seconds. Off by default (README, "Enhancement before registration").
        amp: "dlir" only: mixed precision for the networks where it is faster
            (:func:`..dlir.inference.mixed_precision`: bfloat16 on CUDA and on CPUs with AMX; float32
            elsewhere); False keeps float32 everywhere. The refinement's optimisation is float32 either
            way. The precision used is recorded in ``parameters["network_precision"]``.
        **options: passed to :func:`register_pair` (loss, levels, iterations, control_spacing, ...);
            they override :data:`METHOD_DEFAULTS`. An option :func:`register_pair` does not take, or one
            this function sets itself (the images, spacing, mask, start field, feature maps and callbacks),
            is refused before any work.

    Returns:
        :class:`RegistrationResult` with fields and warped frames on the reference grid; frames
        without signal are bridged and marked (module docstring).

    Raises:
        EchoDataError: the reference frame has no signal; with ``enhance``, the pixel size is
            unknown (:func:`..enhancement.inference.require_pixel_size`) or the model is of another
            kind (``ModelKindError``).
        ValueError: an unknown method, mode or device, a reference outside the sequence, an
            ``anchor`` outside [0, 1), set for another method or mode, or a map that does not hold
            (:func:`frame_anchors`), a ``refine_start`` not in :data:`REFINE_STARTS`, an option
            :func:`register_pair` does not take (``**options``), a refinement's ``iterations`` or
            ``learning_rate`` that is not one finite non-negative value or one per level (all before any network
            runs).
    """
    seq.require_frames(2)
    check_options({"refine_start": refine_start, **options})  # else found only after the network's work
    dev, model, mode, model_name = tracking_plan(method, model, mode, device)
    reference = (seq.ed_index or 0) if reference is None else int(reference)
    if not 0 <= reference < seq.n_frames:
        raise ValueError(f"{seq.source}: reference frame {reference} is outside 0..{seq.n_frames - 1}")
    anchors = frame_anchors(seq, reference, method, mode, anchor)
    options = {**METHOD_DEFAULTS.get(method, {}), **options}
    # the refinement's options, checked before any network runs (the enhancement's included)
    refinement = _refinement_options(refine, seq.frame_shape[0], model, options) if method == "dlir" else {}
    keep_freed_memory()
    enhancement = {}
    if enhance is not None:
        from ..enhancement.inference import enhance_sequence

        began = time.perf_counter()
        seq = enhance_sequence(seq, enhance, device=dev)
        enhancement = {"enhance": seq.metadata["enhancement"],
                       "enhance_seconds": round(time.perf_counter() - began, 4)}
    mask = seq.mask if mask is None else mask
    no_signal = no_signal_frames(seq.frames, mask)
    if no_signal[reference]:
        raise EchoDataError(seq.source, f"reference frame {reference} has no signal (constant "
                                        f"intensity); choose another reference frame")
    pairs = frame_pairs(seq.n_frames, reference, mode, skip=no_signal)  # checks the mode
    start_notes: list[str] = []  # a refinement start asked for that could not run
    start = time.perf_counter()
    frames = as_image_batch(seq.frames, device=dev)
    roi = None if mask is None else as_image_batch(np.asarray(mask, dtype=np.float32), device=dev) > 0
    if method == "dlir":
        pair_fields, anchor_frame, start_used, mismatch = _dlir_fields(seq, frames, pairs, dev, chunk_size, model,
                                                                       refinement, flip_average, anchors, roi,
                                                                       progress, cancel, amp, refine_start)
        if start_used == "chained":  # the kept fields went through every frame between, no anchor frame
            anchor_frame = None
        chained = start_used == "chained" or mismatch is not None  # the chained start ran
        if refine and refine_start == "chained" and mode == "to_reference" and not chained:
            start_notes.append(f"refine_start chained: nothing to chain (no frame beyond the first key frame "
                               f"from the reference; key frames at least {CHAIN_KEY_SECONDS:g} s apart where the "
                               "frame times are known): refined from the direct start")
        from ..dlir.inference import network_precision
        from ..dlir.shipped import licence_of

        steps, rates = refinement.get("iterations"), refinement.get("learning_rate")
        setting = anchor_setting(method, mode, anchor)
        options = {"model": model_name, "licence": licence_of(model_name), "passes": model.passes,
                   # rows of the model's fine-grid correction stage (dlir.correction), None without one
                   "correction_rows": None if model.correction is None else model.correction.working_size,
                   # the dtype the networks ran in (bfloat16 on CUDA and on CPUs with AMX, unless amp=False)
                   "network_precision": network_precision(dev, amp),
                   "refine": refine, "flip_average": flip_average, "anchor": setting, "anchor_frame": anchor_frame,
                   # the ES that placed the anchor frame (load_registration checks it); None for a frame map
                   "es_frame": None if isinstance(setting, Mapping) else seq.es_index,
                   **({**{key: refinement[key] for key in (*REFINE_FOLDING, *REFINE_REGULARISATION)},
                       "refine_iterations": list(steps) if isinstance(steps, (list, tuple)) else steps,
                       # Adam's step per level (REFINE_LEARNING_RATES unless the options set it)
                       "refine_learning_rates": list(rates) if isinstance(rates, (list, tuple)) else rates,
                       # weight of the anatomy maps in the refinement; None: the model has no anatomy network
                       "refine_anatomy_weight": refinement.get("feature_weight") if model.anatomy is not None else None,
                       "refine_penalty_rows": refinement["penalty_rows"],
                       # where the refinement started (REFINE_STARTS), the start it kept, and where both were
                       # refined how far each one's warped frames are from the reference (image_mismatch)
                       "refine_start": refine_start, "refine_start_used": start_used,
                       # the least time between the chain's key frames (CHAIN_KEY_SECONDS); None: no chain ran,
                       # or unknown frame times (a chain through every frame)
                       "refine_chain_key_seconds": CHAIN_KEY_SECONDS if chained
                       and chain_key_times(seq) is not None else None,
                       "refine_start_mismatch": None if mismatch is None else
                       {run: round(value, 6) for run, value in mismatch.items()}}
                      if refine else {}), **options}
    else:
        pair_fields = _optimised_fields(seq.spacing, frames, method, pairs, roi, chunk_size, options,
                                        progress, cancel)
    with torch.inference_mode():
        fields = chain_to_reference(pair_fields, pairs, seq.n_frames, reference, mode, seq.spacing)
        fields = interpolate_in_time(fields, no_signal, seq.frame_times)
        warped = warp(frames, fields, seq.spacing)
        before, after, folding = frame_quality(frames[reference:reference + 1], frames, warped,
                                               fields, seq.spacing, roi)
    seconds = time.perf_counter() - start
    return RegistrationResult(
        displacement=field_to_numpy(fields).astype(np.float32),
        warped=warped[:, 0].cpu().numpy().astype(np.float32),
        reference=reference, method=method, mode=mode,
        similarity_before=before, similarity_after=after, folding_fraction=folding,
        seconds=seconds, device=str(dev),
        parameters={"chunk_size": chunk_size, "allocator": allocator_setting(), **enhancement, **options},
        no_signal=no_signal, warnings=[*input_warnings(seq), *start_notes,
                                       *anatomy_view_warnings(seq, options.get("refine_anatomy_weight")),
                                       *quality_warnings(before, after, no_signal, pairs, reference)],
        enhanced=seq.frames if enhance is not None else None,
    )


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse, before any work, ``options`` of :func:`register_sequence` (its ``**options``, and ``refine_start``)
    that it would refuse only once it reached them: a ``refine_start`` not in :data:`REFINE_STARTS`, or an option
    :func:`register_pair` does not take or that :func:`register_sequence` sets itself (:data:`PAIR_OPTIONS`;
    :class:`..workflow.WorkflowSettings` checks its ``options`` with it, so that none stands in for a setting of
    its own, such as the method).

    Raises:
        ValueError: naming the start or the options, and what is allowed."""
    start = options.get("refine_start", DEFAULT_REFINE_START)
    if start not in REFINE_STARTS:
        raise ValueError(f"refine_start must be one of {REFINE_STARTS}, got {start!r}")
    unknown = sorted(set(options) - PAIR_OPTIONS - {"refine_start"})
    if unknown:
        raise ValueError(f"register_sequence does not take {', '.join(unknown)}: its options are "
                         f"register_pair's ({', '.join(sorted(PAIR_OPTIONS))}) and refine_start")


def _optimised_fields(spacing: tuple[float, float], frames: torch.Tensor, method: str,
                      pairs: list[tuple[int, int]], roi: torch.Tensor | None,
                      chunk_size: int, options: dict[str, Any], progress: ProgressCallback | None,
                      cancel: Callable[[], bool] | None,
                      initial: torch.Tensor | None = None, features: torch.Tensor | None = None,
                      earlier_residual: torch.Tensor | None = None) -> torch.Tensor:
    """(P, 2, H, W) mm fields of the frame ``pairs`` registered by optimisation, chunk by chunk,
    each starting from its ``initial`` field when given (and resuming a refinement whose earlier levels added
    ``earlier_residual`` to it, when given), and comparing the (T, K, H, W) feature maps
    of the frames ``features`` too when given (:func:`register_pair`); ``progress(done, total)`` in
    pairs as the optimiser steps advance (:func:`_pair_progress`)."""
    fields = [frames.new_zeros(0, 2, *frames.shape[-2:])]
    for part, fixed, moving in _pair_chunks(pairs, chunk_size):
        start = None if initial is None else initial[part]
        earlier = None if earlier_residual is None else earlier_residual[part]
        maps = None if features is None else (features[fixed], features[moving])
        result = register_pair(frames[fixed], frames[moving], method,
                               spacing=spacing, mask=roi, cancel=cancel, initial=start, earlier_residual=earlier,
                               features=maps,
                               progress=_pair_progress(progress, part.start, len(moving), len(pairs)),
                               **options)
        fields.append(result.displacement)
    return torch.cat(fields)


def _pair_chunks(pairs: list[tuple[int, int]], chunk_size: int) -> Iterator[tuple[slice, list[int], list[int]]]:
    """Each chunk of ``chunk_size`` frame ``pairs``: its slice of the pairs, its fixed frames
    (:func:`~..spatial.pairs.fixed_indices`: the one fixed frame when they share it) and its moving frames."""
    for first in range(0, len(pairs), chunk_size):
        chunk = pairs[first:first + chunk_size]
        yield slice(first, first + len(chunk)), fixed_indices(chunk), [m for _, m in chunk]


def _pair_progress(progress: ProgressCallback | None, first: int, count: int,
                   total: int) -> Callable[[float], None] | None:
    """A :func:`register_pair` callback (fraction of its work done, 0..1) that reports the pairs
    ``first .. first + count`` of ``total`` as ``progress(done, total)``, whenever ``done`` rises."""
    if progress is None:
        return None
    last = [first]

    def report(fraction: float) -> None:
        done = first + min(int(fraction * count + 1e-9), count)
        if done > last[0]:
            last[0] = done
            progress(done, total)
    return report


def _refinement_options(refine: int, rows: int, model: "DLIRModel", options: dict[str, Any]) -> dict[str, Any]:
    """The :func:`register_pair` options of a DLIR refinement of ``refine`` steps on frames of
    ``rows`` rows ({} for ``refine`` 0): the deformable defaults, :data:`REFINE_FOLDING`,
    :data:`REFINE_REGULARISATION`, :func:`refine_schedule`'s levels and steps, the penalties on the
    network's working grid, :data:`REFINE_ANATOMY_WEIGHT` as ``feature_weight`` when the model has
    an anatomy network (its maps compared on its own working grid's rows, ``feature_rows``),
    :data:`REFINE_LEARNING_RATES` spread over the levels as ``learning_rate``, then ``options`` over them.

    Raises:
        ValueError: ``refine`` < 0, or ``iterations`` or ``learning_rate`` that is neither one value nor one per
            level (a finite non-negative number each).
    """
    if refine < 0:
        raise ValueError(f"refine must be >= 0 optimisation steps, got {refine}")
    if not refine:
        return {}
    schedule = refine_schedule(refine, rows, model.working_size)
    anatomy = {} if model.anatomy is None else {"feature_weight": REFINE_ANATOMY_WEIGHT,
                                                 "feature_rows": model.anatomy.working_size}
    refinement = {**METHOD_DEFAULTS["deformable"], **REFINE_FOLDING, **REFINE_REGULARISATION,
                  "levels": len(schedule), "iterations": schedule, "patience": REFINE_PATIENCE,
                  "penalty_rows": model.working_size, **anatomy, **options}
    if "learning_rate" not in options:
        refinement["learning_rate"] = refine_learning_rates(refinement["levels"])
    # refused here, before the network runs, rather than by register_pair after it
    _schedule(refinement["iterations"], refinement["levels"], "iterations")
    _schedule(refinement["learning_rate"], refinement["levels"], "learning_rate", float)
    return refinement


def _dlir_fields(seq: EchoSequence, frames: torch.Tensor, pairs: list[tuple[int, int]],
                 device: torch.device, chunk_size: int, model: "DLIRModel", refinement: dict[str, Any],
                 flip_average: bool, anchors: dict[int, int] | None, roi: torch.Tensor | None,
                 progress: ProgressCallback | None, cancel: Callable[[], bool] | None,
                 amp: bool, refine_start: str = "direct"
                 ) -> tuple[torch.Tensor, int | None, str | None, dict[str, float] | None]:
    """(P, 2, H, W) mm fields of the frame ``pairs`` predicted by a DLIR model (through the anchor frame
    of the :func:`frame_anchors` ``anchors`` when given), optionally refined by optimisation started
    from them (deformable, with the :func:`_refinement_options` ``refinement``; {} for the network
    alone) or from the chained start (``refine_start``, :data:`REFINE_STARTS`; pairs to the reference
    only), the anchor frame used (None: none), the start the refinement kept ("direct" or
    "chained"; None: no refinement) and, where both were refined, each one's mean
    :func:`.pairwise.image_mismatch` with the reference after the first pyramid level, where the start is
    chosen (:func:`_split_levels`; else None). A refinement with a
    ``feature_weight`` compares the frames' anatomy maps (the model's :mod:`..dlir.anatomy` network)
    beside them. ``amp``: mixed precision for the network (:func:`..dlir.inference.mixed_precision`)."""
    from ..dlir.grid import INTENSITY_WINDOW
    from ..dlir.inference import predict_anchored_fields, predict_pair_fields

    if cancel is not None and cancel():
        raise RegistrationCancelled("registration cancelled")
    anchor_frame = None
    if anchors is None:
        fields = predict_pair_fields(model, seq, pairs, device, chunk_size, amp, flip_average)
    else:
        fields, anchor_frame = predict_anchored_fields(model, seq, pairs, anchors, device, chunk_size, amp,
                                                       flip_average)
    if not refinement:
        if progress is not None:
            progress(len(pairs), len(pairs))
        return fields, anchor_frame, None, None
    hops = chain_hops(pairs, chain_key_times(seq)) if refine_start != "direct" else []
    runs = ("direct", "chained") if refine_start == "best" and hops else ("chained",) if hops else ("direct",)
    features = None
    if model.anatomy is not None and refinement.get("feature_weight", 0) > 0:
        with torch.no_grad():  # constants of the refinement (not inference tensors: it warps them with gradients)
            features = model.anatomy.to(frames.device).probabilities(frames, seq.spacing,
                                                                     seq.metadata.get(INTENSITY_WINDOW))
    # the first level of each start (the chain carries each frame's first-level field to the next), the start
    # chosen there, then the later levels of the start kept, every frame at once, resumed where its first
    # level ended (earlier_residual: the same optimisation as uninterrupted); the direct start alone: the whole
    # refinement at once, as before there were two starts
    first, later = (refinement, None) if runs == ("direct",) else _split_levels(refinement)
    parts = len(runs) + (later is not None)
    if progress is not None:
        progress(0, parts * len(pairs))
    starts, refined = {}, {}
    for k, run in enumerate(runs):
        report = _offset_progress(progress, k * len(pairs), parts * len(pairs))
        if run == "direct":
            starts[run] = fields
            refined[run] = _optimised_fields(seq.spacing, frames, "deformable", pairs, roi, chunk_size, first,
                                             report, cancel, initial=fields.clone(), features=features)
        else:
            steps = predict_pair_fields(model, seq, hops, device, chunk_size, amp, flip_average)
            starts[run], refined[run] = _chained_fields(seq.spacing, frames, pairs, hops, steps, roi, first, report,
                                                        cancel, features, chunk_size)
    mismatch = None
    kept = runs[0]
    if len(runs) == 2:
        with torch.no_grad():  # chunk by chunk, as the refinement: warped frames of a long sequence take memory
            mismatch = {run: float(torch.cat([image_mismatch(frames[fixed], frames[moving], field[part], seq.spacing,
                                                             roi)
                                              for part, fixed, moving in _pair_chunks(pairs, chunk_size)]).mean())
                        for run, field in refined.items()}
        kept = "chained" if mismatch["chained"] < mismatch["direct"] else "direct"
    field, start = refined.pop(kept), starts.pop(kept)
    refined.clear()  # the other start's fields and start: a long sequence's take memory
    starts.clear()
    if later is None:
        return field, anchor_frame, kept, mismatch
    resumed = _optimised_fields(seq.spacing, frames, "deformable", pairs, roi, chunk_size, later,
                                _offset_progress(progress, len(runs) * len(pairs), parts * len(pairs)), cancel,
                                initial=field, features=features, earlier_residual=field - start)
    return resumed, anchor_frame, kept, mismatch


def _split_levels(refinement: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The :func:`register_pair` options of a refinement's first pyramid level alone (the later levels given no
    steps, so that the field comes back at full resolution) and of its later levels (None: it has one level);
    the later ones, started from the first level's field with its residual as ``earlier_residual``, optimise
    what the whole refinement would.

    Raises:
        ValueError: ``iterations`` or ``learning_rate`` that is neither one value nor one per level (as
            :func:`register_pair` would, but before any work)."""
    levels = refinement["levels"]
    steps = _schedule(refinement["iterations"], levels, "iterations")
    rates = _schedule(refinement["learning_rate"], levels, "learning_rate", float)
    if levels == 1:
        return refinement, None
    return ({**refinement, "iterations": (steps[0],) + (0,) * (levels - 1)},
            {**refinement, "levels": levels - 1, "iterations": tuple(steps[1:]), "learning_rate": tuple(rates[1:])})


def chain_hops(pairs: list[tuple[int, int]], frame_times: Sequence[float] | np.ndarray | None = None,
               key_seconds: float = CHAIN_KEY_SECONDS) -> list[tuple[int, int]]:
    """The network's steps of the chained refinement start (:data:`REFINE_STARTS`) for frame ``pairs``
    registered to one reference: (previous frame, frame) for each moving frame in the pairs' order; [] when
    every moving frame's previous frame is the reference (nothing to chain: two frames, one on each side, or
    every frame within ``key_seconds`` of the reference) or the pairs have more than one fixed frame.

    The previous frame is the last key frame before the frame on the reference's side, among the pairs' frames:
    the key frames are the reference and, outwards from it on each side, each frame at least ``key_seconds``
    (:data:`CHAIN_KEY_SECONDS`) from the last key frame by ``frame_times`` (s, one per frame of the sequence).
    Without ``frame_times`` (unknown times) every frame is a key frame: each hops from its neighbour."""
    if len({fixed for fixed, _ in pairs}) != 1:
        return []
    reference = pairs[0][0]
    moving = [m for _, m in pairs]
    previous = {}
    after, before = sorted(m for m in moving if m > reference), sorted(m for m in moving if m < reference)
    for side in (after, before[::-1]):
        key = reference
        for m in side:
            previous[m] = key
            if frame_times is None or abs(float(frame_times[m]) - float(frame_times[key])) >= key_seconds - 1e-9:
                key = m
    if all(p == reference for p in previous.values()):
        return []
    return [(previous[m], m) for m in moving]


def chain_key_times(seq: EchoSequence) -> np.ndarray | None:
    """The frame times (T,) s by which :func:`chain_hops` places the chain's key frames: ``seq.frame_times``, or
    None where they are unknown (placeholders), for a chain through every frame."""
    return np.asarray(seq.frame_times, dtype=np.float64) if seq.frame_times_known else None


def _chained_fields(spacing: tuple[float, float], frames: torch.Tensor, pairs: list[tuple[int, int]],
                    hops: list[tuple[int, int]], steps: torch.Tensor, roi: torch.Tensor | None,
                    refinement: dict[str, Any], progress: ProgressCallback | None,
                    cancel: Callable[[], bool] | None, features: torch.Tensor | None, chunk_size: int = 2
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The chained refinement start (:data:`REFINE_STARTS`) of the frame ``pairs`` (to one reference), one hop
    at a time outwards from it: (P, 2, H, W) mm each frame's start, its previous key frame's refined field composed
    with the network's field ``steps`` (P, 2, H, W) of the :func:`chain_hops` ``hops`` (previous -> frame),
    and that start refined against the reference by ``refinement`` (:func:`_dlir_fields` gives the first
    pyramid level's options, :func:`_split_levels`). The frames as many hops from the reference on its two
    sides are refined together, in chunks of ``chunk_size`` (each pair optimised on its own,
    :func:`register_pair`: the same fields as one at a time)."""
    reference = pairs[0][0]
    index = {m: k for k, (_, m) in enumerate(pairs)}
    starts, refined = torch.zeros_like(steps), torch.zeros_like(steps)
    depth: dict[int, int] = {}  # hops from the reference
    for k in sorted(range(len(pairs)), key=lambda k: abs(pairs[k][1] - reference)):
        previous = hops[k][0]
        depth[k] = 1 if previous == reference else depth[index[previous]] + 1
    done = 0
    for hop in range(1, max(depth.values()) + 1):
        batch = [k for k in range(len(pairs)) if depth[k] == hop]
        for k in batch:
            previous = hops[k][0]
            starts[k] = steps[k] if previous == reference else \
                compose(refined[index[previous]:index[previous] + 1], steps[k:k + 1], spacing)[0]
        refined[batch] = _optimised_fields(spacing, frames, "deformable", [pairs[k] for k in batch], roi, chunk_size,
                                           refinement, _offset_progress(progress, done, len(pairs)), cancel,
                                           initial=starts[batch], features=features)
        done += len(batch)
    return starts, refined


def _offset_progress(progress: ProgressCallback | None, offset: int, total: int) -> ProgressCallback | None:
    """``progress`` for a part of the work: ``progress(offset + done, total)``."""
    if progress is None:
        return None
    return lambda done, _: progress(offset + done, total)


__all__ = ["RegistrationCancelled", "RegistrationResult", "anchor_setting", "frame_anchors",
           "register_sequence", "resolve_device", "tracking_plan"]
