"""Domain randomisation of echo appearance for DLIR training pairs.

A network trained on one image formation (the project's simulator, or one scanner) learns its
speckle, point-spread function and grey-level mapping. :func:`randomise_appearance` redraws them for
every training pair, so that what stays constant is only the motion: a point-spread blur (axial and
lateral widths drawn apart), time-gain compensation (a smooth random gain profile over depth), a
dynamic-range change (a random gamma), near-field haze (smooth clutter fading with depth), a lateral
dropout band (a wall segment losing signal) and, per frame, receiver noise and a small gain change.
Geometry is untouched, so labels and true motion stay valid.

Intensities stay in [0, 1] (clipped), as :func:`.grid.normalise_intensities` gives them.
:func:`random_affine` draws the random affine maps of the geometric augmentations (VAE masks, the
affine stage, warped templates).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..spatial import affine_matrix

PSF_SIGMA_PX = (0.0, 1.2)  # Gaussian blur widths on the working grid, drawn per axis
TGC_RANGE = (0.6, 1.4)  # gain at the three depth knots of the time-gain profile
GAMMA_RANGE = (0.6, 1.6)  # dynamic range: the same gamma for the frames of a pair
HAZE_RANGE = (0.0, 0.35)  # near-field clutter amplitude
HAZE_DEPTH = (0.1, 0.4)  # its decay length, fraction of the depth
DROPOUT_PROBABILITY = 0.3
DROPOUT_GAIN = (0.2, 0.8)  # signal left in the dropout band
NOISE_RANGE = (0.0, 0.06)  # receiver noise standard deviation, per frame
FRAME_GAIN_RANGE = (0.9, 1.1)  # gain change between the frames of a pair


def gaussian_blur(images: torch.Tensor, sigmas: np.ndarray, padding: str = "constant") -> torch.Tensor:
    """(B, C, h, w) images blurred by a separable Gaussian of (B, 2) (row, column) widths in px
    (one grouped convolution per axis; a width of 0 leaves that axis alone). ``padding``: how the
    edges are extended (:func:`torch.nn.functional.pad`'s mode: "constant" with zeros, "reflect")."""
    batch, channels, h, w = images.shape
    radius = max(1, int(np.ceil(3 * sigmas.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    widths = torch.as_tensor(sigmas, dtype=images.dtype, device=images.device).clamp(min=1e-3)
    kernels = torch.exp(-0.5 * (offsets / widths[..., None]) ** 2)  # (B, 2, K)
    kernels = (kernels / kernels.sum(-1, keepdim=True)).repeat_interleave(channels, dim=0)  # (B C, 2, K)
    out = images.reshape(1, batch * channels, h, w)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode=padding),
                   kernels[:, 0, :, None, None].transpose(1, 2), groups=batch * channels)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode=padding),
                   kernels[:, 1, None, None, :], groups=batch * channels)
    return out.reshape(batch, channels, h, w)


def randomise_appearance(stack: torch.Tensor, rng: np.random.Generator,
                         probability: float = 0.8) -> torch.Tensor:
    """Redraw the appearance of each item of a batch of frame stacks.

    Args:
        stack: (B, F, h, w) intensities in [0, 1]; the F frames of an item (a pair and the fixed
            frame's neighbour) share one scanner: blur, time-gain profile, gamma, haze and dropout;
            noise and a small gain change are drawn per frame.
        rng: the random numbers (the run's generator: a seeded run repeats).
        probability: share of the items that are changed (the others pass unchanged).

    Returns:
        (B, F, h, w) in [0, 1], on the device and dtype of ``stack``.
    """
    batch, n_frames, h, w = stack.shape
    dev, dtype = stack.device, stack.dtype
    changed = torch.from_numpy(rng.random(batch) < probability).to(dev)

    def draw(bounds: tuple[float, float], *shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(*bounds, (batch, *shape))).to(device=dev, dtype=dtype)

    out = gaussian_blur(stack, rng.uniform(*PSF_SIGMA_PX, (batch, 2)))
    depth = torch.linspace(0, 1, h, device=dev, dtype=dtype)
    knots = draw(TGC_RANGE, 3)  # gain at depth 0, 1/2, 1: piecewise linear profile
    upper = knots[:, 0:1] + (knots[:, 1:2] - knots[:, 0:1]) * (2 * depth).clamp(max=1)
    profile = torch.where(depth <= 0.5, upper, knots[:, 1:2] + (knots[:, 2:3] - knots[:, 1:2])
                          * (2 * depth - 1).clamp(min=0))
    out = out * profile[:, None, :, None]
    out = out.clamp(0, 1) ** draw(GAMMA_RANGE)[:, None, None, None]
    clutter = F.interpolate(torch.from_numpy(rng.random((batch, 1, 6, 6))).to(dev, dtype), size=(h, w),
                            mode="bicubic", align_corners=True).clamp(0, 1)
    fade = torch.exp(-depth[None, :] / draw(HAZE_DEPTH)[:, None])  # (B, h)
    out = out + draw(HAZE_RANGE)[:, None, None, None] * clutter * fade[:, None, :, None]
    columns = torch.linspace(0, 1, w, device=dev, dtype=dtype)
    centre, width = draw((0.2, 0.8)), draw((0.05, 0.2))
    band = (torch.abs(columns[None] - centre[:, None]) < width[:, None] / 2).to(dtype)  # (B, w)
    dropped = torch.from_numpy(rng.random(batch) < DROPOUT_PROBABILITY).to(dev, dtype)
    keep = 1 - band * dropped[:, None] * (1 - draw(DROPOUT_GAIN)[:, None])
    out = out * keep[:, None, None, :]
    out = out * draw(FRAME_GAIN_RANGE, n_frames)[..., None, None]
    generator = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
    noise = torch.randn((batch, n_frames, h, w), generator=generator, device=dev, dtype=dtype)
    out = (out + draw(NOISE_RANGE)[:, None, None, None] * noise).clamp(0, 1)
    return torch.where(changed[:, None, None, None], out, stack)


def random_affine(batch_size: int, rng: np.random.Generator, max_rotation: float = 15.0,
                  max_scale: float = 0.15, max_shift: float = 10.0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 3, 3) random affine maps about the image centre (:mod:`..spatial.affine`): a rotation of
    up to ``max_rotation`` degrees after independent x / y scalings within 1 +- ``max_scale``, then
    a translation of up to ``max_shift`` mm along each axis."""
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, batch_size))
    sx, sy = rng.uniform(1 - max_scale, 1 + max_scale, (2, batch_size))
    shift = rng.uniform(-max_shift, max_shift, (2, batch_size))
    cos, sin = np.cos(angle), np.sin(angle)
    parameters = np.stack([cos * sx, -sin * sy, sin * sx, cos * sy, *shift], axis=1)
    return affine_matrix(torch.as_tensor(parameters, dtype=torch.float32, device=device))
