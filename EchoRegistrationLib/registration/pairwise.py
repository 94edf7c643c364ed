"""Optimisation-based registration of image pairs: rigid, affine and deformable, batched.

``register_pair`` registers B moving images to one fixed image (or B fixed images) at once: the
pairs share nothing but the optimiser loop (Adam steps are per parameter, so each pair follows its
own path), which keeps a whole sequence in one batch on the CPU or GPU. It is also the refinement step
that later methods reuse (``initial`` field).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..losses import (bending_energy, diffusion_regulariser, folding_penalty, local_ncc_loss,
                      mse_loss, mutual_information_loss, ncc_loss)
from ..spatial import in_view_mask, warp
from ..spatial.pyramid import level_shape, level_spacing, pyramid_factors, resample_field, resample_image
from .transforms import AffineModel, ControlGridModel, RigidModel

KINDS = ("rigid", "affine", "deformable")
SIMILARITIES: dict[str, Callable[..., torch.Tensor]] = {
    "lncc": local_ncc_loss,
    "ncc": ncc_loss,
    "mse": mse_loss,
    "mi": mutual_information_loss,
}
REGULARISERS: dict[str, Callable[..., torch.Tensor]] = {
    "bending": bending_energy,
    "diffusion": diffusion_regulariser,
}
REGULARISED_FIELDS = ("total", "residual")


class RegistrationCancelled(RuntimeError):
    """Raised when the ``cancel`` callback asks to stop; nothing partial is returned."""


@dataclass
class PairRegistration:
    """Result of :func:`register_pair`.

    Attributes:
        displacement: (B, 2, H, W) mm on the fixed grid, fixed point p -> p + u(p) in the moving image.
        matrix: (B, 3, 3) fixed-to-moving map about the image centre for rigid / affine, else None.
        loss_history: the total loss after each optimiser step, all levels in order.
        iterations: optimiser steps taken at each level, coarse to fine.
    """

    displacement: torch.Tensor
    matrix: torch.Tensor | None
    loss_history: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)


def as_image_batch(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W), (B, H, W) or (B, 1, H, W) arrays or tensors -> (B, 1, H, W) float32 tensor."""
    tensor = torch.as_tensor(images, device=device)
    tensor = tensor.float() if not tensor.is_floating_point() else tensor
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    if tensor.ndim != 4 or tensor.shape[1] != 1:
        raise ValueError(f"expected images (H, W), (B, H, W) or (B, 1, H, W), got {tuple(tensor.shape)}")
    return tensor


def normalise_pair(fixed: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale both images by the fixed image's intensity range to about [0, 1] (one affine map for
    both, so MSE stays meaningful)."""
    low, high = fixed.amin(), fixed.amax()
    scale = (high - low).clamp(min=1e-6)
    return (fixed - low) / scale, (moving - low) / scale


def _schedule(value: int | Sequence[int], levels: int, name: str) -> list[int]:
    values = [int(value)] * levels if isinstance(value, (int, np.integer)) else [int(v) for v in value]
    if len(values) != levels or min(values) < 0:
        raise ValueError(f"{name} must be an int or {levels} non-negative ints (coarse to fine), got {value}")
    return values


def _build_model(kind: str, batch: int, shape: Sequence[int], spacing: Sequence[float],
                 control_spacing: float) -> torch.nn.Module:
    unit = float(min(spacing))
    radius = 0.5 * math.hypot((shape[0] - 1) * spacing[1], (shape[1] - 1) * spacing[0])
    if kind == "rigid":
        return RigidModel(batch, unit, radius)
    if kind == "affine":
        return AffineModel(batch, unit, radius)
    return ControlGridModel(batch, ControlGridModel.grid_shape(shape, spacing, control_spacing), unit)


def register_pair(
    fixed: np.ndarray | torch.Tensor,
    moving: np.ndarray | torch.Tensor,
    kind: str = "deformable",
    *,
    spacing: Sequence[float],
    loss: str = "lncc",
    mask: np.ndarray | torch.Tensor | None = None,
    levels: int = 3,
    iterations: int | Sequence[int] = 100,
    optimizer: str | None = None,
    learning_rate: float = 0.5,
    regulariser: str = "bending",
    regularisation_weight: float = 1.0,
    regularise: str = "total",
    control_spacing: float = 6.0,
    folding_weight: float = 0.0,
    folding_margin: float = 0.1,
    initial: torch.Tensor | None = None,
    lncc_window: int = 9,
    tolerance: float = 1e-5,
    patience: int = 15,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> PairRegistration:
    """Register ``moving`` images to ``fixed`` by optimisation over a coarse-to-fine pyramid.

    Args:
        fixed: (H, W), (1 or B, H, W) or (1 or B, 1, H, W) reference image(s).
        moving: (H, W), (B, H, W) or (B, 1, H, W) images to bring onto the fixed grid.
        kind: "rigid" (angle + translation about the image centre), "affine", or "deformable" (a
            bicubic control-point grid of ``control_spacing`` mm at the finest level, twice as
            coarse at each coarser level).
        spacing: (sx, sy) mm of both images.
        loss: image similarity: "lncc" (local NCC, ``lncc_window`` pixels; default, robust on
            speckle), "ncc" (global), "mse", "mi" (Parzen mutual information). Evaluated only where
            the moving image is sampled inside its field of view and inside ``mask``.
        mask: optional (H, W) or (1 or B, 1, H, W) region of the fixed image to compare.
        levels: pyramid levels (each halves the size); iterations: steps per level, an int or a
            list coarse to fine (optimiser "lbfgs" counts its outer steps).
        optimizer: "adam" or "lbfgs" (strong-Wolfe line search); default L-BFGS for rigid and
            affine, Adam for deformable.
        learning_rate: Adam step in full-resolution pixels (scaled by the level's factor); halved
            whenever the loss stalls, the level ends after the third halving.
        regulariser, regularisation_weight: "bending" energy or "diffusion" of the deformable field
            in physical units, weighted against the similarity (deformable only).
        regularise: which (B, 2, H, W) mm field the regulariser sees when ``initial`` is given:
            "total" (default), the whole field ``initial`` + residual, so the optimiser also smooths
            away detail of ``initial`` it did not put there; or "residual", only the optimised
            residual, so ``initial`` (e.g. a network's field, already regular) is kept where the
            images agree and only the correction is penalised for roughness. Without ``initial``
            both are the same. The folding penalty always sees the whole field.
        folding_weight, folding_margin: weight of :func:`..losses.folding_penalty` (mean
            relu(margin - det J)^2, dimensionless) of the whole field, ``initial`` included, at each
            level (deformable only; 0 = off). The regulariser keeps the field smooth but does not
            stop a large ``initial`` field plus a residual from folding; this penalty does.
        initial: optional (1 or B, 2, H, W) mm field that the deformable model refines (the result
            is ``initial`` + the optimised residual).
        tolerance, patience: the loss stalls when it improved by less than ``tolerance`` over
            ``patience`` steps (Adam); L-BFGS stops a level at its first outer step that gains less
            than ``tolerance``.
        cancel: called between steps; returning True raises :class:`RegistrationCancelled`.
        progress: called after each optimiser step with the fraction (0..1) of the planned work
            done (steps weighted by their level's pixel count; a level that stops early counts as
            complete); 1.0 at the end.

    Returns:
        :class:`PairRegistration` with the full-resolution displacement in mm.

    Raises:
        ValueError: an unknown kind, loss, regulariser, ``regularise`` or optimiser, a non-positive
            ``control_spacing`` or ``folding_margin``, a negative ``folding_weight`` or iteration
            count, images that do not pair up.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if loss not in SIMILARITIES:
        raise ValueError(f"loss must be one of {sorted(SIMILARITIES)}, got {loss!r}")
    if regulariser not in REGULARISERS:
        raise ValueError(f"regulariser must be one of {sorted(REGULARISERS)}, got {regulariser!r}")
    if regularise not in REGULARISED_FIELDS:
        raise ValueError(f"regularise must be one of {REGULARISED_FIELDS}, got {regularise!r}")
    if not control_spacing > 0:
        raise ValueError(f"control_spacing must be a positive number of mm, got {control_spacing}")
    if folding_weight < 0:
        raise ValueError(f"folding_weight must be >= 0, got {folding_weight}")
    if not folding_margin > 0:
        raise ValueError(f"folding_margin must be > 0, got {folding_margin}")
    optimizer = optimizer or ("adam" if kind == "deformable" else "lbfgs")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    moving = as_image_batch(moving)
    fixed = as_image_batch(fixed, device=moving.device)
    if fixed.shape[-2:] != moving.shape[-2:] or fixed.shape[0] not in (1, moving.shape[0]):
        raise ValueError(f"fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)} do not pair up")
    fixed, moving = normalise_pair(fixed, moving)
    fixed = fixed.expand_as(moving)
    shape = tuple(moving.shape[-2:])
    spacing = (float(spacing[0]), float(spacing[1]))
    fixed_mask = None if mask is None else as_image_batch(mask, device=moving.device) > 0
    factors = pyramid_factors(levels)
    steps = _schedule(iterations, levels, "iterations")
    similarity = SIMILARITIES[loss]
    model = _build_model(kind, moving.shape[0], shape, spacing, control_spacing * factors[0]).to(moving.device)
    result = PairRegistration(displacement=torch.empty(0), matrix=None)
    # progress counts steps weighted by their level's pixels (a full-resolution step costs 4x more
    # than one a level coarser), so that it advances about evenly in time
    cost = [n / factor ** 2 for factor, n in zip(factors, steps)]
    planned, done_before = max(sum(cost), 1e-12), 0.0

    for factor, n_steps in zip(factors, steps):
        shape_l = level_shape(shape, factor)
        spacing_l = level_spacing(shape, shape_l, spacing)
        fixed_l, moving_l = resample_image(fixed, shape_l), resample_image(moving, shape_l)
        mask_l = None if fixed_mask is None else resample_image(fixed_mask.float(), shape_l) > 0.5
        initial_l = None if initial is None else resample_field(initial.to(moving), shape_l)
        if isinstance(model, ControlGridModel):
            model.refine(ControlGridModel.grid_shape(shape, spacing, control_spacing * factor))

        def objective() -> torch.Tensor:
            residual = u = model.field(shape_l, spacing_l)
            if initial_l is not None:
                u = residual + initial_l
            warped = warp(moving_l, u, spacing_l)
            valid = in_view_mask(u.detach(), spacing_l)
            if mask_l is not None:
                valid = valid & mask_l
            kwargs = {"window": lncc_window} if loss == "lncc" else {}
            total = similarity(fixed_l, warped, mask=valid, **kwargs)
            if isinstance(model, ControlGridModel) and regularisation_weight > 0:
                smoothed = residual if regularise == "residual" else u
                total = total + regularisation_weight * REGULARISERS[regulariser](smoothed, spacing_l)
            if isinstance(model, ControlGridModel) and folding_weight > 0:
                total = total + folding_weight * folding_penalty(u, spacing_l, folding_margin)
            return total

        on_step = None if progress is None else \
            (lambda k, before=done_before, f=factor: progress((before + k / f ** 2) / planned))
        history = _optimise(model, objective, optimizer, learning_rate * factor, n_steps,
                            tolerance, patience, cancel, on_step)
        result.loss_history.extend(history)
        result.iterations.append(len(history))
        done_before += n_steps / factor ** 2

    with torch.no_grad():
        u = model.field(shape, spacing)
        result.displacement = u if initial is None else u + initial.to(u)
        result.matrix = model.matrix() if hasattr(model, "matrix") else None
    if progress is not None:
        progress(1.0)
    return result


def _optimise(model: torch.nn.Module, objective: Callable[[], torch.Tensor], optimizer: str,
              learning_rate: float, n_steps: int, tolerance: float, patience: int,
              cancel: Callable[[], bool] | None, on_step: Callable[[int], None] | None = None,
              halvings: int = 3) -> list[float]:
    """Run up to ``n_steps`` optimiser steps on ``objective``; returns the loss after each step.
    ``on_step(k)`` is called after step k (1-based).

    Adam halves its step size each time the loss stalls (no improvement of ``tolerance`` over
    ``patience`` steps) and stops after ``halvings`` halvings; L-BFGS stops after its first outer
    step that improves by less than ``tolerance``.
    """
    params = list(model.parameters())
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=20, line_search_fn="strong_wolfe")
        halvings, patience = 0, 1  # each step already runs up to 20 evaluations
    else:
        opt = torch.optim.Adam(params, lr=learning_rate)
    history: list[float] = []
    best, since_best = math.inf, 0

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        value = objective()
        value.backward()
        return value

    for _ in range(n_steps):
        if cancel is not None and cancel():
            raise RegistrationCancelled("registration cancelled")
        value = float(opt.step(closure).detach())
        history.append(value)
        if on_step is not None:
            on_step(len(history))
        if value < best - tolerance:
            best, since_best = value, 0
            continue
        since_best += 1
        if since_best >= patience:
            if halvings == 0:
                break
            halvings -= 1
            since_best = 0
            for group in opt.param_groups:
                group["lr"] *= 0.5
    return history
