"""Resampling images with displacement fields, composing fields and integrating velocities.

Convention: a displacement ``u`` (B, 2, H, W) in mm lives on the fixed (reference) grid and maps a
fixed point p to p + u(p) in the moving frame, the ITK / Slicer resampling convention:
``warped(p) = moving(p + u(p))``. Channel 0 is x (column / lateral), channel 1 is y (row / depth).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .coordinates import Spacing, mm_to_pixels, pixel_grid, sampling_grid

WARP_MODES = ("bilinear", "nearest")
PADDING_MODES = ("border", "zeros")

# Sampled points within this many pixels outside the image still count as in view (rounding).
IN_VIEW_TOLERANCE_PX = 1e-3


def sampled_pixel_positions(displacement: torch.Tensor, spacing: Spacing) -> torch.Tensor:
    """(B, 2, H, W) position p + u(p) in pixel units (column, row) of every fixed pixel p."""
    return pixel_grid(displacement.shape[-2:], displacement) + mm_to_pixels(displacement, spacing)


def warp(image: torch.Tensor, displacement: torch.Tensor, spacing: Spacing,
         mode: str = "bilinear", padding: str = "border") -> torch.Tensor:
    """Resample ``image`` on the fixed grid: ``warped(p) = image(p + u(p))``.

    Args:
        image: (B, C, Hm, Wm) moving image. A floating image is interpolated; an integer image
            (label codes) needs ``mode="nearest"`` and comes back with its dtype and codes.
        displacement: (B, 2, H, W) mm on the fixed grid: u(p) = (point in the moving image) - p.
            Either batch may be 1 and is then broadcast to the other.
        spacing: (sx, sy) mm, or (B, 2), shared by the fixed and the moving grid.
        mode: "bilinear" for intensities, "nearest" for label maps.
        padding: value where p + u(p) falls outside the moving image. "border" (default) repeats the
            edge pixels: it invents no artificial black edge that a similarity loss could align on,
            and keeps a constant field's warp constant. "zeros" samples 0 outside, as for labels or
            sector-masked images whose surroundings are background. :func:`in_view_mask` says
            which pixels were sampled inside the image either way.

    Returns:
        (B, C, H, W) warped image, dtype of ``image``.
    """
    if mode not in WARP_MODES:
        raise ValueError(f"warp mode must be one of {WARP_MODES}, got {mode!r}")
    if padding not in PADDING_MODES:
        raise ValueError(f"warp padding must be one of {PADDING_MODES}, got {padding!r}")
    if image.ndim != 4 or displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"expected image (B, C, H, W) and displacement (B, 2, H, W), got "
                         f"{tuple(image.shape)} and {tuple(displacement.shape)}")
    integer_image = not image.is_floating_point()
    if integer_image and mode != "nearest":
        raise ValueError(f"an integer image ({image.dtype}) holds label codes: warp it with "
                         "mode='nearest' or convert it to floating point first")
    grid = sampling_grid(displacement, spacing, image.shape[-2:])
    samples = image.to(grid.dtype) if integer_image else image
    grid = grid.to(samples.dtype)
    batch = max(samples.shape[0], grid.shape[0])
    samples = samples.expand(batch, *samples.shape[1:])
    grid = grid.expand(batch, *grid.shape[1:])
    warped = F.grid_sample(samples, grid, mode=mode, padding_mode=padding, align_corners=True)
    return warped.to(image.dtype)  # nearest copies codes exactly


def in_view_mask(displacement: torch.Tensor, spacing: Spacing,
                 image_shape: Sequence[int] | None = None) -> torch.Tensor:
    """(B, 1, H, W) bool: True where p + u(p) lies inside the moving image (between its first and
    last pixel centres, within 1e-3 pixel), i.e. where :func:`warp` did not extrapolate.

    ``image_shape`` (Hm, Wm) of the moving image defaults to the displacement's (H, W).
    """
    h, w = displacement.shape[-2:] if image_shape is None else image_shape
    x, y = sampled_pixel_positions(displacement, spacing).unbind(1)
    tol = IN_VIEW_TOLERANCE_PX
    inside = (x >= -tol) & (x <= w - 1 + tol) & (y >= -tol) & (y <= h - 1 + tol)
    return inside[:, None]


def compose(fixed_to_intermediate: torch.Tensor, intermediate_to_moving: torch.Tensor,
            spacing: Spacing) -> torch.Tensor:
    """Displacement of the composed map: first ``fixed_to_intermediate`` then
    ``intermediate_to_moving``.

    With u_a = ``fixed_to_intermediate`` (x -> x + u_a(x), on the fixed grid) and u_b =
    ``intermediate_to_moving`` (y -> y + u_b(y), on the intermediate grid), the result on the fixed
    grid is x -> x + u_a(x) + u_b(x + u_a(x)). Warping a moving image with it equals warping it with
    u_b and then warping that result with u_a. u_b is interpolated bilinearly and extended beyond
    its grid by its edge values.

    Args:
        fixed_to_intermediate: (B, 2, H, W) mm.
        intermediate_to_moving: (B, 2, H, W) mm.
        spacing: (sx, sy) mm or (B, 2), shared by both grids.

    Returns:
        (B, 2, H, W) mm.
    """
    return fixed_to_intermediate + warp(intermediate_to_moving, fixed_to_intermediate, spacing)


def invert_field(displacement: torch.Tensor, spacing: Spacing, iterations: int = 20) -> torch.Tensor:
    """Displacement of the inverse map, by fixed-point iteration.

    For u (p -> p + u(p), on the fixed grid) the inverse v lives on the moving grid and satisfies
    v(q) = -u(q + v(q)); starting from v = -u, each iteration applies that equation. It converges
    for smooth, fold-free maps whose displacement gradient is below 1 (contractions, as in tissue
    motion between two frames); ``compose(u, v)`` and ``compose(v, u)`` are then the identity up to
    interpolation. u is extended beyond its grid by its edge values.

    Args:
        displacement: (B, 2, H, W) mm.
        spacing: (sx, sy) mm or (B, 2), the same for both grids.
        iterations: fixed-point iterations (the error shrinks by about the largest displacement
            gradient per iteration).

    Returns:
        (B, 2, H, W) mm on the moving grid.
    """
    inverse = -displacement
    for _ in range(iterations):
        inverse = -warp(displacement, inverse, spacing)
    return inverse


def integrate_velocity(velocity: torch.Tensor, spacing: Spacing, steps: int = 7) -> torch.Tensor:
    """Displacement of exp(v): scaling and squaring of a stationary velocity field.

    u_0 = v / 2**steps, then ``steps`` times u <- compose(u, u). The result is (close to)
    diffeomorphic when v / 2**steps is small relative to the pixel size.

    Args:
        velocity: (B, 2, H, W) mm per unit time on the fixed grid.
        spacing: (sx, sy) mm or (B, 2).
        steps: number of squarings (0 returns v itself).

    Returns:
        (B, 2, H, W) displacement in mm, same convention as every field here.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    displacement = velocity / 2**steps
    for _ in range(steps):
        displacement = compose(displacement, displacement, spacing)
    return displacement
