"""The working grid of the DLIR models: every input is resampled to a canonical grid first.

Frames come with different sizes and spacings (CAMUS 512 x 422 at 0.31 mm, the simulator 256 x 256
at 0.6 mm, fetal or paediatric views at a finer scale). The networks always see the frame's field
of view resampled to ``size`` rows of square pixels (size 128: about 1.2 mm for a 150 mm deep
sector), intensities mapped to [0, 1] by robust percentiles. Fields are predicted there in mm and
resampled back to the input grid (bilinear: the motion is smooth, and on simulated ES fields the
round trip through 128 rows costs 0.11 mm of myocardial error, bicubic 0.11 mm too, 64 rows 0.34 mm).

Resampling keeps the physical frame (:mod:`..spatial.pyramid`): the first and last pixel
centres stay in place, so a field in mm means the same on both grids and needs no rescaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..spatial.pyramid import level_spacing, resample_field, resample_image

# Intensity percentiles mapped to 0 and 1: robust to the black sector surround and bright specular
# reflections alike.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
# Above this many values a regular subsample estimates the percentiles.
MAX_PERCENTILE_SAMPLES = 1 << 18


def working_shape(shape: Sequence[int], spacing: Sequence[float], size: int) -> tuple[int, int]:
    """(size, w): ``size`` rows spanning the frame's depth, and as many columns as square pixels of
    that size need to span its width (at least 2). ``shape`` is (H, W), ``spacing`` (sx, sy) mm."""
    h, w = int(shape[0]), int(shape[1])
    if size < 2:
        raise ValueError(f"the working grid needs at least 2 rows, got {size}")
    pixel = (h - 1) * float(spacing[1]) / (size - 1) if h > 1 else float(spacing[1])
    return int(size), max(2, round((w - 1) * float(spacing[0]) / pixel) + 1)


def to_working_grid(images: torch.Tensor, spacing: Sequence[float],
                    size: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """(B, C, H, W) images -> ((B, C, size, w) images on the working grid, its (sx, sy) mm).

    Antialiased bilinear resampling over the same physical extent (identity when the grid already
    has the working shape). Label maps go through as one-hot (soft) channels.
    """
    shape = tuple(images.shape[-2:])
    target = working_shape(shape, spacing, size)
    return resample_image(images, target), level_spacing(shape, target, spacing)


def to_input_grid(field: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(B, 2, h, w) mm field on the working grid -> (B, 2, H, W) mm on the input grid (bilinear)."""
    return resample_field(field, shape)


# EchoSequence.metadata key: the (low, high) intensity window of the sequence a subsequence was cut
# from (:func:`sequence_intensity_window`), so that its frames are normalised as in the whole sequence.
INTENSITY_WINDOW = "intensity_window"


def intensity_window(frames: torch.Tensor) -> torch.Tensor:
    """(2,) float32 tensor on ``frames``' device: the 1st and 99th percentiles of all the values of
    ``frames`` (subsampled beyond ``MAX_PERCENTILE_SAMPLES``), linearly interpolated between order
    statistics as :func:`torch.quantile` does. On the CPU the two pairs of order statistics come from
    one :func:`numpy.partition` (the same values, in a seventh of the time of the full sort
    ``torch.quantile`` makes); elsewhere from ``torch.quantile`` (no copy to the host). The frames are
    finite (:class:`~..sequence.EchoSequence` refuses NaN and infinities): with a NaN ``torch.quantile``
    would give NaN and the partition would not."""
    values = frames.detach().flatten().float()
    if values.numel() > MAX_PERCENTILE_SAMPLES:
        values = values[::values.numel() // MAX_PERCENTILE_SAMPLES + 1]
    quantiles = torch.tensor([LOW_PERCENTILE, HIGH_PERCENTILE], device=values.device) / 100
    if values.device.type != "cpu":
        return torch.quantile(values, quantiles)
    ranks = quantiles * (values.numel() - 1)  # float32, as torch.quantile computes them
    below = ranks.long()
    above = (below + 1).clamp(max=values.numel() - 1)
    ordered = torch.from_numpy(np.partition(values.numpy(), torch.cat((below, above)).numpy()))
    return torch.lerp(ordered[below], ordered[above], ranks - below)


def normalise_intensities(frames: torch.Tensor,
                          window: tuple[float, float] | None = None) -> torch.Tensor:
    """Map a (T, 1, H, W) sequence (or any tensor) to [0, 1]: the 1st percentile of all its values
    to 0, the 99th to 1, clipped. One map for the whole tensor, so frames stay comparable;
    ``window``: that (low, high) given (e.g. the whole sequence's, for a few of its frames)."""
    # computed here, the window stays on the device (no host round trip); a given one is copied there
    bounds = intensity_window(frames) if window is None else torch.tensor(window, device=frames.device)
    low, high = bounds.to(frames.dtype)
    return ((frames - low) / (high - low).clamp(min=1e-6)).clamp(0, 1)


def prepare_frames(frames: torch.Tensor, spacing: Sequence[float], size: int,
                   window: tuple[float, float] | None = None) -> tuple[torch.Tensor, tuple[float, float]]:
    """(T, 1, H, W) raw frames -> ((T, 1, size, w) normalised frames on the working grid, spacing).

    Resampling comes first: the percentiles of the small grid cost little and equal those of the
    full frames up to the antialiasing."""
    working, working_spacing = to_working_grid(frames.float(), spacing, size)
    return normalise_intensities(working, window), working_spacing


def sequence_intensity_window(frames: np.ndarray | torch.Tensor, spacing: Sequence[float],
                              size: int) -> tuple[float, float]:
    """The intensity window :func:`prepare_frames` uses for the (T, H, W) ``frames`` of a whole
    sequence on the working grid of ``size`` rows."""
    tensor = torch.as_tensor(frames)[:, None].float()
    low, high = intensity_window(to_working_grid(tensor, spacing, size)[0]).tolist()
    return low, high
