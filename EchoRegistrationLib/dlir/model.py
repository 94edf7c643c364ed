"""The DLIR registration model: U-Net field prediction on the working grid, in mm.

The U-Net may predict the field on a grid ``output_stride`` times coarser than the working grid
(:class:`.networks.RegistrationUNet`): it still sees every working-grid pixel (the speckle), and the
smooth field is upsampled bilinearly (:func:`upsample_field`).

:class:`DLIRModel` maps a batch of (fixed, moving) images that are already on the working grid
(:mod:`.grid`: ``working_size`` rows of square pixels, intensities in [0, 1]) to displacement fields
in mm on that grid, in the project convention (fixed point p -> p + u(p) in the moving image).
:mod:`.inference` brings any sequence to the working grid and the fields back.

Network output units: percent of the field-of-view height (x and y alike), a unit that means the
same motion at every working size and every imaging depth. That is what lets the weights of one
multi-scale stage start the next (32 -> 64 -> 128 rows) without relearning the field's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..spatial.pairs import MODES
from ..spatial import Spacing, compose, integrate_velocity, mirror_field, spacing_tensor, warp
from .affine_net import PERCENT, AffineNet, field_of_view_height
from .anatomy import AnatomyNet
from .correction import FieldCorrection
from .networks import CostVolumeNet, RegistrationUNet, float32_region, registration_network

DEFAULT_WORKING_SIZE = 128


def upsample_field(field: torch.Tensor, factor: int, shape: Sequence[int]) -> torch.Tensor:
    """(B, 2, h, w) mm field whose pixel i sits on pixel ``factor`` i of a finer grid -> (B, 2, H, W)
    on that grid (bilinear; the coarse field is extended by its edge values where the fine grid
    reaches past its last pixel, h = ceil(H / factor))."""
    h, w = field.shape[-2:]
    padded = F.pad(field, (0, 1, 0, 1), mode="replicate")
    fine = F.interpolate(padded, size=(h * factor + 1, w * factor + 1), mode="bilinear",
                         align_corners=True)
    return fine[..., :shape[0], :shape[1]]


class DLIRModel(nn.Module):
    """Deep-learning image registration: an optional affine stage, then a U-Net field.

    Args:
        net: the U-Net (2 input channels: moving, fixed; 2 outputs), or None for an affine-only
            model (``affine`` is then required).
        working_size: rows of the working grid the model is meant to run at (:mod:`.grid`).
        diffeomorphic: the U-Net predicts a stationary velocity field, integrated by scaling and
            squaring (:func:`..spatial.integrate_velocity`); otherwise it predicts the displacement.
        integration_steps: squarings of the velocity integration.
        affine: an optional first stage; the U-Net then registers the affinely pre-aligned moving
            image and the fields are composed.
        mode: the tracking the model was trained for (:data:`..spatial.pairs.MODES`):
            "to_reference" (any two frames, ED <-> ES included) or "sequential" (near neighbours,
            whose fields are composed); inference and validation use it unless told otherwise.
        passes: applications of the network per pair (a recurrent cascade with shared weights, as
            in the recurrent cascades of Zhao et al., ICCV 2019): each pass registers the fixed image
            to the moving image warped by the field so far, and the residual field is composed with
            it. One pass: the plain network. Kept in the checkpoint; may be changed after training
            (a network trained for one pass often recovers only part of a large motion, and a
            second pass takes part of the rest).
        correction: an optional fine-grid correction stage (:class:`.correction.FieldCorrection`,
            trained for this network's fields): inference (:mod:`.inference`) brings the frames to
            its grid too and corrects the field against the moving frame warped by it. The
            stage is not part of :meth:`forward`, which works on one grid.
        anatomy: an optional :class:`.anatomy.AnatomyNet` whose class probabilities guide the
            refinement (:mod:`.anatomy`); not used by the network's own prediction.
    """

    def __init__(self, net: RegistrationUNet | CostVolumeNet | None, *,
                 working_size: int = DEFAULT_WORKING_SIZE, diffeomorphic: bool = False,
                 integration_steps: int = 7, affine: AffineNet | None = None,
                 mode: str = "to_reference", passes: int = 1,
                 correction: FieldCorrection | None = None, anatomy: AnatomyNet | None = None):
        super().__init__()
        if net is None and affine is None:
            raise ValueError("a DLIR model needs a U-Net, an affine stage, or both")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if int(passes) < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.net = net
        self.working_size = int(working_size)
        self.diffeomorphic = bool(diffeomorphic)
        self.integration_steps = int(integration_steps)
        self.affine = affine
        self.mode = mode
        self.passes = int(passes)
        self.correction = correction
        self.anatomy = anatomy

    def architecture(self) -> dict[str, Any]:
        """Everything :meth:`from_architecture` needs to rebuild the model (JSON-ready)."""
        return {"unet": None if self.net is None else self.net.architecture(),
                "working_size": self.working_size,
                "diffeomorphic": self.diffeomorphic, "integration_steps": self.integration_steps,
                "affine": None if self.affine is None else self.affine.architecture(),
                "mode": self.mode, "passes": self.passes,
                **({} if self.correction is None else {"correction": self.correction.architecture()}),
                **({} if self.anatomy is None else {"anatomy": self.anatomy.architecture()})}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> "DLIRModel":
        unet, affine, correction = architecture["unet"], architecture["affine"], architecture.get("correction")
        anatomy = architecture.get("anatomy")
        return cls(None if unet is None else registration_network(unet),
                   working_size=architecture["working_size"],
                   diffeomorphic=architecture["diffeomorphic"],
                   integration_steps=architecture["integration_steps"],
                   affine=None if affine is None else AffineNet(**affine),
                   mode=architecture.get("mode", "to_reference"),
                   passes=architecture.get("passes", 1),
                   correction=None if correction is None else FieldCorrection.from_architecture(correction),
                   anatomy=None if anatomy is None else AnatomyNet.from_architecture(anatomy))

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """(B, 2, h, w) float32 mm displacement on the fixed grid, after :attr:`passes` passes.

        Args:
            fixed, moving: (B, 1, h, w) images in [0, 1] on the same grid (fixed batch 1 or B).
            spacing: (sx, sy) mm or (B, 2) of that grid.

        The networks may run under autocast; their heads and the field arithmetic (units,
        integration, composition) run in float32.
        """
        field = self.single_pass(fixed, moving, spacing)
        for _ in range(self.passes - 1):
            with float32_region(field):
                warped = warp(moving.float(), field, spacing)
            residual = self.single_pass(fixed, warped.to(moving.dtype), spacing)
            with float32_region(field):
                field = compose(residual, field, spacing)
        return field

    def single_pass(self, fixed: torch.Tensor, moving: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """One application of the network: (B, 2, h, w) float32 mm, arguments as :meth:`forward`."""
        fixed = fixed.expand_as(moving)
        pre_aligned = None
        if self.affine is not None:
            pre_aligned = self.affine.field(fixed, moving, spacing)
            if self.net is None:
                return pre_aligned
            with float32_region(moving):
                moving = warp(moving.float(), pre_aligned, spacing)
        inputs = torch.cat((moving, fixed), dim=1)
        # float32 (the head runs in float32); a cost volume's inner flows are read as its output is
        out = (self.net(inputs, self.integration_steps if self.diffeomorphic else 0)
               if isinstance(self.net, CostVolumeNet) else self.net(inputs))
        with float32_region(out):
            field = out * (PERCENT * field_of_view_height(fixed.shape[-2:], spacing, out))
            stride = self.net.output_stride
            if self.diffeomorphic:
                field = integrate_velocity(field, spacing_tensor(spacing, out)[:, :, 0, 0] * stride,
                                           self.integration_steps)
            if stride > 1:
                field = upsample_field(field, stride, fixed.shape[-2:])
            if pre_aligned is not None:
                field = compose(field, pre_aligned, spacing)
        return field

    def mirror_averaged(self, fixed: torch.Tensor, moving: torch.Tensor, spacing: Spacing) -> torch.Tensor:
        """Test-time flip augmentation: the mean of the pair's field and the mirror image of the
        mirrored pair's field, (B, 2, h, w) mm as :meth:`forward`. Training mirrors pairs at random,
        so both estimate the same motion; their mean is less noisy, for twice the network time."""
        mirrored = mirror_field(self(fixed.flip(-1), moving.flip(-1), spacing))
        return 0.5 * (self(fixed, moving, spacing) + mirrored)
