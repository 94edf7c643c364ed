"""Registration losses against known values and a naive local-NCC reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from EchoRegistrationLib.losses import (bending_energy, box_mean, dice_loss, dice_scores,
                                        diffusion_regulariser, folding_penalty, local_ncc_loss,
                                        mse_loss, mutual_information_loss, ncc_loss, one_hot)
from EchoRegistrationLib.spatial import affine_matrix, affine_to_displacement, position_grid

F64 = torch.float64
SPACING = (0.3, 0.2)


def random_images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def naive_local_ncc_loss(fixed: np.ndarray, warped: np.ndarray, window: int, eps: float,
                         mask: np.ndarray) -> float:
    """Reference: one explicit window per pixel, truncated at the edges; (H, W) arrays."""
    r = window // 2
    h, w = fixed.shape
    cc_squared = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            f = fixed[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            m = warped[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
            covariance = np.mean((f - f.mean()) * (m - m.mean()))
            cc_squared[i, j] = covariance**2 / (f.var() * m.var() + eps)
    return 1 - float(np.sum(cc_squared * mask) / np.sum(mask))


def halves(shape: tuple[int, int], axis: int) -> torch.Tensor:
    """(1, 1, H, W) binary image: 0 then 1, in halves along ``axis`` (-1 columns, -2 rows)."""
    index = torch.arange(shape[axis], dtype=F64) >= shape[axis] / 2
    image = index[None, :] if axis == -1 else index[:, None]
    return image.expand(shape).to(F64)[None, None]


def test_mse_is_the_batch_mean_of_masked_item_means():
    fixed = torch.zeros(2, 1, 4, 5, dtype=F64)
    warped = torch.stack((torch.full((1, 4, 5), 0.5), torch.ones(1, 4, 5))).to(F64)
    assert mse_loss(fixed, warped).item() == pytest.approx((0.25 + 1.0) / 2)
    warped[:, :, 2:] = 3.0  # outside the mask
    mask = torch.zeros(1, 1, 4, 5, dtype=torch.bool)
    mask[..., :2, :] = True
    assert mse_loss(fixed, warped, mask).item() == pytest.approx((0.25 + 1.0) / 2)


def test_global_ncc_known_values():
    fixed = random_images(2, 1, 8, 9)
    assert ncc_loss(fixed, 3 * fixed + 2, eps=0).item() == pytest.approx(0, abs=1e-12)
    assert ncc_loss(fixed, -fixed, eps=0).item() == pytest.approx(2, abs=1e-12)
    assert ncc_loss(fixed, -fixed).item() == pytest.approx(2, abs=1e-6)  # default eps: negligible
    phase = 2 * math.pi * torch.arange(12, dtype=F64) / 12  # sin and cos of a whole period
    sin, cos = (t.expand(1, 1, 5, 12) for t in (torch.sin(phase), torch.cos(phase)))
    assert ncc_loss(sin, cos).item() == pytest.approx(1, abs=1e-12)
    mask = torch.zeros(1, 1, 8, 9, dtype=torch.bool)
    mask[..., 2:6, 1:7] = True
    noisy_outside = torch.where(mask, 0.5 * fixed + 1, random_images(2, 1, 8, 9, seed=1))
    assert ncc_loss(fixed, noisy_outside, mask, eps=0).item() == pytest.approx(0, abs=1e-12)
    assert ncc_loss(fixed, noisy_outside).item() > 0.1


def test_box_mean_equals_average_pooling_over_truncated_windows():
    images = random_images(2, 3, 10, 13)
    for window in (1, 3, 7, 25):  # 25: wider than the image
        expected = F.avg_pool2d(images, window, 1, window // 2, count_include_pad=False)
        torch.testing.assert_close(box_mean(images, window), expected)
    with pytest.raises(ValueError, match="odd"):
        box_mean(images, 4)


def test_local_ncc_matches_a_naive_reference():
    fixed, warped = random_images(2, 1, 11, 13, seed=2), random_images(2, 1, 11, 13, seed=3)
    warped = 0.6 * fixed + 0.4 * warped  # partly correlated
    mask = (random_images(1, 1, 11, 13, seed=4) > 0.3).to(F64)
    for window, eps in ((5, 1e-6), (3, 1e-3), (21, 1e-6)):
        expected = np.mean([naive_local_ncc_loss(f[0].numpy(), w[0].numpy(), window, eps,
                                                 mask[0, 0].numpy())
                            for f, w in zip(fixed, warped)])
        result = local_ncc_loss(fixed, warped, window, mask, eps).item()
        assert result == pytest.approx(expected, abs=1e-10)


def test_local_ncc_is_zero_for_local_affine_intensity_changes():
    fixed = random_images(1, 1, 24, 28)
    assert local_ncc_loss(fixed, 2.5 * fixed - 0.7, eps=1e-12).item() == pytest.approx(0, abs=1e-8)
    assert local_ncc_loss(fixed, -fixed, eps=1e-12).item() == pytest.approx(0, abs=1e-8)
    fixed32 = fixed.float()
    assert local_ncc_loss(fixed32, 0.5 * fixed32 + 0.2).item() < 1e-3  # default eps, [0, 1] data
    assert local_ncc_loss(fixed, random_images(1, 1, 24, 28, seed=9)).item() > 0.9


def test_mutual_information_of_binary_images_has_the_textbook_values():
    sharp = {"bins": 2, "sigma": 0.01}  # kernels narrow enough to make the histogram exact
    left_right, top_bottom = halves((8, 8), -1), halves((8, 8), -2)

    def information(fixed, warped, **kwargs):
        return -mutual_information_loss(fixed, warped, **sharp, **kwargs).item()

    assert information(left_right, left_right) == pytest.approx(math.log(2))
    assert information(left_right, 1 - left_right) == pytest.approx(math.log(2))
    assert information(left_right, top_bottom) == pytest.approx(0, abs=1e-12)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6] = True  # two columns of each value
    scrambled = torch.where(mask, left_right, random_images(1, 1, 8, 8, seed=5).round())
    assert information(left_right, scrambled, mask=mask) == pytest.approx(math.log(2))


def test_mutual_information_prefers_alignment_and_ignores_intensity_scaling():
    points = position_grid((48, 48), (1.0, 1.0), torch.zeros((), dtype=F64))
    image = (torch.sin(points[:, :1] / 3) * torch.cos(points[:, 1:] / 4) + 1) / 2
    aligned = mutual_information_loss(image, image).item()
    shifted = mutual_information_loss(image[..., 4:, :], image[..., :-4, :]).item()
    assert aligned < shifted - 0.3
    assert mutual_information_loss(image, 5 * image + 3).item() == pytest.approx(aligned, abs=1e-10)


def test_dice_of_identical_and_of_known_overlaps():
    target = torch.zeros(1, 1, 8, 6, dtype=torch.long)
    target[..., 0:4, 0:5] = 1  # area 20
    target[..., 6:8, 0:3] = 2  # area 6
    prediction = torch.zeros_like(target)
    prediction[..., 2:6, 0:5] = 1  # area 20, overlap 10
    target_maps, prediction_maps = one_hot(target, 4, F64), one_hot(prediction, 4, F64)
    assert target_maps.shape == (1, 4, 8, 6)
    assert dice_scores(target_maps, target_maps).tolist() == [[1.0, 1.0, 1.0, 1.0]]
    scores = dice_scores(prediction_maps, target_maps)[0]
    assert scores[1].item() == pytest.approx(2 * 10 / 40)
    assert scores[2].item() == pytest.approx(0, abs=1e-6)  # missed entirely
    assert scores[3].item() == 1.0  # absent from both
    assert scores[0].item() == pytest.approx(2 * 12 / (28 + 22))  # background
    expected_loss = 1 - (0.5 + scores[2].item() + 1.0) / 3
    assert dice_loss(prediction_maps, target_maps).item() == pytest.approx(expected_loss)
    half = torch.full_like(target_maps, 0.5)  # soft: 2 * 0.5 * 20 / (0.5 * 48 + 20)
    assert dice_scores(half, target_maps)[0, 1].item() == pytest.approx(20 / 44)


def test_diffusion_regulariser_of_constant_and_linear_fields():
    shape = (9, 11)
    gradient = torch.tensor([[0.1, -0.3], [0.25, 0.05]], dtype=F64)
    matrix = affine_matrix(torch.cat((torch.eye(2, dtype=F64).flatten() + gradient.flatten(),
                                      torch.tensor([0.4, -0.2], dtype=F64))))
    linear = affine_to_displacement(matrix, shape, SPACING)  # u(x) = G (x - c) + t
    frobenius_squared = gradient.pow(2).sum().item()
    assert diffusion_regulariser(linear, SPACING).item() == pytest.approx(frobenius_squared)
    coarse = affine_to_displacement(matrix, (5, 6), (0.6, 0.4))  # same map, other sampling
    assert diffusion_regulariser(coarse, (0.6, 0.4)).item() == pytest.approx(frobenius_squared)
    constant = torch.ones(2, 2, *shape, dtype=F64)
    assert diffusion_regulariser(constant, SPACING).item() == 0


def test_bending_energy_of_affine_and_quadratic_fields():
    shape = (10, 12)
    affine = affine_to_displacement(affine_matrix(torch.tensor([1.2, 0.3, -0.1, 0.8, 0.4, 0.1],
                                                               dtype=F64)), shape, SPACING)
    assert bending_energy(affine, SPACING).item() == pytest.approx(0, abs=1e-20)
    x, y = position_grid(shape, SPACING, affine)[0]
    a, b, c = 0.2, -0.5, 0.3
    quadratic = torch.stack((a * x**2 + x, b * x * y + c * y**2))[None]
    expected = (2 * a) ** 2 + (2 * c) ** 2 + 2 * b**2  # u_x,xx; u_y,yy; twice u_y,xy
    assert bending_energy(quadratic, SPACING).item() == pytest.approx(expected)


def test_folding_penalty_of_linear_fields_is_the_squared_hinge_of_det_j():
    shape = (8, 9)

    def scaled(factor: float) -> torch.Tensor:  # x -> factor * x about the centre, det J = factor^2
        matrix = affine_matrix(torch.tensor([factor, 0, 0, factor, 0.3, -0.2], dtype=F64))
        return affine_to_displacement(matrix, shape, SPACING)

    assert folding_penalty(scaled(1.0), SPACING, margin=0.1).item() == 0  # identity-like: det 1
    assert folding_penalty(scaled(0.5), SPACING, margin=0.1).item() == 0  # det 0.25 >= margin
    assert folding_penalty(scaled(0.2), SPACING, margin=0.1).item() == pytest.approx((0.1 - 0.04) ** 2)
    assert folding_penalty(scaled(-1.0), SPACING, margin=0.1).item() == 0  # a rotation by 180 degrees
    mirrored = affine_to_displacement(affine_matrix(torch.tensor([-1, 0, 0, 1, 0, 0], dtype=F64)),
                                      shape, SPACING)  # det J = -1: folded everywhere
    assert folding_penalty(mirrored, SPACING, margin=0.1).item() == pytest.approx(1.1 ** 2)


def test_gradients_of_every_loss():
    fixed = random_images(1, 1, 6, 7, seed=6)
    warped = (0.5 * fixed + 0.5 * random_images(1, 1, 6, 7, seed=7)).requires_grad_()
    mask = (random_images(1, 1, 6, 7, seed=8) > 0.2).to(F64)
    image_losses = [
        lambda m: mse_loss(fixed, m, mask),
        lambda m: ncc_loss(fixed, m, mask),
        lambda m: local_ncc_loss(fixed, m, 3, mask),
        lambda m: mutual_information_loss(fixed, m, bins=4, mask=mask, normalise=False),
        lambda m: dice_loss(torch.cat((m, 1 - m), 1), torch.cat((fixed, 1 - fixed), 1)),
    ]
    for loss in image_losses:
        assert torch.autograd.gradcheck(loss, (warped,))
    field = (0.3 * torch.randn(1, 2, 5, 6, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda u: diffusion_regulariser(u, SPACING), (field,))
    assert torch.autograd.gradcheck(lambda u: bending_energy(u, SPACING), (field,))
