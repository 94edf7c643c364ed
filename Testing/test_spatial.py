"""The torch spatial core against analytic answers: warps, compositions, velocity integration,
Jacobians, affine maps and field layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from EchoRegistrationLib.spatial import (affine_matrix, affine_to_displacement, central_difference,
                                         centred_positions, compose, field_to_numpy,
                                         field_to_torch, fit_affine, folding_fraction,
                                         image_centre, in_view_mask, integrate_velocity,
                                         invert_field,
                                         jacobian_determinant, pixels_to_normalised,
                                         position_grid, rigid_matrix, rigid_parameters, warp)

F64 = torch.float64
SPACING = (0.3, 0.2)  # anisotropic on purpose: x (column) and y (row) must not be swapped


def constant_field(shape: tuple[int, int], ux: float, uy: float, dtype=F64) -> torch.Tensor:
    """(1, 2, H, W) field equal to (ux, uy) mm everywhere."""
    return torch.tensor([ux, uy], dtype=dtype).reshape(1, 2, 1, 1).expand(1, 2, *shape).clone()


def sample(pattern, points_mm: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) analytic ``pattern(x, y)`` at (1, 2, H, W) physical points."""
    return pattern(points_mm[:, 0], points_mm[:, 1])[:, None]


def smooth_pattern(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Periods 8 mm in x and 6 mm in y; |f_xx| <= (2 pi / 8)^2, |f_yy| <= (2 pi / 6)^2."""
    return torch.sin(2 * math.pi * x / 8 + 0.3) * torch.cos(2 * math.pi * y / 6 - 0.2)


def bilinear_error_bound(spacing: tuple[float, float]) -> float:
    """|f - bilinear(f)| <= (sx^2 max|f_xx| + sy^2 max|f_yy|) / 8 for :func:`smooth_pattern`."""
    return (spacing[0] ** 2 * (2 * math.pi / 8) ** 2 + spacing[1] ** 2 * (2 * math.pi / 6) ** 2) / 8


def test_coordinate_grids_follow_the_pixel_centre_convention():
    like = torch.zeros((), dtype=F64)
    grid = position_grid((4, 5), SPACING, like)
    assert grid.shape == (1, 2, 4, 5)
    assert grid[0, 0, 2, 3].item() == pytest.approx(3 * 0.3)  # x = column * sx
    assert grid[0, 1, 2, 3].item() == pytest.approx(2 * 0.2)  # y = row * sy
    assert image_centre((4, 5), SPACING, like)[0].tolist() == pytest.approx([0.6, 0.3])
    corners = torch.tensor([[[[0.0, 4.0]], [[0.0, 3.0]]]], dtype=F64)  # pixels (x, y): (0,0), (4,3)
    assert pixels_to_normalised(corners, (4, 5)).tolist() == [[[[-1.0, -1.0], [1.0, 1.0]]]]


def test_integer_translation_shifts_pixels_exactly_and_reports_the_view():
    image = torch.rand(1, 1, 9, 11, dtype=F64)
    u = constant_field((9, 11), 2 * SPACING[0], -1 * SPACING[1])  # +2 columns, -1 row
    warped = warp(image, u, SPACING)
    # warped(row i, col j) = image(row i - 1, col j + 2) wherever that pixel exists
    torch.testing.assert_close(warped[..., 1:, :-2], image[..., :-1, 2:], rtol=0, atol=1e-12)
    expected_view = torch.zeros(1, 1, 9, 11, dtype=torch.bool)
    expected_view[..., 1:, :-2] = True
    assert torch.equal(in_view_mask(u, SPACING), expected_view)
    zero_padded = warp(image, u, SPACING, padding="zeros")
    assert zero_padded[~expected_view].abs().max().item() == 0
    torch.testing.assert_close(warped[..., 0, :-2], image[..., 0, 2:])  # border: edge row repeated


def test_per_item_spacing_scales_each_item():
    image = torch.rand(1, 1, 6, 8, dtype=F64)
    u = constant_field((6, 8), 2.0, 0.0).expand(2, -1, -1, -1)
    spacing = torch.tensor([[1.0, 1.0], [2.0, 1.0]], dtype=F64)  # 2 mm = 2 columns, then 1 column
    warped = warp(image, u, spacing)
    torch.testing.assert_close(warped[0, ..., :-2], image[0, ..., 2:])
    torch.testing.assert_close(warped[1, ..., :-1], image[0, ..., 1:])


def test_subpixel_shift_of_a_smooth_image_matches_the_analytic_shift():
    shape = (40, 48)
    points = position_grid(shape, SPACING, torch.zeros((), dtype=F64))
    image = sample(smooth_pattern, points)
    u = constant_field(shape, 0.11, -0.13)  # 0.37 and 0.65 of a pixel
    warped = warp(image, u, SPACING)
    expected = sample(smooth_pattern, points + u)
    inside = in_view_mask(u, SPACING)
    error = (warped - expected)[inside].abs().max().item()
    assert error <= bilinear_error_bound(SPACING)
    assert (image - expected)[inside].abs().max().item() > 10 * bilinear_error_bound(SPACING)


def test_rotation_of_an_analytic_pattern_about_the_image_centre():
    shape = (50, 60)
    points = position_grid(shape, SPACING, torch.zeros((), dtype=F64))
    image = sample(smooth_pattern, points)
    angle, shift = 0.25, (0.4, -0.3)
    rigid = rigid_matrix(torch.tensor([angle], dtype=F64), shift)
    u = affine_to_displacement(rigid, shape, SPACING)
    centre = np.array([(shape[1] - 1) * SPACING[0] / 2, (shape[0] - 1) * SPACING[1] / 2])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    xy = points[0].numpy().reshape(2, -1)
    moved = rotation @ (xy - centre[:, None]) + centre[:, None] + np.array(shift)[:, None]
    torch.testing.assert_close(points + u, torch.from_numpy(moved.reshape(1, 2, *shape)))
    expected = sample(smooth_pattern, torch.from_numpy(moved.reshape(1, 2, *shape)))
    inside = in_view_mask(u, SPACING)
    assert inside.float().mean().item() > 0.6
    error = (warp(image, u, SPACING) - expected)[inside].abs().max().item()
    assert error <= bilinear_error_bound(SPACING)


def test_positive_angle_turns_lateral_towards_depth():
    quarter_turn = rigid_matrix(torch.tensor([math.pi / 2], dtype=F64), (0.0, 0.0))
    torch.testing.assert_close(quarter_turn[0, :2, :2] @ torch.tensor([1.0, 0.0], dtype=F64),
                               torch.tensor([0.0, 1.0], dtype=F64))


def test_rigid_and_affine_parameters_round_trip():
    angles = torch.tensor([0.3, -1.1], dtype=F64)
    shifts = torch.tensor([[1.5, -2.0], [0.0, 0.7]], dtype=F64)
    angle, translation = rigid_parameters(rigid_matrix(angles, shifts))
    torch.testing.assert_close(angle, angles)
    torch.testing.assert_close(translation, shifts)
    matrix = affine_matrix(torch.tensor([1.1, 0.2, -0.1, 0.9, 0.5, -0.4], dtype=F64))
    assert matrix[0].tolist() == [[1.1, 0.2, 0.5], [-0.1, 0.9, -0.4], [0.0, 0.0, 1.0]]
    field = affine_to_displacement(matrix, (7, 9), SPACING)
    torch.testing.assert_close(fit_affine(field, SPACING), matrix)
    mask = torch.zeros(1, 1, 7, 9, dtype=torch.bool)
    mask[..., 2:5, 3:7] = True
    garbage_outside = torch.where(mask, field, torch.randn_like(field))
    torch.testing.assert_close(fit_affine(garbage_outside, SPACING, mask), matrix)


def test_composition_of_two_affine_fields_is_the_field_of_the_product():
    shape = (30, 36)
    first = rigid_matrix(torch.tensor([0.2], dtype=F64), (0.3, -0.2))  # fixed -> intermediate
    then = affine_matrix(torch.tensor([1.1, 0.15, 0.0, 0.9, -0.5, 0.25], dtype=F64))
    u_first = affine_to_displacement(first, shape, SPACING)
    u_then = affine_to_displacement(then, shape, SPACING)
    inside = in_view_mask(u_first, SPACING).expand(1, 2, *shape)
    composed = compose(u_first, u_then, SPACING)
    expected = affine_to_displacement(then @ first, shape, SPACING)
    torch.testing.assert_close(composed[inside], expected[inside])
    swapped = compose(u_then, u_first, SPACING)  # the other order is a different map
    assert (swapped - expected)[inside].abs().max().item() > 0.1


def test_inverse_of_an_affine_field_is_the_field_of_the_inverse_matrix():
    shape = (40, 44)
    matrix = affine_matrix(torch.tensor([0.92, 0.08, -0.05, 0.88, 0.6, -0.4], dtype=F64))
    u = affine_to_displacement(matrix, shape, SPACING)
    expected = affine_to_displacement(torch.linalg.inv(matrix), shape, SPACING)
    inverse = invert_field(u, SPACING)
    inside = in_view_mask(expected, SPACING).expand(1, 2, *shape)  # where u is not extrapolated
    assert inside.float().mean() > 0.7
    torch.testing.assert_close(inverse[inside], expected[inside])
    identity = compose(inverse, u, SPACING)  # q -> q + v(q) -> back to q
    assert identity[inside].abs().max().item() < 1e-9
    assert (invert_field(u, SPACING, iterations=0) - expected)[inside].abs().max().item() > 0.1


def test_constant_velocity_integrates_to_the_same_translation():
    v = constant_field((12, 14), 0.7, -0.4)
    torch.testing.assert_close(integrate_velocity(v, SPACING), v)


def test_linear_velocity_integrates_to_the_matrix_exponential():
    shape = (48, 48)
    generator = torch.tensor([[0.05, -0.3], [0.3, -0.02]], dtype=F64)  # rotation + mild scaling
    homogeneous = torch.eye(3, dtype=F64)[None].clone()
    homogeneous[0, :2, :2] += generator  # v(x) = G (x - c)
    velocity = affine_to_displacement(homogeneous, shape, SPACING)
    flow = torch.eye(3, dtype=F64)[None].clone()
    flow[0, :2, :2] = torch.linalg.matrix_exp(generator)
    expected = affine_to_displacement(flow, shape, SPACING)
    result = integrate_velocity(velocity, SPACING, steps=7)
    radius = centred_positions(shape, SPACING, velocity)
    central = (radius.norm(dim=1, keepdim=True) < 2.0).expand(1, 2, *shape)  # paths stay in view
    assert central.sum() > 200
    assert (result - expected)[central].abs().max().item() < 2e-3
    euler_step = (velocity - expected)[central].abs().max().item()
    assert euler_step > 0.02  # a single Euler step is clearly worse
    torch.testing.assert_close(integrate_velocity(velocity, SPACING, steps=0), velocity)


@pytest.mark.parametrize("shape", [(2, 2, 7, 5), (1, 1, 2, 3), (1, 2, 1, 4)])
def test_central_difference_is_torch_gradient_and_differentiable(shape):
    values = torch.randn(*shape, dtype=F64, requires_grad=True)
    for dim in (-1, -2):
        got = central_difference(values, dim)
        expected = torch.gradient(values, dim=dim)[0] if shape[dim] > 1 else torch.zeros_like(values)
        assert torch.equal(got, expected)  # one-sided at the edges, 0 along an axis of length 1
        assert torch.autograd.gradcheck(lambda v: central_difference(v, dim), (values,))


def test_jacobian_determinant_of_an_affine_map_is_det_a():
    parameters = torch.tensor([[1.2, 0.3, -0.1, 0.8, 0.4, 0.1],
                               [-1.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=F64)  # the second mirrors x
    matrix = affine_matrix(parameters)
    field = affine_to_displacement(matrix, (9, 10), SPACING)
    det = jacobian_determinant(field, SPACING)
    assert det.shape == (2, 9, 10)
    torch.testing.assert_close(det[0], torch.full((9, 10), 1.2 * 0.8 + 0.3 * 0.1, dtype=F64))
    torch.testing.assert_close(det[1], torch.full((9, 10), -1.0, dtype=F64))
    assert folding_fraction(field, SPACING).tolist() == [0.0, 1.0]


def test_jacobian_and_folding_of_a_sinusoidal_fold():
    # u_x = a sin(k x + phase): det = 1 + a k' cos(k x + phase), k' = sin(k sx) / sx (central
    # differences); a k' = 2 folds where cos <= -1/2, a third of every period.
    sx, sy = SPACING
    period_px, width = 30, 62
    k = 2 * math.pi / (period_px * sx)
    amplitude = 2 / (math.sin(k * sx) / sx)
    x = torch.arange(width, dtype=F64) * sx
    field = torch.zeros(1, 2, 5, width, dtype=F64)
    field[:, 0] = amplitude * torch.sin(k * x + 0.1)
    det = jacobian_determinant(field, SPACING)
    expected = 1 + 2 * torch.cos(k * x[1:-1] + 0.1)
    torch.testing.assert_close(det[0, :, 1:-1], expected.expand(5, -1))
    interior = torch.zeros(1, 1, 5, width, dtype=torch.bool)
    interior[..., 1:-1] = True  # two whole periods
    fraction = folding_fraction(field, SPACING, interior).item()
    assert fraction == pytest.approx((expected <= 0).double().mean().item())
    assert fraction == pytest.approx(1 / 3, abs=0.04)


def test_folding_fraction_keeps_each_items_spacing_and_mask():
    # Item b: u_x = -j mm in its columns j < b + 2, 0 beyond. With sx = 0.5 mm, det J = 1 - 1 / sx
    # = -1 in columns 0..b (b + 1 folded columns), > 0 elsewhere; with sx = 2 mm, det J = 0.5: no
    # folding. Masks: columns 0..9 for even items, everything for odd ones.
    n, height, width = 10, 6, 20
    sx = [2.0 if b % 3 == 2 else 0.5 for b in range(n)]
    spacing = torch.tensor([[s, 0.3] for s in sx], dtype=F64)
    field = torch.zeros(n, 2, height, width, dtype=F64)
    mask = torch.ones(n, 1, height, width, dtype=torch.bool)
    for b in range(n):
        field[b, 0, :, :b + 2] = -torch.arange(b + 2, dtype=F64)
        if b % 2 == 0:
            mask[b, ..., 10:] = False
    folded = [0 if s > 1 else b + 1 for b, s in enumerate(sx)]
    within = [f / (10 if b % 2 == 0 else width) for b, f in enumerate(folded)]
    torch.testing.assert_close(folding_fraction(field, spacing, mask), torch.tensor(within, dtype=F64))
    torch.testing.assert_close(folding_fraction(field, spacing), torch.tensor(folded, dtype=F64) / width)
    torch.testing.assert_close(folding_fraction(field, spacing, mask[:1]), torch.tensor(folded, dtype=F64) / 10)
    assert folding_fraction(field, (0.5, 0.3)).tolist() == [(b + 1) / width for b in range(n)]


def test_nearest_warp_of_labels_keeps_the_label_codes():
    labels = torch.zeros(1, 1, 20, 24, dtype=torch.uint8)
    labels[..., 4:12, 5:15] = 1
    labels[..., 8:16, 10:20] = 2
    labels[..., 2:6, 18:22] = 3
    field = affine_to_displacement(rigid_matrix(torch.tensor([0.4]), (0.3, 0.1)), (20, 24), SPACING)
    warped = warp(labels, field, SPACING, mode="nearest", padding="zeros")
    assert warped.dtype == torch.uint8
    assert set(torch.unique(warped).tolist()) == {0, 1, 2, 3}
    as_float = warp(labels.float(), field, SPACING, mode="nearest", padding="zeros")
    assert torch.equal(as_float, warped.float())
    shift = constant_field((20, 24), -3 * SPACING[0], 2 * SPACING[1], dtype=torch.float32)
    shifted = warp(labels, shift, SPACING, mode="nearest")
    assert torch.equal(shifted[..., :-2, 3:], labels[..., 2:, :-3])
    with pytest.raises(ValueError, match="nearest"):
        warp(labels, field, SPACING)


def test_field_layouts_round_trip_between_numpy_and_torch():
    field = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
    tensor = field_to_torch(field)
    assert tensor.shape == (3, 2, 4, 5)
    assert torch.equal(tensor[1, 0], torch.from_numpy(field[1, ..., 0]))  # channel 0 = x
    np.testing.assert_array_equal(field_to_numpy(tensor), field)
    assert field_to_torch(field[0], dtype=F64).shape == (1, 2, 4, 5)
    with pytest.raises(ValueError):
        field_to_torch(field[..., :1])


def test_gradients_flow_through_warp_compose_and_the_builders():
    torch.manual_seed(0)
    image = torch.rand(1, 1, 5, 6, dtype=F64, requires_grad=True)
    field = (0.3 * torch.randn(1, 2, 5, 6, dtype=F64)).requires_grad_()
    for padding in ("border", "zeros"):
        assert torch.autograd.gradcheck(lambda i, u: warp(i, u, SPACING, padding=padding),
                                        (image, field))
    other = (0.3 * torch.randn(1, 2, 5, 6, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: compose(a, b, SPACING), (field, other))
    assert torch.autograd.gradcheck(lambda u: jacobian_determinant(u, SPACING), (field,))
    angle = torch.tensor([0.3], dtype=F64, requires_grad=True)
    shift = torch.tensor([[0.2, -0.1]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, t: affine_to_displacement(rigid_matrix(a, t), (4, 5), SPACING), (angle, shift))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_match_cpu():
    image = torch.rand(2, 1, 16, 20)
    rigid = rigid_matrix(torch.tensor([0.1, -0.2]), (0.5, 0.2))
    field = affine_to_displacement(rigid, (16, 20), SPACING)
    for fn in (lambda i, u: warp(i, u, SPACING), lambda i, u: compose(u, u, SPACING),
               lambda i, u: jacobian_determinant(integrate_velocity(u, SPACING), SPACING)):
        torch.testing.assert_close(fn(image.cuda(), field.cuda()).cpu(), fn(image, field),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("field_batch, image_shape", [(3, (40, 36)), (1, (50, 30)), (3, (1, 36))])
def test_the_fused_sampling_grid_is_the_normalised_sampled_positions(field_batch, image_shape):
    """``sampling_grid`` (one multiply-add, what ``warp`` samples with) equals the two-step grid:
    positions p + u(p) / spacing in pixels, then normalised for the moving image's shape; for a
    batch-1 field with per-item spacings, another image shape and a single-pixel axis."""
    from EchoRegistrationLib.spatial.coordinates import pixels_to_normalised, sampling_grid
    from EchoRegistrationLib.spatial.warping import sampled_pixel_positions

    u = torch.randn(field_batch, 2, 40, 36, dtype=torch.float64) * 3
    spacing = torch.tensor([[0.5, 0.4], [0.3, 0.3], [0.7, 0.2]], dtype=torch.float64)[:max(field_batch, 3)]
    two_step = pixels_to_normalised(sampled_pixel_positions(u, spacing), image_shape)
    fused = sampling_grid(u, spacing, image_shape)
    assert fused.shape == two_step.shape == (3, 40, 36, 2)
    torch.testing.assert_close(fused, two_step, atol=1e-12, rtol=0)
    assert float(fused[0, 0, 0, 0]) == pytest.approx(float(u[0, 0, 0, 0]) / 0.5 * 2 / max(image_shape[1] - 1, 1) - 1)
