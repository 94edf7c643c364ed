"""Beam grids of the simulated scanner and scan conversion to the output image.

The B-mode image is formed on a *beam grid* (axial samples x lateral lines) on which the
point-spread function does not depend on position, then resampled to the output pixel grid:

* :class:`SectorScan`: a phased array at ``probe``; polar grid (range r, angle theta), angle 0 along
  +y (depth), positive towards +x. The lateral PSF has a fixed angular width, so beams widen with
  depth as in a real sector scan.
* :class:`LinearScan`: a linear array looking along +y; the beam grid is the output grid.

Positions are (x, y) mm with pixel (row i, column j) at (j * sx, i * sy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _bilinear_lookup(axial: np.ndarray, lateral: np.ndarray, shape: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (4, M) and weights (4, M) of the grid neighbours of fractional grid positions."""
    a0 = np.clip(np.floor(axial).astype(np.int64), 0, shape[0] - 2)
    l0 = np.clip(np.floor(lateral).astype(np.int64), 0, shape[1] - 2)
    fa = np.clip(axial - a0, 0.0, 1.0)
    fl = np.clip(lateral - l0, 0.0, 1.0)
    base = a0 * shape[1] + l0
    index = np.stack([base, base + 1, base + shape[1], base + shape[1] + 1])
    weight = np.stack([(1 - fa) * (1 - fl), (1 - fa) * fl, fa * (1 - fl), fa * fl])
    return index, weight


class _BeamGrid:
    """What both scans share: the grid, scatterer sampling, splatting and scan conversion."""

    shape: tuple[int, int]          # (axial samples, lateral lines)
    axial_step: float               # mm
    lateral_step: float             # rad (sector) or mm (linear)
    image_index: np.ndarray         # (4, P) flat grid indices of the in-view output pixels
    image_weight: np.ndarray        # (4, P)
    mask: np.ndarray                # (H, W) bool, pixels inside the field of view

    def grid_coordinates(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fractional (axial, lateral) grid indices and range (mm along the beam) of (N, 2) points."""
        raise NotImplementedError

    def grid_to_points(self, axial: np.ndarray, lateral: np.ndarray) -> np.ndarray:
        """(N, 2) mm positions of fractional grid indices (inverse of :meth:`grid_coordinates`)."""
        raise NotImplementedError

    def uniform_points(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count, 2) mm positions uniformly distributed over the beam grid (uniform per cell, the
        density that gives a depth-independent mean brightness)."""
        axial = rng.uniform(0, self.shape[0] - 1, count)
        lateral = rng.uniform(0, self.shape[1] - 1, count)
        return self.grid_to_points(axial, lateral)

    def splat(self, axial: np.ndarray, lateral: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(n_axial, n_lateral) complex grid accumulating ``values`` at fractional grid indices
        (bilinear weights); points outside the grid are dropped."""
        inside = ((axial >= 0) & (axial <= self.shape[0] - 1)
                  & (lateral >= 0) & (lateral <= self.shape[1] - 1))
        index, weight = _bilinear_lookup(axial[inside], lateral[inside], self.shape)
        size = self.shape[0] * self.shape[1]
        v = values[inside]
        flat = index.ravel()
        real = np.bincount(flat, (weight * v.real).ravel(), minlength=size)
        imag = np.bincount(flat, (weight * v.imag).ravel(), minlength=size)
        return (real + 1j * imag).reshape(self.shape)

    def to_image(self, grid_values: np.ndarray) -> np.ndarray:
        """Scan conversion: (H, W) bilinear samples of a real grid image, 0 outside the view."""
        out = np.zeros(self.mask.shape, dtype=np.float64)
        flat = grid_values.ravel()
        out[self.mask] = (flat[self.image_index] * self.image_weight).sum(axis=0)
        return out

    def _set_output(self, image_shape: Sequence[int], spacing: Sequence[float], in_view) -> None:
        h, w = int(image_shape[0]), int(image_shape[1])
        rows, cols = np.mgrid[0:h, 0:w]
        pixels = np.stack([cols * spacing[0], rows * spacing[1]], axis=-1).astype(np.float64)
        self.mask = in_view(pixels)
        axial, lateral, _ = self.grid_coordinates(pixels[self.mask])
        self.image_index, self.image_weight = _bilinear_lookup(axial, lateral, self.shape)


class SectorScan(_BeamGrid):
    """Phased-array sector: apex at ``probe`` (x, y) mm, opening ``2 * half_angle`` rad, ``depth`` mm.

    The grid covers ranges 0 .. depth + margin and angles +-(half_angle + margin) in steps of
    ``axial_step`` mm and ``angular_step`` rad; ``margin_cells`` extra cells on each side hold
    the tissue whose echoes spill into the view.
    """

    def __init__(self, image_shape: Sequence[int], spacing: Sequence[float], probe: Sequence[float],
                 half_angle: float, depth: float, axial_step: float, angular_step: float,
                 margin_cells: tuple[int, int]):
        self.probe = np.asarray(probe, dtype=np.float64)
        self.half_angle, self.depth = float(half_angle), float(depth)
        self.axial_step, self.lateral_step = float(axial_step), float(angular_step)
        self.angle0 = -self.half_angle - margin_cells[1] * self.lateral_step
        n_axial = int(np.ceil(self.depth / self.axial_step)) + margin_cells[0] + 1
        n_lateral = int(np.ceil(2 * self.half_angle / self.lateral_step)) + 2 * margin_cells[1] + 1
        self.shape = (n_axial, n_lateral)
        self._set_output(image_shape, spacing, self.in_view)

    def in_view(self, points: np.ndarray) -> np.ndarray:
        """True for (..., 2) mm points inside the sector."""
        d = points - self.probe
        r = np.hypot(d[..., 0], d[..., 1])
        return (r <= self.depth) & (np.abs(np.arctan2(d[..., 0], d[..., 1])) <= self.half_angle)

    def grid_coordinates(self, points):
        d = points - self.probe
        r = np.hypot(d[..., 0], d[..., 1])
        theta = np.arctan2(d[..., 0], d[..., 1])
        return r / self.axial_step, (theta - self.angle0) / self.lateral_step, r

    def grid_to_points(self, axial, lateral):
        r = axial * self.axial_step
        theta = self.angle0 + lateral * self.lateral_step
        return self.probe + np.stack([r * np.sin(theta), r * np.cos(theta)], axis=-1)


class LinearScan(_BeamGrid):
    """Linear array along the top edge looking along +y; the beam grid is the output pixel grid
    extended by ``margin_cells`` pixels on every side, the range is y."""

    def __init__(self, image_shape: Sequence[int], spacing: Sequence[float], margin_cells: int):
        self.spacing = (float(spacing[0]), float(spacing[1]))
        self.axial_step, self.lateral_step = self.spacing[1], self.spacing[0]
        self.margin = int(margin_cells)
        self.shape = (int(image_shape[0]) + 2 * self.margin, int(image_shape[1]) + 2 * self.margin)
        self._set_output(image_shape, spacing, lambda p: np.ones(p.shape[:-1], dtype=bool))

    def grid_coordinates(self, points):
        axial = points[..., 1] / self.axial_step + self.margin
        return axial, points[..., 0] / self.lateral_step + self.margin, points[..., 1]

    def grid_to_points(self, axial, lateral):
        return np.stack([(lateral - self.margin) * self.lateral_step,
                         (axial - self.margin) * self.axial_step], axis=-1)
