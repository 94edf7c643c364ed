"""Smooth scalar building blocks of the analytic phantoms: steps, ramps and their integrals.

Every function is vectorised over numpy arrays and numerically stable for large arguments. A step
of width ``w`` centred at ``b`` is ``sigmoid((x - b) / w)``; its integral is
``w * softplus((x - b) / w)``, which tends to the ramp ``max(x - b, 0)`` away from ``b``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x)), stable for any x."""
    out = np.multiply(x, 0.5, out=np.empty(np.shape(x)))
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def softplus(x: np.ndarray | float) -> np.ndarray:
    """log(1 + exp(x)), stable for any x; the integral of :func:`sigmoid`."""
    x = np.asarray(x, dtype=np.float64)
    out = np.abs(x, out=np.empty(x.shape))
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(x, 0.0)
    return out


def smooth_min(x: np.ndarray | float, limit: float, width: float) -> np.ndarray:
    """A smooth ``min(x, limit)``: equal to x well below ``limit``, to ``limit`` well above,
    with a transition ``width`` wide (same unit as x)."""
    return limit - width * softplus((limit - np.asarray(x, dtype=np.float64)) / width)


def smooth_max(x: np.ndarray | float, limit: float, width: float) -> np.ndarray:
    """A smooth ``max(x, limit)`` (see :func:`smooth_min`)."""
    return limit + width * softplus((np.asarray(x, dtype=np.float64) - limit) / width)


def cosine_ramp(x: np.ndarray | float) -> np.ndarray:
    """0 for x <= 0, 1 for x >= 1, (1 - cos(pi x)) / 2 in between: a C1 step."""
    t = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * t))
