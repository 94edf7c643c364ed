"""Registration losses: image similarity, label overlap and field regularisers (torch, batched).

Every loss returns a scalar to MINIMISE, the mean over the batch of per-item values (the
similarities, regularisers and folding penalty give the (B,) per-item values themselves with
``reduction="none"``: :func:`..registration.register_pair` optimises each pair on its own loss), and is
differentiable in its tensor inputs. Shapes: images (B, C, H, W); label maps as one-hot or
probability maps (B, L, H, W); displacement fields (B, 2, H, W) in mm (channel 0 = x / lateral,
channel 1 = y / depth); an optional ``mask`` is (B or 1, 1, H, W), bool or non-negative weights,
and restricts the loss to the pixels it selects. Intensity losses assume intensities roughly in
[0, 1] where an epsilon has intensity units (local NCC).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .spatial import Spacing, jacobian_determinant, spacing_tensor


def _per_item_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B,) mean of (B, C, H, W) ``values`` over channels and pixels, weighted by ``mask``."""
    if mask is None:
        return values.flatten(1).mean(1)
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """(B,) per-item values -> their mean ("mean") or themselves ("none")."""
    if reduction == "none":
        return values
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return values.mean()


def mse_loss(fixed: torch.Tensor, warped: torch.Tensor,
             mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Mean squared intensity difference of (B, C, H, W) images (intensity units squared)."""
    return _reduce(_per_item_mean((fixed - warped) ** 2, mask), reduction)


def ncc(fixed: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor | None = None,
        eps: float = 1e-8) -> torch.Tensor:
    """(B,) global normalised cross-correlation of each (C, H, W) item of (B or 1, C, H, W) images
    (all channels and pixels are samples; a batch of 1 is broadcast), within ``mask``
    ((B or 1, 1, H, W)) when given. 1 when ``warped`` is a positive affine intensity transform of
    ``fixed``, 0 when uncorrelated, -1 when inverted. ``eps`` (intensity^4) keeps flat images finite."""
    f = fixed - _per_item_mean(fixed, mask)[:, None, None, None]
    w = warped - _per_item_mean(warped, mask)[:, None, None, None]
    covariance = _per_item_mean(f * w, mask)
    variances = _per_item_mean(f * f, mask) * _per_item_mean(w * w, mask)
    return covariance / torch.sqrt(variances + eps)


def ncc_loss(fixed: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor | None = None,
             eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    """1 - NCC (:func:`ncc`), the mean over the batch (``reduction="none"``: the (B,) values): 0
    when ``warped`` is a positive affine intensity transform of ``fixed``, 1 when uncorrelated, 2
    when inverted."""
    return _reduce(1 - ncc(fixed, warped, mask, eps), reduction)


def box_mean(images: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, W) mean over the window x window neighbourhood of each pixel (``window`` odd,
    pixels); windows are truncated at the image edges and average the pixels they still hold.

    Built on cumulative sums: the cost does not depend on ``window``.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of pixels, got {window}")
    r = window // 2
    sums = F.pad(images, (r + 1, r, r + 1, r)).cumsum(-1)
    sums = sums[..., window:] - sums[..., :-window]
    sums = sums.cumsum(-2)
    sums = sums[..., window:, :] - sums[..., :-window, :]
    return sums / (_window_counts(images.shape[-2], r, images)[:, None]
                   * _window_counts(images.shape[-1], r, images))


def _window_counts(length: int, radius: int, like: torch.Tensor) -> torch.Tensor:
    """(length,) number of in-image pixels in the window of each position along one axis."""
    index = torch.arange(length, dtype=like.dtype, device=like.device)
    return (index + radius).clamp(max=length - 1) - (index - radius).clamp(min=0) + 1


def local_ncc_loss(fixed: torch.Tensor, warped: torch.Tensor, window: int = 9,
                   mask: torch.Tensor | None = None, eps: float = 1e-6,
                   reduction: str = "mean") -> torch.Tensor:
    """1 - mean over pixels of the squared local correlation coefficient (VoxelMorph / MONAI LNCC).

    cc^2(p) = cov^2 / (var_f var_w + eps) over the ``window`` x ``window`` neighbourhood of p (odd,
    in pixels, truncated at the edges); ``mask`` weights the centre pixels, the windows still see
    every pixel. Range [0, 1]: 0 where ``warped`` is locally an affine intensity transform of
    ``fixed`` (of either sign). ``eps`` (intensity^4; 1e-6 suits [0, 1] intensities) damps windows
    whose standard deviations multiply to under ~1e-3: flat or noise-only regions such as the
    blood pool or the outside of the sector weigh less. Images are (B, C, H, W).
    """
    f = fixed - fixed.mean(dim=(-2, -1), keepdim=True)  # conditioning only: cc is shift-invariant
    w = warped - warped.mean(dim=(-2, -1), keepdim=True)
    means = box_mean(torch.cat((f, w, f * f, w * w, f * w)), window)
    mean_f, mean_w, mean_ff, mean_ww, mean_fw = means.chunk(5)
    covariance = mean_fw - mean_f * mean_w
    var_f = (mean_ff - mean_f**2).clamp(min=0)
    var_w = (mean_ww - mean_w**2).clamp(min=0)
    cc_squared = covariance**2 / (var_f * var_w + eps)
    return _reduce(1 - _per_item_mean(cc_squared, mask), reduction)


def mutual_information_loss(fixed: torch.Tensor, warped: torch.Tensor, bins: int = 32,
                            sigma: float = 0.5, mask: torch.Tensor | None = None,
                            normalise: bool = True, eps: float = 1e-10,
                            reduction: str = "mean") -> torch.Tensor:
    """-MI (nats) from a differentiable Parzen-window joint histogram of (B, C, H, W) images.

    Each image is scaled to [0, 1] by its own min and max (``normalise``; the range is not
    differentiated) or, with ``normalise=False``, is expected in [0, 1] already. ``bins`` Gaussian
    kernels, centred evenly from 0 to 1, of standard deviation ``sigma`` bin widths; every pixel
    (weighted by ``mask``) spreads unit mass over the bins. Better alignment, lower loss.
    """
    if bins < 2:
        raise ValueError(f"mutual information needs at least 2 bins, got {bins}")
    weights = _bin_weights(fixed, bins, sigma, normalise)  # (B, N, bins)
    weights_warped = _bin_weights(warped, bins, sigma, normalise)
    if mask is not None:
        pixel_weights = mask.to(weights.dtype).expand_as(fixed).flatten(1)[..., None]
        weights = weights * pixel_weights
    joint = weights.transpose(1, 2) @ weights_warped
    joint = joint / joint.sum(dim=(1, 2), keepdim=True)
    marginals = joint.sum(2, keepdim=True) * joint.sum(1, keepdim=True)
    information = (joint * (torch.log(joint + eps) - torch.log(marginals + eps))).sum(dim=(1, 2))
    return _reduce(-information, reduction)


def _bin_weights(images: torch.Tensor, bins: int, sigma: float, normalise: bool) -> torch.Tensor:
    """(B, N, bins) Parzen weights of the N = C * H * W samples of each item; rows sum to 1."""
    values = images.flatten(1)
    if normalise:
        low = values.detach().amin(1, keepdim=True)
        high = values.detach().amax(1, keepdim=True)
        values = (values - low) / (high - low).clamp(min=torch.finfo(values.dtype).tiny)
    centres = torch.linspace(0, 1, bins, dtype=values.dtype, device=values.device)
    distance = (values[..., None] - centres) * (bins - 1) / sigma  # in kernel widths
    return torch.softmax(-0.5 * distance**2, dim=-1)


def one_hot(labels: torch.Tensor, num_labels: int,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 1, H, W) integer label codes 0..num_labels-1 -> (B, num_labels, H, W) one-hot maps."""
    return F.one_hot(labels[:, 0].long(), num_labels).permute(0, 3, 1, 2).to(dtype)


def dice_scores(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, L) soft Dice 2 |P T| / (|P| + |T|) of each label channel of (B, L, H, W) one-hot or
    probability maps; a label absent from both scores 1 (``eps`` smooths both terms)."""
    overlap = (prediction * target).sum(dim=(-2, -1))
    total = prediction.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return (2 * overlap + eps) / (total + eps)


def dice_loss(prediction: torch.Tensor, target: torch.Tensor, include_background: bool = False,
              eps: float = 1e-6) -> torch.Tensor:
    """1 - mean soft Dice over labels and batch of (B, L, H, W) maps. Channel 0 is the background
    and is left out unless ``include_background``."""
    first = 0 if include_background else 1
    return 1 - dice_scores(prediction[:, first:], target[:, first:], eps).mean()


def _forward_differences(field: torch.Tensor,
                         spacing: Spacing) -> tuple[torch.Tensor, torch.Tensor]:
    """d/dx (B, 2, H, W-1) and d/dy (B, 2, H-1, W) of a (B, 2, H, W) mm field, per mm."""
    s = spacing_tensor(spacing, field)
    d_dx = (field[..., :, 1:] - field[..., :, :-1]) / s[:, 0:1]
    d_dy = (field[..., 1:, :] - field[..., :-1, :]) / s[:, 1:2]
    return d_dx, d_dy


def diffusion_regulariser(displacement: torch.Tensor, spacing: Spacing,
                          reduction: str = "mean") -> torch.Tensor:
    """Sum over the four partials d u_k / d x_l (forward differences, mm/mm) of their mean square.

    For u(x) = G x + t this is the squared Frobenius norm of G. ``displacement`` is (B, 2, H, W) mm.
    """
    d_dx, d_dy = _forward_differences(displacement, spacing)
    return _reduce(_sum_of_mean_squares(d_dx, d_dy), reduction)


def bending_energy(displacement: torch.Tensor, spacing: Spacing, reduction: str = "mean") -> torch.Tensor:
    """Thin-plate bending energy u_xx^2 + 2 u_xy^2 + u_yy^2 (1/mm^2), each term its mean square,
    summed over both components; 0 for every affine field. ``displacement`` is (B, 2, H, W) mm."""
    d_dx, d_dy = _forward_differences(displacement, spacing)
    d_dxx, d_dxy = _forward_differences(d_dx, spacing)
    _, d_dyy = _forward_differences(d_dy, spacing)
    return _reduce(_sum_of_mean_squares(d_dxx, d_dyy) + 2 * _sum_of_mean_squares(d_dxy), reduction)


def folding_penalty(displacement: torch.Tensor, spacing: Spacing, margin: float = 0.1,
                    reduction: str = "mean") -> torch.Tensor:
    """Mean over batch and pixels of relu(``margin`` - det J)^2, J the Jacobian of x -> x + u(x)
    (:func:`.spatial.jacobian_determinant`, central differences, dimensionless); with
    ``reduction="none"`` the (B,) means over each item's pixels.

    A squared-hinge form of the negative-Jacobian penalty of Kuang & Schmah, "FAIM - a ConvNet
    method for unsupervised 3D medical image registration" (MLMI 2019) and Mok & Chung, "Fast
    symmetric diffeomorphic image registration with convolutional neural networks" (CVPR 2020),
    which penalise relu(-det J): the ``margin`` (> 0) also pushes determinants just above 0 away
    from folding, and the square makes the gradient vanish smoothly at the margin. 0 wherever
    det J >= ``margin``, so it leaves fold-free, not too compressive fields alone.
    ``displacement`` is (B, 2, H, W) mm; ``spacing`` (sx, sy) mm or (B, 2).
    """
    return _reduce(F.relu(margin - jacobian_determinant(displacement, spacing)).pow(2).flatten(1).mean(1),
                   reduction)


def _sum_of_mean_squares(*derivatives: torch.Tensor) -> torch.Tensor:
    """(B,) sum over the derivatives and their 2 components of the mean square over pixels."""
    return sum(d.pow(2).mean(dim=(2, 3)).sum(1) for d in derivatives)
