"""How far to trust the tracking of each segment, and the loop-closure drift of a full cycle.

Per segment (its myocardial pixels on the reference grid):

* similarity: normalised cross-correlation between consecutive frames after both are warped onto
  the reference grid, averaged over the frame pairs. Well-tracked speckle stays alike from one
  frame to the next; correlation with the reference itself would fall over a long loop even for
  perfect tracking, as speckle decorrelates (out-of-plane motion).
* folding: the largest fraction, over frames, of pixels where the map folds (det F <= 0).
* jitter: roughness in time beyond that of the global curve, in strain points (%): the RMS of the
  time-aware second difference of the segment curve minus its least-squares multiple of the GLS
  curve. A segment that follows the heart's motion is as smooth as GLS; a lost track is ragged.

The score in 0..1 multiplies a term for each: ``max(similarity, 0)``, ``1 - folding /
FOLDING_LIMIT`` (floored at 0) and ``1 / (1 + (jitter / JITTER_SCALE)^2)``.

Drift: when a sequence covers a full cycle, the last frame is the next ED and should map back onto
ED; the mean distance over the myocardium between where each point is at that frame and at ED (mm)
and the strain left there (points) are the loop-closure errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOLDING_LIMIT = 0.05   # folded fraction of a segment's pixels that brings its score to 0
JITTER_SCALE = 1.0     # strain points (%) of jitter that halve the score


@dataclass(frozen=True)
class SegmentQuality:
    """Tracking quality of the six segments, each (6,): ``similarity`` (NCC of consecutive
    warped frames), ``folding`` (fraction 0..1), ``jitter`` (strain points, %), ``score``
    (0..1)."""

    similarity: np.ndarray
    folding: np.ndarray
    jitter: np.ndarray
    score: np.ndarray


def segment_similarity(warped: np.ndarray, segments: np.ndarray, mask: np.ndarray,
                       n_segments: int) -> np.ndarray:
    """(n_segments,) mean NCC between consecutive (T, H, W) warped frames within each segment
    (``segments`` (P,) holds the segment of each of the P ``mask`` pixels); NaN for T < 2."""
    values = warped[:, mask].astype(np.float64)  # (T, P)
    out = np.full(n_segments, np.nan)
    if len(values) < 2:
        return out
    for k in range(n_segments):
        v = values[:, segments == k]
        v = v - v.mean(axis=1, keepdims=True)
        norm = np.sqrt((v * v).sum(axis=1))
        product = (v[1:] * v[:-1]).sum(axis=1)
        denominator = norm[1:] * norm[:-1]
        valid = denominator > 0  # a constant segment (no texture) correlates as 0
        out[k] = np.mean(np.where(valid, product / np.where(valid, denominator, 1.0), 0.0))
    return out


def segment_folding(deformation: np.ndarray, segments: np.ndarray, n_segments: int) -> np.ndarray:
    """(n_segments,) largest fraction over frames of each segment's pixels where the map folds
    (det F <= 0), from (T, P, 2, 2) deformation gradients and the (P,) segment of each pixel."""
    folded = np.linalg.det(deformation) <= 0
    return np.array([folded[:, segments == k].mean(axis=1).max() for k in range(n_segments)])


def second_difference(curves: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(T - 2, ...) deviation of each interior sample of (T, ...) curves from the straight line
    through its two neighbours at the (T,) frame times."""
    fraction = (times[1:-1] - times[:-2]) / (times[2:] - times[:-2])
    fraction = fraction.reshape((-1,) + (1,) * (curves.ndim - 1))
    return curves[1:-1] - (curves[:-2] + fraction * (curves[2:] - curves[:-2]))


def curve_jitter(curves: np.ndarray, global_curve: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(K,) RMS second difference (see :func:`second_difference`) of each (T, K) curve minus its
    least-squares multiple of the (T,) global curve; 0 for T < 3."""
    if len(times) < 3:
        return np.zeros(curves.shape[1])
    energy = float(global_curve @ global_curve)
    scale = (global_curve @ curves) / energy if energy > 0 else np.zeros(curves.shape[1])
    residual = curves - global_curve[:, None] * scale[None]
    return np.sqrt(np.mean(second_difference(residual, times) ** 2, axis=0))


def quality_score(similarity: np.ndarray, folding: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Score in 0..1 (see the module docstring) from per-segment similarity, folding, jitter."""
    return (np.clip(similarity, 0.0, 1.0) * np.clip(1.0 - folding / FOLDING_LIMIT, 0.0, 1.0)
            / (1.0 + (jitter / JITTER_SCALE) ** 2))


def segment_quality(warped: np.ndarray, deformation: np.ndarray, segment_map: np.ndarray,
                    segment_curves: np.ndarray, global_curve: np.ndarray,
                    times: np.ndarray) -> SegmentQuality:
    """:class:`SegmentQuality` of the K segments of ``segment_map`` (H, W) (-1 outside).

    Args:
        warped: (T, H, W) frames warped onto the reference grid.
        deformation: (T, P, 2, 2) deformation gradients at the P pixels of ``segment_map >= 0``.
        segment_curves: (T, K) % segment strain; global_curve: (T,) % GLS.
        times: (T,) s.
    """
    mask = segment_map >= 0
    segments = segment_map[mask]
    n = segment_curves.shape[1]
    similarity = segment_similarity(warped, segments, mask, n)
    folding = segment_folding(deformation, segments, n)
    jitter = curve_jitter(segment_curves, global_curve, times)
    return SegmentQuality(similarity=similarity, folding=folding, jitter=jitter,
                          score=quality_score(similarity, folding, jitter))


def loop_closure_mm(displacement: np.ndarray, mask: np.ndarray, ed: int = 0) -> float:
    """Mean distance in mm, over the ``mask`` pixels of the reference grid, between where each point is
    at the last frame and at frame ``ed`` of (T, H, W, 2) mm fields: |u(last) - u(ED)| (|u(last)| when
    the fields are tracked from ED, whose own field is zero)."""
    return float(np.linalg.norm(displacement[-1][mask] - displacement[ed][mask], axis=-1).mean())
