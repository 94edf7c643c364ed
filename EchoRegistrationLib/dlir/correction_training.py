"""Training of the fine-grid correction stage (:mod:`.correction`) of a trained DLIR model.

The first network is frozen. Each step draws pairs with true motion (simulated sequences, warped
templates: :class:`.data.PairSampler` on the correction grid), predicts the first field on the
network's own grid, adds a random smooth perturbation (so that the stage sees first fields a little
worse than the network's own, as on echo it never saw), warps the moving frame by it, and trains the
stage to predict the residual: the loss is the end-point error of the corrected field against the
truth (mm, tissue-weighted, the myocardium :data:`MYOCARDIUM_WEIGHT` times more), plus the squared
differences of the residual between neighbouring pixels. Steps run on a random crop of the
correction grid (the stage is fully convolutional and local); the first field and the warp use the
whole frame.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import dice_scores
from ..sequence import LABEL_LV, LABEL_MYOCARDIUM
from ..spatial import compose, warp
from ..spatial.pyramid import level_spacing, resample_field, resample_image
from .correction import DEFAULT_CORRECTION_SIZE, FieldCorrection
from .data import PairSampler, combined_licence, open_source
from .evaluation import evaluate
from .model import DLIRModel
from .training import Callback, History, Stage, _behind, _data_config, _items, _resumed, _Run, _saver

MYOCARDIUM_WEIGHT = 4.0   # extra loss weight of myocardial pixels (the strain's tissue) over other tissue
TISSUE_LEVEL = 0.02       # normalised intensity above which a fixed-frame pixel counts as imaged tissue
PERTURBATION_POINTS = 6   # control points per side of the random smooth perturbation of the first field


def smooth_perturbation(batch: int, shape: tuple[int, int], max_mm: float, rng: np.random.Generator,
                        like: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) mm random smooth fields: Gaussian values on a :data:`PERTURBATION_POINTS`
    square of control points, interpolated bicubically, each field's standard deviation uniform in
    [0, ``max_mm``]."""
    amplitude = torch.from_numpy(rng.uniform(0, max_mm, (batch, 1, 1, 1))).to(like)
    points = torch.from_numpy(rng.standard_normal((batch, 2, PERTURBATION_POINTS, PERTURBATION_POINTS))).to(like)
    return F.interpolate(amplitude * points, size=shape, mode="bicubic", align_corners=True)


def train_correction(data: Any, output: str | os.PathLike, *, base: DLIRModel | str | os.PathLike,
                     validation: Any = None, size: int = DEFAULT_CORRECTION_SIZE, iterations: int = 3000,
                     batch_size: int = 8, crop: int = 128, learning_rate: float = 1e-3,
                     perturbation_mm: float = 0.6, smoothness: float = 1.0, dice: float = 0.0,
                     randomise: float = 0.0,
                     unet: Mapping[str, Any] | None = None, passes: int | None = None,
                     iterations_per_epoch: int = 100, seed: int = 0, device: str | torch.device = "auto",
                     resume: bool = True, progress: bool = True, callback: Callback | None = None) -> History:
    """Train a correction stage for the DLIR model ``base`` and save the model with it.

    Args:
        data, output, validation, iterations_per_epoch, seed, device, resume, progress, callback: as
            for :func:`.training.train_vae` (one process: no torchrun). The training pairs need true motion (simulated
            sequences, warped templates); validation scores the whole model, stage included
            (:func:`.evaluation.evaluate`).
        base: the trained DLIR model (or its checkpoint, path or installed name); it is frozen and
            saved with the stage; a stage it holds already is replaced.
        size: rows of the correction grid.
        iterations, batch_size, learning_rate: Adam steps (cosine-decayed within the run, as every
            trainer here), pairs per step, initial step size.
        crop: side in pixels of the random square of the correction grid each step trains on.
        perturbation_mm: the largest standard deviation of the random smooth field added to the
            first field (:func:`smooth_perturbation`).
        smoothness: weight of the residual's squared neighbour differences (mm^2) in the loss.
        dice: weight of the Dice term on annotated pairs (0: off).
        randomise: share of the pairs whose appearance is redrawn (:func:`.augment.randomise_appearance`).
        unet: :class:`~.networks.RegistrationUNet` arguments of the stage over
            :data:`.correction.DEFAULT_CORRECTION_UNET`.
        passes: applications of the base network per pair (:attr:`.model.DLIRModel.passes`), with
            which the stage is trained and saved; default the base's own. Fewer passes leave more
            to the stage and cost less network time.

    The checkpoint's config keeps the base's own config (its training and data) as ``base_model``
    (None for a base given as a model).

    Returns:
        The history: per epoch the mean ``loss``, ``epe`` (mm, weighted, of the corrected field on
        the training pairs), ``start_epe`` (of the perturbed first field), ``smoothness``, ``dice``
        (the Dice term, when on), and with
        validation data ``val_epe_es`` (mm), ``val_dice_es`` and ``val_folding`` (%).

    Raises:
        ValueError: no training item carries true motion; ``base`` is not a DLIR model with a network;
            ``passes`` < 1; ``crop`` larger than the correction grid; several processes (torchrun); an
            earlier run in ``output`` with other settings.
        FileExistsError: an earlier run in ``output`` and ``resume`` False.
    """
    processes, frozen = _behind(base, device, "train_correction")
    dev = processes.device
    items, val_items = open_source(data), _items(validation)
    first, base_name, base_config, base_licence = frozen.model, frozen.name, frozen.config, frozen.licence
    if first.net is None:
        raise ValueError("the base model has no registration network to correct (an affine-only model)")
    torch.manual_seed(seed)
    if passes is not None and int(passes) < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    model = copy.deepcopy(first).to(dev).eval()
    model.passes = int(passes or first.passes)
    model.requires_grad_(False)
    model.correction = FieldCorrection.new(size, **(unet or {})).to(dev)
    stage = model.correction
    settings = {"base": base_name, "passes": model.passes, "size": int(size), "iterations": int(iterations),
                "batch_size": int(batch_size), "crop": int(crop), "learning_rate": float(learning_rate),
                "perturbation_mm": float(perturbation_mm), "smoothness": float(smoothness),
                **({"dice": float(dice)} if dice else {}),
                **({"randomise": float(randomise)} if randomise else {}),
                "myocardium_weight": MYOCARDIUM_WEIGHT, "iterations_per_epoch": int(iterations_per_epoch),
                "seed": int(seed), "world_size": processes.world_size}
    run = _Run("correction", Path(output), settings, int(seed), int(iterations_per_epoch), processes,
               progress, callback)
    optimizer = torch.optim.Adam(stage.parameters(), lr=learning_rate)
    state, history = _resumed(run, model, optimizer, resume, dev)
    sampler = PairSampler(items, storage_size=size, randomise=randomise, first_frame_pairs=True)
    if all(stored.motion is None for stored in sampler.sequences):
        raise ValueError("the correction stage trains on true motion: give simulated sequences or warped "
                         "templates (sim:..., warped:...)")
    data_config = _data_config(items, val_items)
    data_config["licence"] = combined_licence(base_licence, data_config["licence"])
    # the canvas on the stage's grid and on the network's: one shape each for the whole run
    shape, coarse = sampler.stage_shape(size), sampler.stage_shape(first.working_size)
    if crop > min(shape):
        raise ValueError(f"crop {crop} is larger than the correction grid ({shape[0]} x {shape[1]} pixels): "
                         f"give a crop of at most {min(shape)}")
    scale = torch.tensor(level_spacing(shape, coarse, (1.0, 1.0)), device=dev)

    def step(_: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        stage.train()
        batch = sampler.sample(batch_size, size, rng, dev)
        with torch.no_grad():
            images = resample_image(torch.cat((batch.fixed, batch.moving), 1), coarse)
            start = model(images[:, :1], images[:, 1:], batch.spacing * scale)
            start = resample_field(start, shape) + smooth_perturbation(len(start), shape, perturbation_mm,
                                                                       rng, start)
            warped = warp(batch.moving, start, batch.spacing)
            labels = None if batch.moving_labels is None or not dice else \
                warp(batch.moving_labels[:, [LABEL_LV, LABEL_MYOCARDIUM]], start, batch.spacing)
        truth = batch.motion if batch.motion is not None else torch.zeros_like(start)
        weight = (batch.fixed > TISSUE_LEVEL).float()
        if batch.fixed_labels is not None:
            myocardium = batch.fixed_labels[:, LABEL_MYOCARDIUM:LABEL_MYOCARDIUM + 1] > 0.5
            weight = weight + MYOCARDIUM_WEIGHT * (myocardium * batch.labelled[:, None, None, None])
        supervised = batch.supervised if batch.supervised is not None else torch.zeros(len(start), device=dev)
        weight = weight * supervised[:, None, None, None]
        top = int(rng.integers(0, max(1, shape[0] - crop + 1)))
        left = int(rng.integers(0, max(1, shape[1] - crop + 1)))
        cut = (..., slice(top, top + crop), slice(left, left + crop))
        residual = stage.residual(batch.fixed[cut], warped[cut], batch.spacing)
        corrected = compose(residual, start[cut], batch.spacing)
        w, true = weight[cut], truth[cut]

        def weighted_epe(field: torch.Tensor) -> torch.Tensor:  # mm, the weighted mean over the crop
            return (field - true).square().sum(1, keepdim=True).add(1e-6).sqrt().mul(w).sum() / w.sum().clamp(min=1.0)

        epe, start_epe = weighted_epe(corrected), weighted_epe(start[cut])
        rough = (residual.diff(dim=-1).square().mean() + residual.diff(dim=-2).square().mean())
        loss = epe + smoothness * rough
        terms = {"epe": epe.detach(), "start_epe": start_epe.detach(), "smoothness": rough.detach()}
        if labels is not None:  # warping by the first field, then by the residual: by the corrected field
            moved = warp(labels[cut], residual, batch.spacing)
            fixed_labels = batch.fixed_labels[:, [LABEL_LV, LABEL_MYOCARDIUM]][cut]
            overlap = 1 - dice_scores(moved, fixed_labels).mean(1)
            term = (overlap * batch.labelled).sum() / batch.labelled.sum().clamp(min=1.0)
            loss = loss + dice * term
            terms["dice"] = term.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), **terms}

    def validate(_: Stage) -> dict[str, Any]:
        if val_items is None:
            return {}
        stage.eval()
        scores = evaluate(model, val_items, dev)
        return {key: scores[key] for key in ("epe_es", "dice_es", "folding")}

    save = _saver(run, model, optimizer, settings, data_config, base_config)
    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    return run.loop([Stage(int(size), int(iterations))], start, history, step, validate, save, [optimizer],
                    learning_rate)
