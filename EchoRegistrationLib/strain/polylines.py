"""Open polylines in mm: arc length, resampling, tangents, normals and along-curve smoothing.

A polyline is an (N, 2) array of (x, y) points in mm (x = column / lateral, y = row / depth).
"""

from __future__ import annotations

import numpy as np


def arc_length(points: np.ndarray) -> np.ndarray:
    """(N,) cumulative arc length in mm of an (N, 2) polyline, 0 at the first point."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def resample(points: np.ndarray, n_points: int) -> np.ndarray:
    """(n_points, 2) points equally spaced in arc length along an (N, 2) polyline, both ends kept."""
    arc = arc_length(points)
    target = np.linspace(0.0, arc[-1], n_points)
    return np.stack([np.interp(target, arc, points[:, 0]), np.interp(target, arc, points[:, 1])], axis=1)


def resample_step(points: np.ndarray, step: float) -> np.ndarray:
    """The polyline resampled at about ``step`` mm intervals (at least 2 points)."""
    return resample(points, max(int(np.ceil(arc_length(points)[-1] / step)) + 1, 2))


def tangents(points: np.ndarray) -> np.ndarray:
    """(N, 2) unit tangents of an (N, 2) polyline (central differences, one-sided at the ends)."""
    direction = np.gradient(points, axis=0)
    return direction / np.linalg.norm(direction, axis=1, keepdims=True)


def left_normals(points: np.ndarray) -> np.ndarray:
    """(N, 2) unit normals: the tangent (tx, ty) turned to (ty, -tx), which points to the left of
    the direction of travel as seen on screen (y = depth pointing down)."""
    t = tangents(points)
    return np.stack([t[:, 1], -t[:, 0]], axis=1)


def smooth_along(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average of (N, ...) samples along an open curve over ``2 * width + 1`` samples; the
    window shrinks symmetrically near the ends so that the end samples are kept."""
    if width < 1:
        return values.copy()
    n = len(values)
    cumulative = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    half = np.minimum(np.minimum(np.arange(n), n - 1 - np.arange(n)), width)
    low, high = np.arange(n) - half, np.arange(n) + half + 1
    counts = (high - low).reshape((-1,) + (1,) * (values.ndim - 1))
    return (cumulative[high] - cumulative[low]) / counts


def nearest_vertex(points: np.ndarray, polyline: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(M,) index of the vertex of ``polyline`` (N, 2) nearest to each of ``points`` (M, 2)."""
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        distance = ((block[:, None, :] - polyline[None, :, :]) ** 2).sum(axis=-1)
        out[start:start + chunk] = distance.argmin(axis=1)
    return out
