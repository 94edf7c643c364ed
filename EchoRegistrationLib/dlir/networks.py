"""Convolutional building blocks, the registration U-Net and the cost-volume network.

All networks here are fully convolutional where they produce images or fields: any input size works
(the U-Net pads to a multiple of its stride and crops back), so the same weights serve every stage
of multi-scale training and every working-grid size at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..spatial.warping import integrate_velocity, warp

NEGATIVE_SLOPE = 0.2
# The field head starts near zero (the identity map) without switching the gradient to the rest of
# the network off, as in VoxelMorph.
HEAD_INIT_STD = 1e-5


def float32_region(like: torch.Tensor) -> torch.autocast:
    """A context with autocast off on ``like``'s device: field heads and geometry run in float32
    (bfloat16 keeps 3 significant digits: 0.06 mm of a 15 mm displacement)."""
    return torch.autocast(like.device.type, enabled=False)


def conv_block(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """Conv (``kernel`` x ``kernel``, ``stride``, same padding) + LeakyReLU(0.2), in place on the
    convolution's output (no second full-size tensor; the gradient is the same)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2),
                         nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))


def field_head(in_channels: int, out_channels: int = 2) -> nn.Conv2d:
    """The 3 x 3 convolution that outputs a field, initialised near zero (the identity map;
    :data:`HEAD_INIT_STD`)."""
    head = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.normal_(head.weight, std=HEAD_INIT_STD)
    nn.init.zeros_(head.bias)
    return head


def pad_to_multiple(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, C, h, w) zero-padded at the bottom and right to a multiple of ``stride`` (no copy when it is one)."""
    pad_h, pad_w = -x.shape[-2] % stride, -x.shape[-1] % stride
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


# A 3 x 3 convolution (padding 1) of a nearest x2 upsampled image equals a 4 x 4 transposed
# convolution (stride 2, padding 1) of the coarse image: along each axis, output pixel 2i reads
# coarse pixels i - 1 (tap d = -1) and i (d = 0, +1), output pixel 2i + 1 reads i (d = -1, 0) and
# i + 1 (d = +1); transposed taps k = 0, 1, 2, 3 gather the 3 x 3 taps {+1}, {0, +1}, {-1, 0}, {-1}.


def _fold_taps(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Along ``dim`` (length 3: taps d = -1, 0, +1), the 4 transposed taps (written out: no constant
    tensor to copy to the device on every call)."""
    before, centre, after = weight.unbind(dim)
    return torch.stack((after, centre + after, before + centre, before), dim)


def upsampled_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, 3, 3) weight of a convolution applied after nearest x2 upsampling -> the
    (in, out, 4, 4) weight of the equal transposed convolution of the coarse image (stride 2,
    padding 1). Differentiable: training goes through it."""
    return _fold_taps(_fold_taps(weight, -1), -2).transpose(0, 1)


def upsample_concat_conv(coarse: torch.Tensor, skip: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(cat(nearest_x2(coarse), skip))`` without building either tensor.

    Args:
        coarse: (B, Cc, h, w) decoder features.
        skip: (B, Cs, 2h, 2w) encoder features.
        conv: a 3 x 3 convolution (stride 1, padding 1) of Cc + Cs channels, coarse ones first.

    Returns:
        (B, out, 2h, 2w): equal to the upsample-concatenate-convolve form up to float rounding
        (about 1e-6 relative), in about 40 % less time on CPUs (forward and backward): the
        upsampled part costs 16 instead of 36 multiply-adds per coarse pixel and channel pair
        (:func:`upsampled_conv_weight`), and no upsampled or concatenated copy is written.

    Raises:
        ValueError: ``conv`` is not such a convolution, or ``skip`` is not twice the size of
            ``coarse``.
    """
    if (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode) != \
            ((3, 3), (1, 1), (1, 1), (1, 1), 1, "zeros"):
        raise ValueError(f"expected a 3 x 3 convolution with stride 1, zero padding 1, no dilation or groups, "
                         f"got {conv}")
    if skip.shape[-2:] != (2 * coarse.shape[-2], 2 * coarse.shape[-1]):
        raise ValueError(f"skip features of size {tuple(skip.shape[-2:])} are not twice the coarse "
                         f"size {tuple(coarse.shape[-2:])}")
    split = coarse.shape[1]
    out = F.conv_transpose2d(coarse, upsampled_conv_weight(conv.weight[:, :split]), stride=2, padding=1)
    return out.add_(F.conv2d(skip, conv.weight[:, split:], conv.bias, padding=1))


class RegistrationUNet(nn.Module):
    """VoxelMorph-style 2D U-Net: (B, in_channels, h, w) -> (B, out_channels, h / s, w / s).

    A stem convolution at full resolution, ``len(encoder)`` stride-2 convolutions, then decoder
    steps, each upsampling by 2 (nearest), concatenating the encoder features of that size and
    convolving (computed as one transposed and one plain convolution, :func:`upsample_concat_conv`),
    up to the output level: full resolution (``output_stride`` s = 1) or s times
    coarser (the last log2(s) decoder levels are left out; output pixel i sits on input pixel
    s i). One convolution per level keeps it fast: at the default widths (95 k parameters) 19 pairs
    of 128 x 106 take about 0.1 s on 2 CPU threads (channels-last layout). The input is
    zero-padded at the bottom and right to a multiple of :attr:`stride` and the output cropped
    back to ceil(h / s) x ceil(w / s), so any size works; the output is contiguous (not channels-last).
    The head is initialised near zero: the model starts as the identity map.

    Args:
        in_channels: input channels (2: moving and fixed image).
        out_channels: output channels (2: the x and y field components).
        stem: channels of the full-resolution stem.
        encoder: channels of each stride-2 level, fine to coarse.
        decoder: channels of each decoder level, coarse to fine; ``len(encoder) - log2(s)`` of them.
        output_stride: s, a power of 2 up to :attr:`stride`.
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 2, stem: int = 16,
                 encoder: Sequence[int] = (32, 32, 32, 32), decoder: Sequence[int] = (32, 32, 32, 16),
                 output_stride: int = 1):
        super().__init__()
        skipped = int(output_stride).bit_length() - 1
        if output_stride < 1 or 2 ** skipped != output_stride or skipped > len(encoder):
            raise ValueError(f"output_stride must be a power of 2 up to 2 ** {len(encoder)}, "
                             f"got {output_stride}")
        if len(decoder) != len(encoder) - skipped or not encoder:
            raise ValueError(f"a U-Net with {len(encoder)} encoder levels and output stride "
                             f"{output_stride} needs {len(encoder) - skipped} decoder levels, got "
                             f"{list(encoder)} and {list(decoder)}")
        self.config = {"in_channels": int(in_channels), "out_channels": int(out_channels),
                       "stem": int(stem), "encoder": [int(c) for c in encoder],
                       "decoder": [int(c) for c in decoder], "output_stride": int(output_stride)}
        self.output_stride = int(output_stride)
        self.stem = conv_block(in_channels, stem)
        widths = [stem, *encoder]
        self.down = nn.ModuleList(conv_block(widths[k], widths[k + 1], stride=2)
                                  for k in range(len(encoder)))
        skips = widths[-2::-1]  # skip widths, coarse to fine
        ups, current = [], widths[-1]
        for skip, width in zip(skips, decoder):
            ups.append(conv_block(current + skip, width))
            current = width
        self.up = nn.ModuleList(ups)
        self.head = field_head(current, out_channels)

    @property
    def stride(self) -> int:
        """Input sizes are padded to a multiple of this."""
        return 2 ** len(self.down)

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments (JSON-ready)."""
        return dict(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # channels-last: 1.7x faster on CPUs, good on GPUs
        x = pad_to_multiple(x, self.stride).contiguous(memory_format=torch.channels_last)
        features = [self.stem(x)]
        for down in self.down:
            features.append(down(features[-1]))
        x = features.pop()
        for up in self.up:
            conv, activation = up
            x = activation(upsample_concat_conv(x, features.pop(), conv))
        s = self.output_stride
        with float32_region(x):
            # out in the standard layout: resampling and integrating a channels-last (B, 2, H, W) field
            # took up to 3x as long on CPUs (15 % of a 20-frame sequence's registration)
            return self.head(x.float())[..., :-(-h // s), :-(-w // s)].contiguous()


def correlation(fixed: torch.Tensor, moving: torch.Tensor, radius: int) -> torch.Tensor:
    """A local cost volume: the cosine of the feature vectors of ``fixed`` at p and of ``moving`` at p + d,
    for every displacement d in [-r, r]^2 (PWC-Net's correlation layer, Sun et al., CVPR 2018, on
    normalised features: the cosine lies in [-1, 1] whatever the features' scale).

    Args:
        fixed, moving: (B, C, h, w) features on the same grid.
        radius: r, cells; zero beyond the border.

    Returns:
        (B, (2r + 1)^2, h, w) float32, channel (dy + r) (2r + 1) + (dx + r) for d = (dx, dy) (x along columns).
    """
    h, w = fixed.shape[-2:]
    fixed = F.normalize(fixed.float(), dim=1, eps=1e-6)
    padded = F.pad(F.normalize(moving.float(), dim=1, eps=1e-6), (radius, radius, radius, radius))
    side = 2 * radius + 1
    return torch.stack([(fixed * padded[..., dy:dy + h, dx:dx + w]).sum(1) for dy in range(side)
                        for dx in range(side)], 1)


def upsample_flow(flow: torch.Tensor) -> torch.Tensor:
    """One pyramid level up: (B, 2, h, w) displacement in pixels of a grid whose pixel i sits on pixel 2i of
    the finer grid (the output of a stride-2, padding-1 convolution of a (2h, 2w) input) -> (B, 2, 2h, 2w) in
    pixels of the finer grid. Fine pixel j reads the coarse flow at j / 2 (bilinear; the last row and column,
    past the coarse grid's last pixel, repeat the one before), and the values double: a translation of d
    coarse pixels is one of exactly 2d fine pixels at every size."""
    h, w = flow.shape[-2:]
    inner = F.interpolate(flow, size=(2 * h - 1, 2 * w - 1), mode="bilinear", align_corners=True)
    return 2.0 * F.pad(inner, (0, 1, 0, 1), mode="replicate")


class CostVolumeNet(nn.Module):
    """A PWC-Net-style registration network (Sun et al., CVPR 2018), a drop-in for :class:`RegistrationUNet`:
    (B, 2, h, w) (moving, fixed) -> (B, 2, h, w) field in percent of the depth spanned, ``(h - 1)`` pixels.

    One feature pyramid for both images (strides 1, 2, 4, 8; two convolutions per level). At stride 8 the
    fixed features are correlated with the moving ones over +-``radii[0]`` cells (:func:`correlation`) and a
    small estimator predicts the flow; at strides 4 and 2 the moving features are warped by the flow so far
    (upsampled, :func:`upsample_flow`), correlated again over +-``radii[k]`` and a residual flow is added.
    The stride-2 flow is upsampled to the input grid. Inside, the flows are in pixels of each level; the
    output's percent of the depth is of ``h - 1`` rows for both components (the working grid's pixels are
    square, :mod:`.grid`). Where the U-Net must learn to find a match, the cost
    volume gives each estimator the matches' scores directly: on the validation sets, trained from scratch
    on the same data and terms for the same 2000 steps, it followed physics-simulated speckle (SIMUS) far
    better (docs/generalisation.md, "A cost-volume network").
    Any input size works (zero-padded to a multiple of 8 and cropped back); the heads start near zero (the
    identity map). The correlation, the warps and the heads run in float32.

    Where the model reads the output as a stationary velocity (``DLIRModel(diffeomorphic=True)`` passes its
    squarings as ``velocity_steps`` to :meth:`forward`), every level's flow is a velocity too, and the moving
    features are warped by its exponential (:func:`..spatial.integrate_velocity`, the same squarings): the
    map the model will apply, not the velocity read as a displacement.

    Args:
        widths: channels of the pyramid's levels at strides 1, 2, 4, 8.
        radii: correlation radii (cells) at strides 8, 4, 2.
        estimator: channels of each estimator's convolutions.
    """

    kind = "cost_volume"
    output_stride = 1
    stride = 8

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 64), radii: Sequence[int] = (3, 3, 2),
                 estimator: Sequence[int] = (64, 48, 32)):
        super().__init__()
        if len(widths) != 4 or len(radii) != 3 or not estimator:
            raise ValueError(f"a cost-volume network needs 4 pyramid widths, 3 radii and estimator channels, got "
                             f"{list(widths)}, {list(radii)}, {list(estimator)}")
        self.config = {"kind": self.kind, "widths": [int(c) for c in widths], "radii": [int(r) for r in radii],
                       "estimator": [int(c) for c in estimator]}
        c0, c1, c2, c3 = self.config["widths"]
        self.pyramid = nn.ModuleList([conv_block(1, c0),
                                      nn.Sequential(conv_block(c0, c1, stride=2), conv_block(c1, c1)),
                                      nn.Sequential(conv_block(c1, c2, stride=2), conv_block(c2, c2)),
                                      nn.Sequential(conv_block(c2, c3, stride=2), conv_block(c3, c3))])
        self.radii = self.config["radii"]
        self.estimators, self.heads = nn.ModuleList(), nn.ModuleList()
        for k, (channels, radius) in enumerate(zip((c3, c2, c1), self.radii)):
            layers, current = [], (2 * radius + 1) ** 2 + channels + (0 if k == 0 else 2)
            for width in self.config["estimator"]:
                layers.append(conv_block(current, width))
                current = width
            self.estimators.append(nn.Sequential(*layers))
            self.heads.append(field_head(current))

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments and ``kind`` (JSON-ready; :func:`registration_network` rebuilds it)."""
        return dict(self.config)

    def forward(self, x: torch.Tensor, velocity_steps: int = 0) -> torch.Tensor:
        """(B, 2, h, w) (moving, fixed) -> (B, 2, h, w) percent of the depth; ``velocity_steps``: squarings of
        each flow before it warps the features, where the output is a velocity (0: a displacement)."""
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        n = x.shape[0]
        levels = [self.pyramid[0](torch.cat((x[:, 0:1], x[:, 1:2]), 0))]  # the moving images, then the fixed
        for level in self.pyramid[1:]:
            levels.append(level(levels[-1]))
        flow = None  # pixels of the current level
        for k, features in enumerate(levels[3:0:-1]):  # strides 8, 4, 2
            moving, fixed = features[:n], features[n:]
            if flow is not None:
                flow = upsample_flow(flow)
                with float32_region(moving):
                    moving = _warp_pixels(moving.float(), flow if velocity_steps == 0 else
                                          integrate_velocity(flow, (1.0, 1.0), velocity_steps))
            parts = [correlation(fixed, moving, self.radii[k]).to(fixed.dtype), fixed]
            estimate = self.estimators[k](torch.cat(parts if flow is None else parts + [flow.to(fixed.dtype)], 1))
            with float32_region(estimate):
                step = self.heads[k](estimate.float())
            flow = step if flow is None else flow + step
        with float32_region(flow):
            return (upsample_flow(flow)[..., :h, :w] * (100.0 / max(h - 1, 1))).contiguous()


def _warp_pixels(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (B, C, h, w) sampled at p + flow(p), ``flow`` (B, 2, h, w) in pixels (border padding)."""
    return warp(image, flow, (1.0, 1.0))


def registration_network(config: dict[str, Any] | None = None) -> nn.Module:
    """The registration network of an architecture ``config``: a :class:`CostVolumeNet` where its ``kind`` is
    "cost_volume", else a :class:`RegistrationUNet` of those arguments (default: its defaults).

    Raises:
        ValueError: an unknown ``kind``, or arguments the network does not take.
    """
    config = dict(config or {})
    kind = config.pop("kind", "unet")
    if kind == CostVolumeNet.kind:
        return CostVolumeNet(**config)
    if kind != "unet":
        raise ValueError(f"unknown registration network kind {kind!r}: 'unet' or {CostVolumeNet.kind!r}")
    return RegistrationUNet(**config)
