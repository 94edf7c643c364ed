"""Colour pixels to echo intensity: BT.601 luma, and a count of clearly coloured pixels
(colour Doppler, coloured annotations), whose luma is not a B-mode intensity."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights of R, G, B.
BT601_LUMA = np.array([0.299, 0.587, 0.114])


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """(..., >=3) RGB values -> (...) float32 luma 0.299 R + 0.587 G + 0.114 B (extra channels such
    as alpha are ignored). Exact for gray pixels: R = G = B = v gives v."""
    return (np.asarray(rgb)[..., :3].astype(np.float64) @ BT601_LUMA).astype(np.float32)


def coloured_pixel_count(rgb: np.ndarray, spread: float) -> int:
    """Number of (..., >=3) RGB pixels whose channels differ by more than ``spread`` (the units of
    ``rgb``): colour overlays rather than gray echo."""
    channels = np.asarray(rgb)[..., :3]
    return int(np.count_nonzero(channels.max(axis=-1).astype(np.float32) - channels.min(axis=-1) > spread))
