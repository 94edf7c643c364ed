"""Bilinear sampling of images and displacement fields at points given in mm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..spatial import pixels_to_normalised


def sample_at(values: np.ndarray, points: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Bilinear samples of (T, H, W, C) arrays at (N, 2) points (x, y) in mm.

    Pixel (row i, column j) sits at (j * sx, i * sy) mm; points beyond the grid take the value of
    the nearest edge. Computed in float64, so the samples of a linear field are exact.

    Returns:
        (T, N, C) float64.
    """
    grid_values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).permute(0, 3, 1, 2)
    pixels = torch.from_numpy(np.asarray(points, dtype=np.float64) / np.asarray(spacing, dtype=np.float64))
    positions = pixels.T.reshape(1, 2, 1, -1)
    grid = pixels_to_normalised(positions, values.shape[1:3]).expand(len(values), -1, -1, -1)
    samples = F.grid_sample(grid_values, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return samples[:, :, 0].permute(0, 2, 1).numpy()


def sample_image(image: np.ndarray, points: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Bilinear samples (...) of one (H, W) image at (..., 2) points in mm."""
    points = np.asarray(points, dtype=np.float64)
    flat = sample_at(np.asarray(image)[None, :, :, None], points.reshape(-1, 2), spacing)
    return flat[0, :, 0].reshape(points.shape[:-1])
