"""Losses of the enhancement CycleGAN.

* least-squares adversarial losses (Mao et al., LSGAN, 2017), the discriminator's weighted by one
  half as in CycleGAN (it then learns at half the generators' rate);
* cycle consistency and identity (L1, CycleGAN);
* the structure-preserving terms EchoGANhance's author planned next: SSIM (Wang et al. 2004) between
  a generator's input and output, which keeps edges and structures where they are, and an
  illumination-consistency term, the L1 distance between the local mean brightness of input and
  output (16 x 16 pixel blocks), which stops the generator from moving bright tissue or inventing
  it in the cavity.

Images are (B, 1, H, W) in -1..1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dlir.objectives import TermWeights

SSIM_WINDOW = 7                  # pixels, uniform window
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2   # for a dynamic range of 1 (images mapped to 0..1)
ILLUMINATION_BLOCK = 16          # pixels


@dataclass(frozen=True)
class EnhancerWeights(TermWeights):
    """Weights of the generator terms (CycleGAN: cycle 10, identity 0.5 x cycle)."""

    adversarial: float = 1.0
    cycle: float = 10.0
    identity: float = 5.0
    ssim: float = 1.0
    illumination: float = 1.0

    def settings(self) -> dict[str, Any]:
        return asdict(self)


def generator_adversarial(scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: mean (D(G(x)) - 1)^2."""
    return (scores - 1.0).pow(2).mean()


def discriminator_adversarial(discriminator: nn.Module, real: torch.Tensor,
                              fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss weighted by one half: 0.5 [mean (D(real) - 1)^2 + mean D(fake)^2];
    ``fake`` is detached."""
    return 0.5 * ((discriminator(real) - 1.0).pow(2).mean() + discriminator(fake.detach()).pow(2).mean())


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean structural similarity of (B, 1, H, W) images in -1..1 (:func:`ssim_map`): 1 for
    identical images, about 0 for unrelated ones."""
    return ssim_map(a, b).mean()


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, 1, H - 6, W - 6) local structural similarity of (B, 1, H, W) images in -1..1 (uniform
    7 x 7 windows, valid region: entry (i, j) is the window centred on pixel (i + 3, j + 3))."""
    a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0
    mean = lambda x: F.avg_pool2d(x, SSIM_WINDOW, stride=1)  # noqa: E731
    mu_a, mu_b = mean(a), mean(b)
    var_a = mean(a * a) - mu_a ** 2
    var_b = mean(b * b) - mu_b ** 2
    cov = mean(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
            / ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))


def illumination(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 distance of the local mean brightness (16 x 16 blocks, -1..1 units) of two images."""
    return (F.avg_pool2d(a, ILLUMINATION_BLOCK, ceil_mode=True)
            - F.avg_pool2d(b, ILLUMINATION_BLOCK, ceil_mode=True)).abs().mean()


def structure_terms(source: torch.Tensor, translated: torch.Tensor) -> dict[str, torch.Tensor]:
    """The structure-preserving terms of one translation: ``ssim`` (1 - SSIM) and ``illumination``."""
    return {"ssim": 1.0 - ssim(source, translated), "illumination": illumination(source, translated)}
