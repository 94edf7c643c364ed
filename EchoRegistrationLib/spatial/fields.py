"""NumPy <-> torch layouts of displacement fields, and their mirror image.

NumPy results are channel-last, (T, H, W, 2); torch code is channel-first, (T, 2, H, W). Component
order is (x, y) = (column / lateral, row / depth), in mm, in both.
"""

from __future__ import annotations

import numpy as np
import torch


def field_to_torch(field: np.ndarray, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(T, H, W, 2) or a single (H, W, 2) NumPy field -> (T, 2, H, W) tensor ((1, 2, H, W) for a
    single field) on ``device`` with ``dtype``."""
    array = np.asarray(field)
    if array.ndim not in (3, 4) or array.shape[-1] != 2:
        raise ValueError(f"a field must be (T, H, W, 2) or (H, W, 2), got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.reshape(-1, *array.shape[-3:])))
    return tensor.to(device=device, dtype=dtype).permute(0, 3, 1, 2).contiguous()


def field_to_numpy(field: torch.Tensor) -> np.ndarray:
    """(T, 2, H, W) tensor -> (T, H, W, 2) NumPy array (detached, on the host, same dtype)."""
    if field.ndim != 4 or field.shape[1] != 2:
        raise ValueError(f"a field tensor must be (T, 2, H, W), got shape {tuple(field.shape)}")
    return field.detach().permute(0, 2, 3, 1).cpu().numpy()


def mirror_field(field: torch.Tensor) -> torch.Tensor:
    """The (B, 2, H, W) field of left-right mirrored images: columns reversed and the lateral (x)
    component negated, so that warping the mirrored moving image with it gives the mirrored
    warped image."""
    return field.flip(-1) * field.new_tensor([-1.0, 1.0])[:, None, None]
