"""Mask VAEs: the anatomical shape prior of DLIR (one VAE per structure: LV cavity, myocardium).

A VAE learns the plausible shapes of one structure from label maps; its encoder's latent mean then
measures how a warped mask's shape differs from the fixed frame's (:class:`~.objectives.ShapePrior`).
Masks are soft (one-hot label maps warped bilinearly, resampled to coarse stages), so the VAE is
trained on soft, augmented masks too (``train_vae``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..spatial.pyramid import resample_image
from ..sequence import LABEL_LV, LABEL_MYOCARDIUM
from .networks import conv_block

STRUCTURES = {"lv": LABEL_LV, "myocardium": LABEL_MYOCARDIUM}


def structure_label(structure: int | str) -> int:
    """The CAMUS label code of ``structure``: "lv" (1), "myocardium" (2), or the code itself."""
    if isinstance(structure, str) and not structure.isdigit():
        key = structure.strip().lower()
        if key not in STRUCTURES:
            raise ValueError(f"unknown structure {structure!r}: use one of {sorted(STRUCTURES)} or a label code")
        return STRUCTURES[key]
    return int(structure)


class MaskVAE(nn.Module):
    """Convolutional VAE of a (B, 1, H, W) soft mask, resampled to ``input_size`` x ``input_size``.

    Encoder: stride-2 convolutions down to ``input_size / 2**len(channels)``, then linear layers to
    the mean and log-variance of a ``latent_size`` Gaussian. Decoder: the mirror image (linear,
    nearest upsampling + convolutions), ending in logits.

    Args:
        label: the label code of the structure it encodes (1 LV cavity, 2 myocardium).
        latent_size: latent dimensions.
        channels: encoder widths, fine to coarse (the decoder mirrors them).
        input_size: side of the square grid the masks are resampled to (divisible by
            2**len(channels)).
    """

    def __init__(self, label: int = LABEL_LV, latent_size: int = 32,
                 channels: Sequence[int] = (16, 32, 64, 64), input_size: int = 64):
        super().__init__()
        channels = [int(c) for c in channels]
        self.config = {"label": int(label), "latent_size": int(latent_size), "channels": channels,
                       "input_size": int(input_size)}
        self.bottom = int(input_size) // 2 ** len(channels)
        if self.bottom * 2 ** len(channels) != input_size or self.bottom < 1:
            raise ValueError(f"input_size {input_size} is not divisible by 2**{len(channels)}")
        widths = [1, *channels]
        self.encoder = nn.Sequential(*(conv_block(widths[k], widths[k + 1], stride=2)
                                       for k in range(len(channels))), nn.Flatten())
        flat = channels[-1] * self.bottom ** 2
        self.posterior = nn.Linear(flat, 2 * latent_size)
        self.expand = nn.Linear(latent_size, flat)
        self.decoder = nn.ModuleList(conv_block(channels[k], channels[max(k - 1, 0)])
                                     for k in reversed(range(len(channels))))
        self.logits = nn.Conv2d(channels[0], 1, 3, padding=1)

    @property
    def label(self) -> int:
        return self.config["label"]

    @property
    def input_size(self) -> int:
        return self.config["input_size"]

    def architecture(self) -> dict[str, Any]:
        return dict(self.config)

    def resize(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) masks on the VAE's square grid (antialiased bilinear, differentiable)."""
        return resample_image(masks, (self.input_size, self.input_size))

    def encode(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, H, W) soft masks in [0, 1] -> latent mean and log-variance, (B, latent) each."""
        mean, log_variance = self.posterior(self.encoder(self.resize(masks))).chunk(2, dim=1)
        return mean, log_variance

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, 1, input_size, input_size) logits."""
        x = self.expand(latent).view(len(latent), -1, self.bottom, self.bottom)
        for block in self.decoder:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.logits(x)

    def forward(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits of the reconstruction, latent mean, log-variance); the decoder sees a sample of
        the posterior in training mode and its mean in eval mode."""
        mean, log_variance = self.encode(masks)
        latent = mean
        if self.training:
            latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return self.decode(latent), mean, log_variance
