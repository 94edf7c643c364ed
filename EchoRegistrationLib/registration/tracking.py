"""Sequence tracking: every frame of an echo cine registered to a reference frame.

``register_sequence`` is the public entry point of every method (optimisation-based here; the
deep-learning method plugs into the same result type). Fields follow the project convention: on the
reference frame's grid, in mm, components (x, y), mapping a reference point to its position in
frame t; the reference frame's own field is zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..losses import ncc_loss
from ..sequence import EchoSequence
from ..spatial import compose, field_to_numpy, folding_fraction, warp
from .pairwise import KINDS, RegistrationCancelled, as_image_batch, register_pair

if TYPE_CHECKING:
    from ..dlir.model import DLIRModel

MODES = ("to_reference", "sequential")
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


# DLIR refinement warm-starts the optimiser from the network's field over a 3-level pyramid, coarse
# first: ``refine`` steps at the quarter-resolution level, half as many at half resolution, an eighth
# at full resolution, the step halved after 5 steps without gain. On four CAMUS *training* pairs
# (the benchmark's patients were not used) refine 40 = (40, 20, 5) raised the network's LV /
# myocardium Dice from 0.62 to 0.79, above the optimiser alone (0.76), at a third of its time
# (3.2 s against 9.4 s); the former full-resolution-only refinement (40 steps) reached 0.70 in 7.5 s.
REFINE_LEVELS = 3
REFINE_PATIENCE = 5


def refine_schedule(steps: int) -> tuple[int, int, int]:
    """Steps per level, coarse to fine, of a DLIR refinement of ``steps`` (the coarsest level's)."""
    return steps, steps // 2, steps // 8


def full_resolution_steps(schedule: tuple[int, ...] | list[int]) -> float:
    """The cost of a per-level step schedule (coarse to fine, each level half the size of the next)
    in full-resolution steps: a step at a level 2^k times coarser costs 4^-k of one."""
    return float(sum(n / 4 ** (len(schedule) - 1 - level) for level, n in enumerate(schedule)))


def default_mode(method: str, refine: int = 0, model_mode: str = "to_reference") -> str:
    """The tracking mode a method uses unless told otherwise.

    The DLIR network alone tracks as its model was trained to (``model_mode``,
    :attr:`..dlir.model.DLIRModel.mode`: the shipped model registers every frame to the reference,
    the shipped sequential model composes neighbour fields). Refined by
    optimisation, DLIR tracks neighbouring frames like the optimisation methods (with a model
    trained on any frame pairs, 0.54 mm myocardial error at ES on the registration benchmark
    against 0.59 mm to the reference, 20 steps)."""
    if method == "dlir" and not refine:
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

    @property
    def seconds_per_pair(self) -> float:
        """Wall time divided by the number of registered frame pairs."""
        return self.seconds / max(len(self.warped) - 1, 1)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: settings, timing and per-frame quality."""
        return {
            "method": self.method,
            "mode": self.mode,
            "reference_frame": self.reference,
            "device": self.device,
            "seconds": round(self.seconds, 4),
            "seconds_per_pair": round(self.seconds_per_pair, 5),
            "parameters": self.parameters,
            "convention": "displacement on the reference grid in mm, (x, y) = (column, row); "
                          "reference point p is at p + u(p) in frame t",
            "frames": [
                {"frame": t, "ncc_before": round(float(b), 5), "ncc_after": round(float(a), 5),
                 "folding_fraction": float(f)}
                for t, (b, a, f) in enumerate(zip(self.similarity_before, self.similarity_after,
                                                  self.folding_fraction))
            ],
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; other values as torch understands them."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def frame_pairs(n_frames: int, reference: int, mode: str) -> list[tuple[int, int]]:
    """(fixed, moving) frame pairs to register, one per frame other than the reference, in frame
    order: every frame against the reference ("to_reference"), or each frame against its neighbour
    on the way to the reference ("sequential")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    others = [t for t in range(n_frames) if t != reference]
    if mode == "to_reference":
        return [(reference, t) for t in others]
    return [(t - 1, t) if t > reference else (t + 1, t) for t in others]


def tracked_frames(frame: int, reference: int, mode: str) -> list[int]:
    """The frames, in order, that registering ``frame`` to ``reference`` in ``mode`` goes through:
    the two alone ("to_reference"), or every frame between them ("sequential"). A subsequence of
    these gives that frame's field as the whole sequence would (up to intensity normalisation)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    first, last = sorted((frame, reference))
    return [first, last] if mode == "to_reference" else list(range(first, last + 1))


def fixed_indices(pairs: list[tuple[int, int]]) -> list[int]:
    """The fixed frame of each (fixed, moving) pair, or just the one fixed frame when all pairs
    share it (its image then goes in once and broadcasts over the batch)."""
    fixed = [f for f, _ in pairs]
    return fixed[:1] if len(set(fixed)) == 1 else fixed


def chain_to_reference(pair_fields: torch.Tensor, pairs: list[tuple[int, int]], n_frames: int,
                       reference: int, mode: str, spacing: tuple[float, float]) -> torch.Tensor:
    """(T, 2, H, W) fields from the reference to every frame, from the (P, 2, H, W) fields of the
    :func:`frame_pairs` ``pairs``: placed as they are ("to_reference"), or composed outwards from
    the reference ("sequential": u_{ref->t} = u_{ref->t-1} then u_{t-1->t}, and symmetrically
    before the reference). Zero at the reference."""
    by_moving = {m: pair_fields[k:k + 1] for k, (_, m) in enumerate(pairs)}
    chained = {reference: torch.zeros_like(pair_fields[:1])}
    for step in (1, -1):
        t = reference + step
        while 0 <= t < n_frames:
            chained[t] = by_moving[t] if mode == "to_reference" else \
                compose(chained[t - step], by_moving[t], spacing)
            t += step
    return torch.cat([chained[t] for t in range(n_frames)])


def frame_quality(reference: torch.Tensor, frames: torch.Tensor, warped: torch.Tensor,
                  displacement: torch.Tensor, spacing: tuple[float, float],
                  mask: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (NCC before, NCC after, folding fraction) for (T, 1, H, W) frames and warped
    frames against a (1, 1, H, W) reference, with (T, 2, H, W) mm fields."""
    before = np.array([1 - float(ncc_loss(reference, f[None], mask=mask)) for f in frames])
    after = np.array([1 - float(ncc_loss(reference, w[None], mask=mask)) for w in warped])
    folding = folding_fraction(displacement, spacing, mask).cpu().numpy()
    return before, after, folding


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
    flip_average: bool = False,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
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
            of the optimisation methods and of refined "dlir"; "to_reference" registers each frame
            directly to the reference. The "dlir" network alone tracks as its model was trained
            to (:func:`default_mode`).
        mask: optional (H, W) region of interest on the reference grid (e.g. the sector).
        device: "auto", "cpu", "cuda" ...
        chunk_size: frame pairs registered together in one batch.
        model: "dlir" only: a DLIR model or checkpoint path; default the shipped model.
        refine: "dlir" only: optimisation steps of :func:`register_pair` (deformable) refining
            the network's pair fields before any composition, coarse to fine
            (:func:`refine_schedule`: ``refine`` steps at quarter resolution, ``refine // 2`` at
            half, ``refine // 8`` at full resolution, with early stopping); 0 = the network alone.
        flip_average: "dlir" only: average each pair's field with the mirror image of the mirrored
            pair's (:meth:`..dlir.model.DLIRModel.mirror_averaged`; twice the network time).
        progress: called as ``progress(done_pairs, total_pairs)`` after each chunk.
        cancel: returning True stops the work (:class:`RegistrationCancelled`).
        **options: passed to :func:`register_pair` (loss, levels, iterations, control_spacing, ...);
            they override :data:`METHOD_DEFAULTS`.

    Returns:
        :class:`RegistrationResult` with fields and warped frames on the reference grid.
    """
    seq.require_frames(2)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dev = resolve_device(device)
    model_name = None
    if method == "dlir":  # the model says how it tracks
        from ..dlir.inference import as_model
        from ..dlir.shipped import shipped_model_path

        model_name = "shipped" if model is None else str(getattr(model, "name", model))
        model = as_model(shipped_model_path() if model is None else model, dev)
    mode = mode or default_mode(method, refine, model.mode if method == "dlir" else "to_reference")
    reference = (seq.ed_index or 0) if reference is None else int(reference)
    if not 0 <= reference < seq.n_frames:
        raise ValueError(f"{seq.source}: reference frame {reference} is outside 0..{seq.n_frames - 1}")
    pairs = frame_pairs(seq.n_frames, reference, mode)  # checks the mode
    options = {**METHOD_DEFAULTS.get(method, {}), **options}
    start = time.perf_counter()
    frames = as_image_batch(seq.frames, device=dev)
    roi = None if mask is None else as_image_batch(np.asarray(mask, dtype=np.float32), device=dev) > 0
    if method == "dlir":
        pair_fields = _dlir_fields(seq, frames, pairs, dev, chunk_size, model, refine, flip_average,
                                   roi, options, progress, cancel)
        options = {"model": model_name, "refine": refine, "flip_average": flip_average, **options}
    else:
        pair_fields = _optimised_fields(seq.spacing, frames, method, pairs, roi, chunk_size, options,
                                        progress, cancel)
    with torch.inference_mode():
        fields = chain_to_reference(pair_fields, pairs, seq.n_frames, reference, mode, seq.spacing)
        warped = warp(frames, fields, seq.spacing)
        before, after, folding = frame_quality(frames[reference:reference + 1], frames, warped,
                                               fields, seq.spacing, roi)
    seconds = time.perf_counter() - start
    return RegistrationResult(
        displacement=field_to_numpy(fields).astype(np.float32),
        warped=warped[:, 0].cpu().numpy().astype(np.float32),
        reference=reference, method=method, mode=mode,
        similarity_before=before, similarity_after=after, folding_fraction=folding,
        seconds=seconds, device=str(dev), parameters={"chunk_size": chunk_size, **options},
    )


def _optimised_fields(spacing: tuple[float, float], frames: torch.Tensor, method: str,
                      pairs: list[tuple[int, int]], roi: torch.Tensor | None,
                      chunk_size: int, options: dict[str, Any], progress: ProgressCallback | None,
                      cancel: Callable[[], bool] | None,
                      initial: torch.Tensor | None = None) -> torch.Tensor:
    """(P, 2, H, W) mm fields of the frame ``pairs`` registered by optimisation, chunk by chunk,
    each starting from its ``initial`` field when given."""
    fields = []
    for first in range(0, len(pairs), chunk_size):
        chunk = pairs[first:first + chunk_size]
        start = None if initial is None else initial[first:first + chunk_size]
        result = register_pair(frames[fixed_indices(chunk)], frames[[m for _, m in chunk]], method,
                               spacing=spacing, mask=roi, cancel=cancel, initial=start, **options)
        fields.append(result.displacement)
        if progress is not None:
            progress(min(first + chunk_size, len(pairs)), len(pairs))
    return torch.cat(fields)


def _dlir_fields(seq: EchoSequence, frames: torch.Tensor, pairs: list[tuple[int, int]],
                 device: torch.device, chunk_size: int, model: "DLIRModel", refine: int,
                 flip_average: bool, roi: torch.Tensor | None, options: dict[str, Any],
                 progress: ProgressCallback | None, cancel: Callable[[], bool] | None) -> torch.Tensor:
    """(P, 2, H, W) mm fields of the frame ``pairs`` predicted by a DLIR model, optionally refined
    by optimisation started from them (deformable, :func:`refine_schedule` of ``refine``)."""
    from ..dlir.inference import predict_pair_fields

    if refine < 0:
        raise ValueError(f"refine must be >= 0 optimisation steps, got {refine}")
    if cancel is not None and cancel():
        raise RegistrationCancelled("registration cancelled")
    fields = predict_pair_fields(model, seq, pairs, device, chunk_size, flip_average=flip_average)
    if progress is not None:
        progress(0 if refine else len(pairs), len(pairs))
    if not refine:
        return fields
    refine_options = {**METHOD_DEFAULTS["deformable"], "levels": REFINE_LEVELS,
                      "iterations": refine_schedule(refine), "patience": REFINE_PATIENCE, **options}
    return _optimised_fields(seq.spacing, frames, "deformable", pairs, roi, chunk_size,
                             refine_options, progress, cancel, initial=fields.clone())


__all__ = ["RegistrationCancelled", "RegistrationResult", "register_sequence", "resolve_device"]
