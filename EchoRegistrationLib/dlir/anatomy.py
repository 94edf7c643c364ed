"""The anatomy network: per-pixel probabilities of the LV cavity, the myocardium and the left atrium in
an echo frame, the anatomical guide of the DLIR refinement.

The refinement (:func:`..registration.tracking.register_sequence`, ``refine``) warm-starts the
optimiser from the network's field and, when the model carries an anatomy network, compares these
probability maps of the two frames beside their intensities (``features`` of
:func:`..registration.pairwise.register_pair`). The image similarity alone pulls the walls to
where the speckle matches, which on real pairs is not where experts draw them (on CAMUS it lost
Dice against the network alone, whatever the similarity); the maps pull the walls of the two frames
onto each other as an expert would see them. See :data:`..registration.tracking.REFINE_ANATOMY_WEIGHT`
for what it gains and costs.

The network is a :class:`.networks.RegistrationUNet` with one input (the frame on the working grid
of ``working_size`` rows, :mod:`.grid`, intensities normalised as for the registration network) and
one output per class (background, then :data:`ANATOMY_LABELS`), trained by
:func:`.anatomy_training.train_anatomy` on annotated frames (CAMUS ED / ES, simulated sequences).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ..sequence import LABEL_LA, LABEL_LV, LABEL_MYOCARDIUM
from ..spatial.pyramid import resample_image
from .grid import prepare_frames
from .networks import RegistrationUNet

ANATOMY_LABELS = (LABEL_LV, LABEL_MYOCARDIUM, LABEL_LA)  # the classes after background, in output order
DEFAULT_ANATOMY_SIZE = 160  # rows of the working grid: about 1 mm for a 150 mm deep sector
DEFAULT_ANATOMY_UNET: dict[str, Any] = {"stem": 16, "encoder": [32, 48, 64, 64], "decoder": [64, 48, 32, 16]}


class AnatomyNet(nn.Module):
    """Segmentation of echo frames into background and :data:`ANATOMY_LABELS`.

    Args:
        net: the U-Net (1 input channel, ``1 + len(ANATOMY_LABELS)`` outputs at full resolution).
        working_size: rows of the working grid it runs at (:mod:`.grid`).

    Raises:
        ValueError: a U-Net with other channel counts or a coarser output.
    """

    def __init__(self, net: RegistrationUNet, working_size: int = DEFAULT_ANATOMY_SIZE):
        super().__init__()
        config = net.architecture()
        if (config["in_channels"], config["out_channels"], config["output_stride"]) != (1, 1 + len(ANATOMY_LABELS), 1):
            raise ValueError(f"an anatomy U-Net takes 1 channel and gives {1 + len(ANATOMY_LABELS)} at full "
                             f"resolution, got {config['in_channels']} -> {config['out_channels']} at stride "
                             f"{config['output_stride']}")
        self.net = net
        self.working_size = int(working_size)

    @classmethod
    def new(cls, working_size: int = DEFAULT_ANATOMY_SIZE, **unet: Any) -> "AnatomyNet":
        """An untrained network: :data:`DEFAULT_ANATOMY_UNET` with ``unet`` over it."""
        options = {**DEFAULT_ANATOMY_UNET, **unet}
        return cls(RegistrationUNet(1, 1 + len(ANATOMY_LABELS), **options), working_size)

    def architecture(self) -> dict[str, Any]:
        """What :meth:`from_architecture` needs (JSON-ready)."""
        return {"unet": self.net.architecture(), "working_size": self.working_size}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> "AnatomyNet":
        return cls(RegistrationUNet(**architecture["unet"]), architecture["working_size"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) frames in [0, 1] on the working grid -> (B, 1 + K, h, w) float32 class logits."""
        return self.net(images).float()

    def probabilities(self, frames: torch.Tensor, spacing: Sequence[float],
                      window: tuple[float, float] | None = None) -> torch.Tensor:
        """(T, K, H, W) float32 probabilities of :data:`ANATOMY_LABELS` (background left out) of
        (T, 1, H, W) raw ``frames`` of (sx, sy) mm ``spacing``, on their own grid.

        The frames are brought to the working grid and normalised as for the registration network
        (:func:`.grid.prepare_frames`, ``window``: the whole sequence's intensity window when these
        are a few of its frames), segmented, and the probabilities resampled back (bilinear).

        Raises:
            TypeError: ``frames`` is not a tensor. ValueError: it is not (T, 1, H, W)."""
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"frames must be a torch.Tensor of shape (T, 1, H, W), got {type(frames).__name__}")
        if frames.ndim != 4 or frames.shape[1] != 1:
            raise ValueError(f"frames must have shape (T, 1, H, W), got {tuple(frames.shape)}")
        working, _ = prepare_frames(frames, spacing, self.working_size, window)
        probabilities = self(working.to(next(self.parameters()).dtype)).softmax(1)[:, 1:]
        return resample_image(probabilities, frames.shape[-2:])


__all__ = ["ANATOMY_LABELS", "AnatomyNet", "DEFAULT_ANATOMY_SIZE", "DEFAULT_ANATOMY_UNET"]
