"""Multi-resolution pyramids that keep the physical frame: every level spans the same extent.

Levels resample with ``align_corners=True``: the first and last pixel centres stay where they are,
so a level of size (h, w) of an (H, W) image with spacing (sx, sy) has spacing
(sx (W - 1) / (w - 1), sy (H - 1) / (h - 1)) and the same origin. Fields in mm computed at any level
therefore mean the same thing at every level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def level_shape(shape: Sequence[int], factor: int, min_size: int = 16) -> tuple[int, int]:
    """(h, w) of a level ``factor`` times coarser than ``shape`` (H, W), never below ``min_size``
    (or the full size when that is smaller)."""
    return tuple(max(min(int(n), min_size), round((int(n) - 1) / factor) + 1) for n in shape)


def level_spacing(shape: Sequence[int], new_shape: Sequence[int],
                  spacing: Sequence[float]) -> tuple[float, float]:
    """(sx, sy) mm of a level of size ``new_shape`` (h, w) of an image of ``shape`` (H, W)."""
    (h, w), (nh, nw) = shape, new_shape
    return (spacing[0] * (w - 1) / max(nw - 1, 1), spacing[1] * (h - 1) / max(nh - 1, 1))


def resample_image(images: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, C, H, W) images resampled to (B, C, h, w) over the same extent (antialiased when
    shrinking); a no-op when the size is unchanged."""
    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    return F.interpolate(images, size=tuple(shape), mode="bilinear", align_corners=True, antialias=True)


def resample_field(field: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, 2, H, W) mm displacement resampled to (B, 2, h, w) over the same extent. Values are mm
    and need no rescaling."""
    if tuple(field.shape[-2:]) == tuple(shape):
        return field
    return F.interpolate(field, size=tuple(shape), mode="bilinear", align_corners=True)


def pyramid_factors(levels: int) -> list[int]:
    """Downsampling factors from coarse to fine: levels=3 -> [4, 2, 1]."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return [2 ** k for k in reversed(range(levels))]
