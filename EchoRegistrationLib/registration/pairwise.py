"""Optimisation-based registration of image pairs: rigid, affine and deformable, batched.

``register_pair`` registers B moving images to one fixed image (or B fixed images) at once: the
pairs share nothing but the loop, which keeps a whole sequence in one batch on the CPU or GPU. Each
pair is optimised on its own loss (the batch's loss is their sum, so a pair's gradient is the one it
would have alone), with its own intensity normalisation, step size, stall count and stop: a pair that
has converged is frozen exactly while the others go on. A pair's result therefore does not depend on
the pairs that share its batch (to float rounding; L-BFGS, whose line search would couple them, runs
the pairs one by one). It is also the refinement step that later methods reuse (``initial`` field).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..losses import (bending_energy, diffusion_regulariser, folding_penalty, local_ncc_loss,
                      mse_loss, mutual_information_loss, ncc_loss)
from ..spatial import field_to_torch, in_view_mask, warp
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
    """Scale both images of each pair by the pair's fixed image's intensity range to about [0, 1]
    (one affine map for both, so MSE stays meaningful; per pair, so that a pair is normalised as it
    would be alone)."""
    low, high = fixed.amin(dim=(1, 2, 3), keepdim=True), fixed.amax(dim=(1, 2, 3), keepdim=True)
    scale = (high - low).clamp(min=1e-6)
    return (fixed - low) / scale, (moving - low) / scale


def image_mismatch(fixed: np.ndarray | torch.Tensor, moving: np.ndarray | torch.Tensor, fields: torch.Tensor,
                   spacing: Sequence[float], mask: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """(B,) how far each ``moving`` image warped by its field is from ``fixed``, as the DLIR refinement
    scores its images at full resolution: the mean squared difference of the pair normalised by
    :func:`normalise_pair` (dimensionless, about 0..1), where the warped image is sampled inside its
    field of view and inside ``mask``.

    Args:
        fixed: (H, W), (1 or B, H, W) or (1 or B, 1, H, W) reference image(s).
        moving: (B, H, W) or (B, 1, H, W) images.
        fields: (B, 2, H, W) mm fields on the fixed grid (project convention).
        spacing: (sx, sy) mm.
        mask: optional (H, W) or (1 or B, 1, H, W) region of the fixed image.
    """
    moving = as_image_batch(moving, device=fields.device)
    fixed = as_image_batch(fixed, device=fields.device).expand_as(moving)
    fixed, moving = normalise_pair(fixed, moving)
    valid = in_view_mask(fields, spacing)
    if mask is not None:
        valid = valid & (as_image_batch(mask, device=fields.device) > 0)
    return mse_loss(fixed, warp(moving, fields, spacing), mask=valid, reduction="none")


def _schedule(value: int | float | Sequence[int | float], levels: int, name: str, kind: type = int) -> list:
    """One non-negative ``kind`` (int or float) per pyramid level, coarse to fine, from one value for every
    level or a sequence of one per level.

    Raises:
        ValueError: a sequence of another length, a value that is negative, not finite or not a number (a bool
            is not one)."""
    scalar = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    expected = f"{name} must be one finite non-negative {kind.__name__}" + (
        f", or {levels} of them (coarse to fine)" if levels > 1 else "")
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        items = [value] * levels if isinstance(value, scalar) else list(value)
        if not all(isinstance(v, scalar) and not isinstance(v, (bool, np.bool_)) for v in items):
            raise TypeError
    except TypeError:
        raise ValueError(f"{expected}, got {value!r}") from None
    values = [kind(v) for v in items]
    if len(values) != levels or not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"{expected}, got {value!r}")
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
    learning_rate: float | Sequence[float] = 0.5,
    regulariser: str = "bending",
    regularisation_weight: float = 1.0,
    regularise: str = "total",
    control_spacing: float = 6.0,
    folding_weight: float = 0.0,
    folding_margin: float = 0.1,
    initial: np.ndarray | torch.Tensor | None = None,
    earlier_residual: np.ndarray | torch.Tensor | None = None,
    features: tuple[torch.Tensor, torch.Tensor] | None = None,
    feature_weight: float = 1.0,
    feature_rows: int | None = None,
    lncc_window: int = 9,
    tolerance: float = 1e-5,
    patience: int = 15,
    max_rows: int | None = None,
    penalty_rows: int | None = None,
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
        levels: pyramid levels (each halves the size, unless ``max_rows`` caps it); iterations: steps per
            level, an int or a list coarse to fine (optimiser "lbfgs" counts its outer steps).
        optimizer: "adam" or "lbfgs" (strong-Wolfe line search); default L-BFGS for rigid and
            affine, Adam for deformable.
        learning_rate: Adam step in full-resolution pixels (scaled by the level's factor), one for every
            level or a list coarse to fine as ``iterations``; halved whenever the loss stalls, the level
            ends after the third halving.
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
        initial: optional mm field that the deformable model refines (the result is ``initial`` + the
            optimised residual): a (1 or B, 2, H, W) tensor, or a NumPy field in the project's NumPy
            layout, (H, W, 2) or (1 or B, H, W, 2) (:func:`..spatial.field_to_torch`). It may lie on a
            grid of another size than the images' (it is resampled in mm, as a network's field is).
        earlier_residual: optional mm field, in the layouts of ``initial`` (which it needs): the residual an
            earlier refinement of the same start added, already part of ``initial``. With ``regularise``
            "residual" the regulariser sees it plus this run's residual, so that a refinement resumed at its
            next level (``initial`` = start + the earlier levels' residual) optimises what the uninterrupted
            one would (bending energy is the same function of the whole residual, and Adam's steps do not
            depend on where the parameters start), up to the resampling of this field (0.002-0.004 mm on average
            on a SIMUS case and the real A4C cine, 0.1 mm at most at single pixels).
            Ignored with "total", whose regulariser already sees it in ``initial``.
        features: optional (fixed, moving) feature maps, (1 or B, K, H, W) and (B, K, H, W) on the
            images' grids (for example the anatomy network's class probabilities,
            :mod:`..dlir.anatomy`): the moving maps are warped with the images, and ``feature_weight``
            times their mean squared difference from the fixed maps (over the K channels, where the
            image similarity is evaluated) is added to the similarity.
        feature_rows: compare the feature maps on at most this many rows (about): maps that are smooth
            on a coarse grid (the anatomy network's 160 rows) gain nothing from finer ones, and warping
            them at full resolution would cost more than the images. None: on each level's grid.
        max_rows: compare the images on at most this many rows (about; each level's images are
            resampled no finer, the transform's control grid and the returned field are as without
            it): a cap on the cost where the full resolution adds no accuracy. None: every level
            at its own size.
        penalty_rows: evaluate the regulariser and the folding penalty on at most this many rows
            (about, and never below 16 rows; deformable only): both judge a field smooth on the
            scale of its control points
            (millimetres) and of ``initial``, so a grid finer than that adds cost, not information.
            None: on the compared images' grid.
        tolerance, patience: a pair's loss stalls when it improved by less than ``tolerance`` over
            ``patience`` steps (Adam, per pair: each pair halves its own step and stops on its own,
            frozen while the others go on); L-BFGS stops a level at its first outer step that gains
            less than ``tolerance`` (pairs one by one).
        cancel: called between steps; returning True raises :class:`RegistrationCancelled`.
        progress: called after each optimiser step with the fraction (0..1) of the planned work
            done (steps weighted by their level's pixel count; a level that stops early counts as
            complete); 1.0 at the end.

    Returns:
        :class:`PairRegistration` with the full-resolution displacement in mm.

    Raises:
        ValueError: an unknown kind, loss, regulariser, ``regularise`` or optimiser, a non-positive
            ``control_spacing`` or ``folding_margin``, a negative ``folding_weight``,
            ``feature_weight`` or iteration count, ``max_rows``, ``penalty_rows`` or ``feature_rows``
            below 2, images or feature maps that do not pair up, an ``initial`` or ``earlier_residual`` field
            that is not finite, not of the layouts above or for another number of pairs, an
            ``earlier_residual`` without ``initial``.
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
    if feature_weight < 0:
        raise ValueError(f"feature_weight must be >= 0, got {feature_weight}")
    if not folding_margin > 0:
        raise ValueError(f"folding_margin must be > 0, got {folding_margin}")
    for name, rows in (("max_rows", max_rows), ("penalty_rows", penalty_rows), ("feature_rows", feature_rows)):
        if rows is not None and rows < 2:
            raise ValueError(f"{name} must be at least 2, got {rows}")
    optimizer = optimizer or ("adam" if kind == "deformable" else "lbfgs")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    moving = as_image_batch(moving)
    fixed = as_image_batch(fixed, device=moving.device)
    if fixed.shape[-2:] != moving.shape[-2:] or fixed.shape[0] not in (1, moving.shape[0]):
        raise ValueError(f"fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)} do not pair up")
    if initial is not None:
        initial = _initial_field(initial, moving.shape[0])
    if earlier_residual is not None:
        if initial is None:
            raise ValueError("earlier_residual is part of an initial field: give the initial field too")
        earlier_residual = _initial_field(earlier_residual, moving.shape[0], "earlier residual")
    if optimizer == "lbfgs" and moving.shape[0] > 1:  # a joint line search would couple the pairs
        return _one_by_one(fixed, moving, kind, spacing=spacing, loss=loss, mask=mask, levels=levels,
                           iterations=iterations, optimizer=optimizer, learning_rate=learning_rate,
                           regulariser=regulariser, regularisation_weight=regularisation_weight, regularise=regularise,
                           control_spacing=control_spacing, folding_weight=folding_weight,
                           folding_margin=folding_margin, initial=initial, earlier_residual=earlier_residual,
                           features=features,
                           feature_weight=feature_weight, feature_rows=feature_rows, lncc_window=lncc_window,
                           tolerance=tolerance, patience=patience, max_rows=max_rows,
                           penalty_rows=penalty_rows, cancel=cancel, progress=progress)
    fixed, moving = normalise_pair(fixed, moving)
    fixed = fixed.expand_as(moving)
    if features is not None:
        fixed_features, moving_features = (f.to(moving) for f in features)
        if (moving_features.shape[0] != moving.shape[0] or fixed_features.shape[0] not in (1, moving.shape[0])
                or fixed_features.shape[1:] != moving_features.shape[1:]
                or moving_features.shape[-2:] != moving.shape[-2:]):
            raise ValueError(f"feature maps {tuple(fixed_features.shape)} and {tuple(moving_features.shape)} "
                             f"do not pair up with the images {tuple(moving.shape)}")
        features = fixed_features.expand_as(moving_features), moving_features
    shape = tuple(moving.shape[-2:])
    spacing = (float(spacing[0]), float(spacing[1]))
    fixed_mask = None if mask is None else as_image_batch(mask, device=moving.device) > 0
    factors = pyramid_factors(levels)
    steps = _schedule(iterations, levels, "iterations")
    rates = _schedule(learning_rate, levels, "learning_rate", float)
    similarity = SIMILARITIES[loss]
    model = _build_model(kind, moving.shape[0], shape, spacing, control_spacing * factors[0]).to(moving.device)
    result = PairRegistration(displacement=torch.empty(0), matrix=None)

    def capped(factor: int, rows: int | None) -> tuple[int, int]:
        """A level's grid: ``factor`` times coarser than the image, and no finer than ``rows``."""
        return level_shape(shape, factor if rows is None else max(factor, (shape[0] - 1) / (rows - 1)))

    shapes = [capped(factor, max_rows) for factor in factors]
    # progress counts steps weighted by their level's pixels (a full-resolution step costs 4x more
    # than one a level coarser), so that it advances about evenly in time
    cost = [n * h * w / (shape[0] * shape[1]) for (h, w), n in zip(shapes, steps)]
    planned, done_before = max(sum(cost), 1e-12), 0.0

    def fields_on(shape_c, spacing_c, initial_c) -> tuple[torch.Tensor, torch.Tensor]:
        """The optimised residual and the whole field (``initial_c`` + residual) on a grid."""
        residual = model.field(shape_c, spacing_c)
        return residual, residual if initial_c is None else residual + initial_c

    for factor, shape_l, n_steps, rate, level_cost in zip(factors, shapes, steps, rates, cost):
        spacing_l = level_spacing(shape, shape_l, spacing)
        fixed_l, moving_l = resample_image(fixed, shape_l), resample_image(moving, shape_l)
        mask_l = None if fixed_mask is None else resample_image(fixed_mask.float(), shape_l) > 0.5
        initial_l = None if initial is None else resample_field(initial.to(moving), shape_l)

        def grid(rows: int | None):
            """The level's grid, or a coarser one of about ``rows`` rows: its shape, spacing and
            ``initial`` resampled to it."""
            shape_c = shape_l if rows is None or shape_l[0] <= rows else capped(factor, rows)
            initial_c = initial_l if shape_c == shape_l or initial is None else \
                resample_field(initial.to(moving), shape_c)
            return shape_c, level_spacing(shape, shape_c, spacing), initial_c

        shape_f, spacing_f, initial_f = grid(feature_rows)  # the feature maps' grid
        features_f = None if features is None else tuple(resample_image(f, shape_f) for f in features)
        mask_f = None if fixed_mask is None or shape_f == shape_l else \
            resample_image(fixed_mask.float(), shape_f) > 0.5
        shape_p, spacing_p, initial_p = grid(penalty_rows)  # the penalties' grid
        earlier_p = None if earlier_residual is None or regularise != "residual" else \
            resample_field(earlier_residual.to(moving), shape_p)
        if isinstance(model, ControlGridModel):
            model.refine(ControlGridModel.grid_shape(shape, spacing, control_spacing * factor))

        def objective() -> torch.Tensor:
            residual, u = fields_on(shape_l, spacing_l, initial_l)
            warped = warp(moving_l, u, spacing_l)
            valid = in_view_mask(u.detach(), spacing_l)
            if mask_l is not None:
                valid = valid & mask_l
            kwargs = {"window": lncc_window} if loss == "lncc" else {}
            total = similarity(fixed_l, warped, mask=valid, reduction="none", **kwargs)
            if features_f is not None and feature_weight > 0:
                u_f, valid_f = u, valid
                if shape_f != shape_l:
                    u_f = fields_on(shape_f, spacing_f, initial_f)[1]
                    valid_f = in_view_mask(u_f.detach(), spacing_f)
                    if mask_f is not None:
                        valid_f = valid_f & mask_f
                total = total + feature_weight * mse_loss(features_f[0], warp(features_f[1], u_f, spacing_f),
                                                          mask=valid_f, reduction="none")
            if not isinstance(model, ControlGridModel) or (regularisation_weight <= 0 and folding_weight <= 0):
                return total  # (B,): each pair's own loss
            residual_p, u_p = (residual, u) if shape_p == shape_l else fields_on(shape_p, spacing_p, initial_p)
            if regularisation_weight > 0:
                smoothed = u_p if regularise == "total" else residual_p if earlier_p is None else residual_p + earlier_p
                total = total + regularisation_weight * REGULARISERS[regulariser](smoothed, spacing_p,
                                                                                  reduction="none")
            if folding_weight > 0:
                total = total + folding_weight * folding_penalty(u_p, spacing_p, folding_margin, reduction="none")
            return total

        on_step = None if progress is None else \
            (lambda k, before=done_before, c=level_cost / max(n_steps, 1): progress((before + k * c) / planned))
        history = _optimise(model, objective, optimizer, rate * factor, n_steps,
                            tolerance, patience, cancel, on_step)
        result.loss_history.extend(history)
        result.iterations.append(len(history))
        done_before += level_cost

    with torch.no_grad():
        u = model.field(shape, spacing)
        result.displacement = u if initial is None else u + initial.to(u)
        result.matrix = model.matrix() if hasattr(model, "matrix") else None
    if progress is not None:
        progress(1.0)
    return result


def _initial_field(initial: np.ndarray | torch.Tensor, pairs: int, name: str = "initial field") -> torch.Tensor:
    """``initial`` (or another field, ``name``) of :func:`register_pair` as a (1 or ``pairs``, 2, H, W) tensor,
    checked."""
    if isinstance(initial, np.ndarray):
        initial = field_to_torch(initial)
    if not isinstance(initial, torch.Tensor) or initial.ndim != 4 or initial.shape[1] != 2 \
            or initial.shape[0] not in (1, pairs):
        layout = tuple(initial.shape) if isinstance(initial, torch.Tensor) else type(initial).__name__
        raise ValueError(f"the {name} must be a (1 or {pairs}, 2, H, W) tensor or a NumPy (H, W, 2) or "
                         f"(1 or {pairs}, H, W, 2) field in mm, got {layout}")
    if not bool(torch.isfinite(initial).all()):  # grid_sample on CPU can crash on them
        raise ValueError(f"the {name} holds values that are not finite (NaN or infinite); it must be a "
                         "field in mm")
    return initial


def _one_by_one(fixed: torch.Tensor, moving: torch.Tensor, kind: str, *,
                mask: np.ndarray | torch.Tensor | None, initial: torch.Tensor | None,
                earlier_residual: torch.Tensor | None,
                features: tuple[torch.Tensor, torch.Tensor] | None,
                progress: Callable[[float], None] | None, **options) -> PairRegistration:
    """:func:`register_pair` of each pair alone (L-BFGS), the results stacked as one batch's:
    the loss history is the mean over the pairs after each step of each level (a pair that stopped
    keeps its last loss), ``iterations`` the most steps a pair took at each level."""
    count = moving.shape[0]
    masks = None if mask is None else as_image_batch(mask, device=moving.device)

    def of_pair(batch: torch.Tensor | None, i: int) -> torch.Tensor | None:
        """Pair ``i``'s (1, ...) slice of a (1 or ``count``, ...) ``batch`` (the one shared by all when it has
        one); None for None."""
        return None if batch is None else batch[i:i + 1] if batch.shape[0] > 1 else batch

    results = []
    for i in range(count):
        report = None if progress is None else (lambda f, i=i: progress((i + f) / count))
        results.append(register_pair(
            of_pair(fixed, i), moving[i:i + 1], kind, mask=of_pair(masks, i), initial=of_pair(initial, i),
            earlier_residual=of_pair(earlier_residual, i),
            features=None if features is None else tuple(of_pair(f, i) for f in features),
            progress=report, **options))
    iterations = [max(r.iterations[level] for r in results) for level in range(len(results[0].iterations))]
    history: list[float] = []
    starts = [0] * count
    for level, n in enumerate(iterations):
        per_pair = []
        for k, r in enumerate(results):
            own = r.loss_history[starts[k]:starts[k] + r.iterations[level]]
            starts[k] += r.iterations[level]
            per_pair.append(own + own[-1:] * (n - len(own)) if own else [math.nan] * n)
        history.extend(float(np.nanmean(step)) if not all(map(math.isnan, step)) else math.nan
                       for step in zip(*per_pair))
    matrices = [r.matrix for r in results]
    return PairRegistration(
        displacement=torch.cat([r.displacement for r in results]),
        matrix=None if matrices[0] is None else torch.cat(matrices),
        loss_history=history, iterations=iterations)


# Adam's epsilon is not negligible here: the similarities' gradients per control point are small
# (about 1e-7), so epsilon damps the steps. The batch's loss used to be the mean over its pairs,
# which divided each pair's gradient by the batch size, i.e. gave each pair an epsilon of B x 1e-8
# (torch's default): a pair's result depended on the length of its sequence. Each pair now has its
# own loss and gradient, and 1e-7, the epsilon a batch of 10 pairs had, keeps the accuracy of a
# whole sequence registered in one batch; torch's 1e-8 (a pair alone, before) was worse at ES
# (benchmark_registration.py --cases 3 --frames 12 --threads 1, EPE ES / mean mm: deformable to the
# reference 1.38 / 0.68 against 0.86 / 0.64 in one batch; DLIR + refine 40 0.69 / 0.47 against
# 0.66 / 0.47; with 1e-7: 0.96 / 0.65 and 0.66 / 0.46).
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-7


def _optimise(model: torch.nn.Module, objective: Callable[[], torch.Tensor], optimizer: str,
              learning_rate: float, n_steps: int, tolerance: float, patience: int,
              cancel: Callable[[], bool] | None, on_step: Callable[[int], None] | None = None,
              halvings: int = 3) -> list[float]:
    """Run up to ``n_steps`` optimiser steps on ``objective`` (a (B,) tensor: each pair's loss;
    every parameter of ``model`` has the pairs on its first axis); returns the mean loss over the
    pairs after each step. ``on_step(k)`` is called after step k (1-based).

    Adam (torch.optim.Adam's update, written out so that it can run per pair, with the epsilon
    :data:`ADAM_EPS`) works on the sum of the pairs' losses, so each pair gets the gradient it would
    have alone; each pair halves its own step size each time its loss stalls (no improvement of
    ``tolerance`` over ``patience`` steps) and stops after ``halvings`` halvings: its step size is
    then 0, so its parameters stay exactly as they are (Adam's momentum would otherwise still move
    them) while the other pairs go on, and the level ends when every pair has stopped. L-BFGS (one pair:
    :func:`register_pair` runs them one by one) stops after its first outer step that improves by less
    than ``tolerance``.
    """
    params = list(model.parameters())
    history: list[float] = []
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            value = objective().sum()
            value.backward()
            return value

        best = math.inf
        for _ in range(n_steps):
            if cancel is not None and cancel():
                raise RegistrationCancelled("registration cancelled")
            value = float(opt.step(closure).detach())  # each step runs up to 20 evaluations
            history.append(value)
            if on_step is not None:
                on_step(len(history))
            if not value < best - tolerance:
                break
            best = value
        return history

    batch = params[0].shape[0]
    device = params[0].device
    (beta1, beta2), eps = ADAM_BETAS, ADAM_EPS
    first = [torch.zeros_like(p) for p in params]
    second = [torch.zeros_like(p) for p in params]
    # each pair's step size on the device, 0 once it stopped; rewritten only on steps that change it
    rate = torch.full((batch,), float(learning_rate), device=device, dtype=params[0].dtype)
    active = np.ones(batch, dtype=bool)
    best = np.full(batch, math.inf)
    since_best = np.zeros(batch, dtype=int)
    left = np.full(batch, halvings)
    for step in range(1, n_steps + 1):
        if cancel is not None and cancel():
            raise RegistrationCancelled("registration cancelled")
        for p in params:
            p.grad = None
        values = objective()
        values.sum().backward()
        with torch.no_grad():
            # a stopped pair's moments go on changing, unused: its step size is 0 to the end
            step_size = rate / (1 - beta1 ** step)
            root_correction = math.sqrt(1 - beta2 ** step)
            for p, m, v in zip(params, first, second):
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                shape = (batch,) + (1,) * (p.ndim - 1)
                p.sub_(step_size.view(shape) * m / (v.sqrt() / root_correction + eps))
        losses = values.detach().cpu().double().numpy()
        history.append(float(losses.mean()))
        if on_step is not None:
            on_step(len(history))
        improved = active & (losses < best - tolerance)
        best[improved], since_best[improved] = losses[improved], 0
        stalled = active & ~improved
        since_best[stalled] += 1
        due = stalled & (since_best >= patience)
        stop = due & (left == 0)
        halve = due & (left > 0)
        if due.any():
            active[stop] = False
            left[halve] -= 1
            since_best[halve] = 0
            scale = np.where(stop, 0.0, np.where(halve, 0.5, 1.0))
            rate.mul_(torch.from_numpy(scale).to(device=device, dtype=rate.dtype))
        if not active.any():
            break
    return history
