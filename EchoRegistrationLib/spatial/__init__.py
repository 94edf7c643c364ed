"""Differentiable 2D spatial transforms in physical units (torch, batched, CPU or CUDA).

Conventions: images are (B, C, H, W); displacement and velocity fields are (B, 2, H, W) in mm on
the fixed (reference) grid, channel 0 = x (column / lateral), channel 1 = y (row / depth); a field
maps a fixed point p to p + u(p) in the moving frame, so ``warped(p) = moving(p + u(p))`` (ITK /
Slicer resampling convention). Pixel (row i, column j) sits at (j * sx, i * sy) mm. Spacing is
(sx, sy) mm or a (B, 2) tensor.
"""

from .affine import (affine_matrix, affine_to_displacement, fit_affine, rigid_matrix,
                     rigid_parameters)
from .coordinates import (Spacing, centred_positions, image_centre, mm_to_pixels, pixel_grid,
                          pixels_to_mm, pixels_to_normalised, position_grid, spacing_tensor)
from .fields import field_to_numpy, field_to_torch, mirror_field
from .jacobian import (central_difference, displacement_gradient, folding_fraction,
                       jacobian_determinant)
from .warping import (compose, in_view_mask, integrate_velocity, invert_field,
                      sampled_pixel_positions, warp)

__all__ = [
    "Spacing", "affine_matrix", "affine_to_displacement", "central_difference",
    "centred_positions", "compose", "displacement_gradient", "field_to_numpy", "field_to_torch",
    "fit_affine", "folding_fraction", "image_centre", "in_view_mask", "integrate_velocity",
    "invert_field", "jacobian_determinant", "mirror_field", "mm_to_pixels", "pixel_grid",
    "pixels_to_mm",
    "pixels_to_normalised",
    "position_grid", "rigid_matrix", "rigid_parameters", "sampled_pixel_positions",
    "spacing_tensor", "warp",
]
