"""The CycleGAN of echo enhancement: ResNet generators and 70 x 70 PatchGAN discriminators.

Sources: Zhu, Park, Isola and Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks" (CycleGAN, ICCV 2017: the ResNet generator of Johnson et al., c7s1-k, dk, Rk,
uk); Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks" (pix2pix, CVPR
2017: the 70 x 70 PatchGAN C64-C128-C256-C512); EchoGANhance (a CycleGAN with these discriminators,
translating low-quality to high-quality echo).

The project's :class:`~..dlir.discriminator.PatchDiscriminator` does not fit here: it judges
(fixed, candidate) PAIRS (two input channels) for registration texture, has 31 x 31 pixel patches,
spectral normalisation and no instance normalisation. CycleGAN's discriminators judge one image of
one domain with the pix2pix architecture, which :class:`PatchGAN70` is.

Images are (B, 1, H, W) float in -1..1 (grey 0..255 mapped linearly, :func:`to_unit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dlir.checkpoints import register_kind
from ..dlir.shipped import ENHANCER_KIND

NEGATIVE_SLOPE = 0.2


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """Grey 0..255 -> -1..1 (the generators' tanh range)."""
    return frames / 127.5 - 1.0


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """-1..1 -> grey 0..255, clipped."""
    return ((images + 1.0) * 127.5).clamp(0.0, 255.0)


class _ResidualBlock(nn.Module):
    """Rk: two 3 x 3 reflection-padded convolutions with instance norm; x + F(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: (B, 1, H, W) -> (B, 1, H, W), both in -1..1.

    c7s1-``width``, d(2 width), d(4 width), ``blocks`` x R(4 width), u(2 width), u(width), c7s1-1,
    tanh; instance norm, reflection padding. H and W must be multiples of 4 (the two stride-2 levels);
    :func:`translate` pads.

    ``residual`` (the default; not in CycleGAN) adds the input to twice the tanh output and clips to
    -1..1, with the last convolution initialised to zero: the generator starts as the identity and
    learns a correction, which a CPU training budget of a few thousand steps can afford (a plain
    generator spends them learning to copy the image). At the defaults (width 16, 6 blocks: 0.48 M parameters)
    a 256 x 256 frame takes about 0.1 s on 2 CPU threads.

    Args:
        width: channels of the full-resolution level (CycleGAN: 64).
        blocks: residual blocks at a quarter of the resolution (CycleGAN: 9 at 256 x 256).
    """

    def __init__(self, width: int = 16, blocks: int = 6, residual: bool = True):
        super().__init__()
        self.config = {"width": int(width), "blocks": int(blocks), "residual": bool(residual)}
        w = int(width)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(1, w, 7), nn.InstanceNorm2d(w), nn.ReLU(True)]
        for k in (1, 2):
            layers += [nn.Conv2d(w * k, w * 2 * k, 3, stride=2, padding=1), nn.InstanceNorm2d(w * 2 * k),
                       nn.ReLU(True)]
        layers += [_ResidualBlock(4 * w) for _ in range(int(blocks))]
        for k in (4, 2):
            layers += [nn.ConvTranspose2d(w * k, w * k // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(w * k // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.head = layers[-2]

    def architecture(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.net(images)
        return (images + 2.0 * out).clamp(-1.0, 1.0) if self.config["residual"] else out


class PatchGAN70(nn.Module):
    """pix2pix's 70 x 70 PatchGAN: (B, 1, H, W) -> (B, 1, H / 8 - 2, W / 8 - 2) real/fake scores.

    C64-C128-C256-C512 (Ck: 4 x 4 convolution with k filters, instance norm, LeakyReLU 0.2; no norm
    on C64), stride 2 for the first three, stride 1 for C512 and for the final 4 x 4 convolution to
    one channel, as in pix2pix and CycleGAN: each score sees a 70 x 70 pixel patch of the input.
    No sigmoid (least-squares GAN).

    Args:
        channels: the four widths (default 64, 128, 256, 512; smaller ones for tests).
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        self.config = {"channels": [int(c) for c in channels]}
        widths = [1, *self.config["channels"]]
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            stride = 2 if k < len(widths) - 2 else 1
            layers.append(nn.Conv2d(widths[k], widths[k + 1], 4, stride, padding=1))
            if k:
                layers.append(nn.InstanceNorm2d(widths[k + 1]))
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE, True))
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, padding=1))
        self.net = nn.Sequential(*layers)

    def architecture(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def translate(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 1, h, w) through a generator of any input size: replicate-padded at the
    bottom and right to multiples of 4 (:class:`ResnetGenerator`'s two stride-2 levels), cropped back."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (0, -w % 4, 0, -h % 4), mode="replicate")
    return generator(padded)[..., :h, :w]


def initialise(module: nn.Module, std: float = 0.02) -> nn.Module:
    """CycleGAN's initialisation: convolution weights N(0, 0.02), biases 0; the head of a residual
    :class:`ResnetGenerator` zero (the identity map). Returns ``module``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    if isinstance(module, ResnetGenerator) and module.config["residual"]:
        nn.init.zeros_(module.head.weight)
    return module


register_kind(ENHANCER_KIND, ResnetGenerator)
register_kind("patchgan70", PatchGAN70)
