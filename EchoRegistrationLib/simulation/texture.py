"""Smooth random fields: slow tissue-echogenicity variations that move with the tissue."""

from __future__ import annotations

import numpy as np

CELLS_PER_CORRELATION = 3.0


class SmoothRandomField:
    """A zero-mean, unit-variance Gaussian random field with a Gaussian correlation of length
    ``correlation`` mm over the box ``lower``..``upper`` (mm, (x, y)); periodic beyond it.

    It is drawn once on a grid of cell ``correlation / 3`` and read by bilinear interpolation.
    """

    def __init__(self, rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray,
                 correlation: float):
        if correlation <= 0:
            raise ValueError(f"correlation length must be positive, got {correlation}")
        self.lower = np.asarray(lower, dtype=np.float64)
        self.cell = correlation / CELLS_PER_CORRELATION
        nx, ny = (np.ceil((np.asarray(upper) - self.lower) / self.cell).astype(int) + 2).tolist()
        white = rng.standard_normal((ny, nx))
        fy = np.fft.fftfreq(ny)[:, None]
        fx = np.fft.rfftfreq(nx)[None, :]
        sigma = CELLS_PER_CORRELATION / np.sqrt(2.0)  # correlation exp(-d^2 / correlation^2)
        transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
        field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=(ny, nx))
        self.values = (field - field.mean()) / field.std()

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Field values at ``points`` (..., 2) mm (x, y); shape (...)."""
        ny, nx = self.values.shape
        g = (np.asarray(points, dtype=np.float64) - self.lower) / self.cell
        x0 = np.floor(g[..., 0])
        y0 = np.floor(g[..., 1])
        fx, fy = g[..., 0] - x0, g[..., 1] - y0
        x0 = x0.astype(np.int64) % nx
        y0 = y0.astype(np.int64) % ny
        x1, y1 = (x0 + 1) % nx, (y0 + 1) % ny
        v = self.values
        return ((1 - fy) * ((1 - fx) * v[y0, x0] + fx * v[y0, x1])
                + fy * ((1 - fx) * v[y1, x0] + fx * v[y1, x1]))
