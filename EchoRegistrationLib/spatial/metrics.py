"""Accuracy metrics of registered fields against known answers (simulated ground truth, labels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..sequence import LABEL_LV, LABEL_MYOCARDIUM
from .warping import warp


def myocardial_end_point_error(estimated: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T,) mean |u_est - u_true| in mm over the ``mask`` (H, W) pixels of (T, H, W, 2) fields."""
    return np.linalg.norm(estimated - true, axis=-1)[:, mask].mean(axis=1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2 |A B| / (|A| + |B|) of two boolean masks (1 when both are empty)."""
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def warped_label_dice(fixed_labels: np.ndarray, moving_labels: np.ndarray, field: torch.Tensor,
                      spacing: Sequence[float], codes: Sequence[int] = (LABEL_LV, LABEL_MYOCARDIUM)) -> float:
    """Mean Dice over ``codes`` of the (H, W) fixed labels and the moving labels warped onto the fixed
    grid (nearest, zeros outside) by the (1, 2, H, W) mm ``field``."""
    moving = torch.as_tensor(moving_labels[None, None], device=field.device)
    warped = warp(moving, field, spacing, mode="nearest", padding="zeros")[0, 0].cpu().numpy()
    return float(np.mean([dice(warped == k, fixed_labels == k) for k in codes]))
