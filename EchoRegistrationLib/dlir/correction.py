"""The fine-grid correction stage of a DLIR model: the residual after the network's field, on a finer grid.

The registration network (:class:`.model.DLIRModel`) predicts its field on a grid of 128 rows (about
1.1 mm pixels for a 140 mm deep sector). Its end-point error on echo it never saw is about half a pixel
of that grid, and a finer grid alone does not mend it: the network applied at 192-256 rows is worse, and
fine-tuned at 160 rows it was worse everywhere (docs/generalisation.md, "The fine-grid correction stage").
The correction stage is a second,
small network that sees the fixed frame and the moving frame *warped by the first field* on a finer grid
(:data:`DEFAULT_CORRECTION_SIZE` rows) and predicts the small residual motion left, which is composed
with the first field: a correction network in the sense of Quicksilver (Yang, Kwitt, Styner and
Niethammer, NeuroImage 158, 2017: a second network trained on the residual after the first prediction;
seed 004 of this project), here for a 2D field on a finer grid rather than a second momentum.

Residual motion is small and local, so the stage is a shallow U-Net whose output is in pixels of its
grid (not in percent of the field of view, as the first network's): a residual of one pixel means the
same at every depth of field. It predicts a stationary velocity, integrated by scaling and squaring
(:func:`..spatial.integrate_velocity`), so it cannot fold where the velocity is smooth. The head starts
near zero: an untrained stage is close to the identity. :func:`.correction_training.train_correction` trains it on
pairs with true motion, the first network frozen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..spatial import Spacing, compose, integrate_velocity, spacing_tensor, warp
from .networks import RegistrationUNet, float32_region

# rows of the correction grid: 1.5 times the network's 128 (about 0.73 mm for a 140 mm deep sector), as
# shipped; a stage of the default width at 256 rows costs about as much as three network passes
DEFAULT_CORRECTION_SIZE = 192
DEFAULT_CORRECTION_UNET = {"stem": 16, "encoder": (32, 32, 32), "decoder": (32, 32, 16)}


class FieldCorrection(nn.Module):
    """Residual field after a first field, on a finer grid (module docstring).

    Args:
        net: a 2-in, 2-out :class:`~.networks.RegistrationUNet` (inputs: the warped moving and the
            fixed image); its output is a velocity in pixels of the correction grid.
        working_size: rows of the correction grid (:mod:`.grid`).
        integration_steps: squarings of the velocity integration.
    """

    def __init__(self, net: RegistrationUNet, working_size: int = DEFAULT_CORRECTION_SIZE,
                 integration_steps: int = 7):
        super().__init__()
        if int(working_size) < 2:
            raise ValueError(f"the correction grid needs at least 2 rows, got {working_size}")
        self.net = net
        self.working_size = int(working_size)
        self.integration_steps = int(integration_steps)

    @classmethod
    def new(cls, working_size: int = DEFAULT_CORRECTION_SIZE, **unet: Any) -> "FieldCorrection":
        """An untrained stage (close to the identity: the U-Net's head starts near zero); ``unet``:
        arguments of :class:`~.networks.RegistrationUNet` over :data:`DEFAULT_CORRECTION_UNET`."""
        return cls(RegistrationUNet(2, 2, **{**DEFAULT_CORRECTION_UNET, **unet}), working_size)

    def architecture(self) -> dict[str, Any]:
        """Everything :meth:`from_architecture` needs (JSON-ready)."""
        return {"unet": self.net.architecture(), "working_size": self.working_size,
                "integration_steps": self.integration_steps}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> "FieldCorrection":
        return cls(RegistrationUNet(**architecture["unet"]), architecture["working_size"],
                   architecture["integration_steps"])

    def residual(self, fixed: torch.Tensor, warped: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """(B, 2, h, w) float32 mm residual field: fixed point p is at p + r(p) in ``warped``.

        Args:
            fixed, warped: (B, 1, h, w) images in [0, 1] on the correction grid (``warped``: the
                moving image warped by the first field); ``fixed`` may be one image for all.
            spacing: (sx, sy) mm or (B, 2) of that grid.
        """
        out = self.net(torch.cat((warped, fixed.expand_as(warped)), dim=1))
        with float32_region(out):
            pixel = spacing_tensor(spacing, out)
            return integrate_velocity(out * pixel, pixel[:, :, 0, 0], self.integration_steps)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor, field: torch.Tensor,
                spacing: Spacing) -> torch.Tensor:
        """(B, 2, h, w) float32 mm: ``field`` corrected, the residual composed with it.

        Args:
            fixed, moving: (B, 1, h, w) images in [0, 1] on the correction grid (``fixed`` may be
                one image for all).
            field: (B, 2, h, w) mm first field on that grid (fixed point p -> p + u(p) in ``moving``).
            spacing: (sx, sy) mm or (B, 2) of that grid.
        """
        with float32_region(field):
            warped = warp(moving.float(), field.float(), spacing).to(moving.dtype)
        residual = self.residual(fixed, warped, spacing)
        with float32_region(residual):
            return compose(residual, field.float(), spacing)
