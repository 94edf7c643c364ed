"""Affine CNN: the 6 affine parameters of a (fixed, moving) pair, spatial-transformer style.

The map is the project's physical affine map (:mod:`..spatial.affine`): a fixed point x goes to
A (x - c) + c + t in the moving image, c the image centre; its dense field is
``affine_to_displacement``. Trained without labels by maximising NCC (``train_affine``); usable
alone (:meth:`AffineNet.field`) or as the first stage of a :class:`~.model.DLIRModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..spatial import (Spacing, affine_matrix, affine_to_displacement, centred_positions,
                       spacing_tensor)
from .networks import conv_block, float32_region

# Output units: the linear part moves by LINEAR_SCALE per unit (A = I + 0.1 o), the translation by
# 1 % of the field-of-view height per unit, so both start on a comparable scale for the optimiser.
LINEAR_SCALE = 0.1
PERCENT = 0.01


def field_of_view_height(shape: Sequence[int], spacing: Spacing, like: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) mm depth spanned by a grid of ``shape`` (H, W): (H - 1) sy."""
    return spacing_tensor(spacing, like)[:, 1:2] * (int(shape[0]) - 1)


class AffineNet(nn.Module):
    """CoordConv encoder + global average pooling + linear layer -> 6 affine parameters.

    Input channels: moving, fixed, and the centred x and y positions in units of half the field of
    view height (CoordConv: pooled local motion features can then express rotation and scaling,
    which depend on where they are). Any input size. The linear layer starts at zero: the identity.

    Args:
        channels: widths of the stride-2 convolution levels.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 32, 64, 64)):
        super().__init__()
        self.config = {"channels": [int(c) for c in channels]}
        widths = [4, *self.config["channels"]]
        self.encoder = nn.Sequential(*(conv_block(widths[k], widths[k + 1], stride=2)
                                       for k in range(len(channels))))
        self.head = nn.Linear(widths[-1], 6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def architecture(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """(B, 3, 3) fixed-to-moving affine maps about the image centre for (B, 1, h, w) images in
        [0, 1] on a grid of ``spacing`` (sx, sy) mm or (B, 2)."""
        shape = fixed.shape[-2:]
        height = field_of_view_height(shape, spacing, fixed)
        coords = centred_positions(shape, spacing, fixed) / (height / 2)
        coords = coords.expand(fixed.shape[0], -1, -1, -1).to(fixed.dtype)
        features = self.encoder(torch.cat((moving, fixed, coords), dim=1)).mean(dim=(-2, -1))
        with float32_region(features):
            out = self.head(features.float())
            identity = torch.tensor([1.0, 0.0, 0.0, 1.0], device=out.device)
            linear = identity + LINEAR_SCALE * out[:, :4]
            translation = out[:, 4:] * PERCENT * height[:, :, 0, 0].float()
            return affine_matrix(torch.cat((linear, translation), dim=1))

    def field(self, fixed: torch.Tensor, moving: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """(B, 2, h, w) float32 mm displacement of the predicted affine map on the fixed grid."""
        matrix = self(fixed, moving, spacing)
        with float32_region(matrix):
            return affine_to_displacement(matrix, fixed.shape[-2:], spacing)
