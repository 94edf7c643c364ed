"""PatchGAN discriminator of (fixed, candidate) image pairs: the texture constraint of DLIR.

The public notebook of Hasan et al. shows its discriminator fixed frames as real and warped frames
as fake, unconditionally. That rewards any realistic-looking warped image, aligned or not, and it
can only be won by making the warped image identical to a frame it can never equal (speckle
decorrelates). Here the discriminator is conditional: it judges the PAIR (fixed, candidate).

* real: (fixed, a neighbouring frame of the fixed frame): two real frames of the same moment,
  aligned up to the small motion of one frame interval, with natural speckle decorrelation between
  them; the neighbour is shifted by a random sub-pixel amount so that it has been interpolated just
  like a warped frame (otherwise interpolation blur alone would give fakes away);
* fake: (fixed, moving frame warped onto it).

So the generator is pushed towards warped frames that look like a real neighbour of the fixed
frame: aligned anatomy, speckle texture that is not smeared or stretched. Least-squares GAN losses
(stable gradients), one-sided label smoothing (real target 0.9) and spectral normalisation keep the
game tame; the weight of the term is small (see ``LossWeights``) and it can be switched off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from .networks import conv_block


class PatchDiscriminator(nn.Module):
    """(fixed, candidate) (B, 1, h, w) each -> (B, 1, h / 8, w / 8) patch scores (about 1 real, 0
    fake). Three stride-2 convolutions and a 3 x 3 head: each score sees a 31 x 31 pixel patch
    (37 mm on a 128-row working grid). Spectrally normalised weights.

    Args:
        channels: widths of the stride-2 levels.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        self.config = {"channels": [int(c) for c in channels]}
        widths = [2, *self.config["channels"]]
        blocks = [conv_block(widths[k], widths[k + 1], stride=2) for k in range(len(channels))]
        for block in blocks:
            spectral_norm(block[0])
        self.features = nn.Sequential(*blocks)
        self.head = spectral_norm(nn.Conv2d(widths[-1], 1, 3, padding=1))

    def architecture(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, fixed: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(torch.cat((fixed.expand_as(candidate), candidate), dim=1)))
