"""Training of the anatomy network (:mod:`.anatomy`) of a trained DLIR model.

The registration network is frozen and saved with the anatomy network, which learns to segment
single annotated frames (both frames of each pair :class:`.data.PairSampler` draws, with its flips,
gamma and, for the ``randomise`` share, a redrawn appearance; then a random rotation and scaling
about the centre). The loss is the cross-entropy of the soft label maps plus one minus the mean soft
Dice of :data:`.anatomy.ANATOMY_LABELS`.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import dice_scores
from ..sequence import EchoModelWarning
from .anatomy import ANATOMY_LABELS, DEFAULT_ANATOMY_SIZE, AnatomyNet
from .data import PairSampler, combined_licence, open_source
from .grid import sequence_intensity_window
from .model import DLIRModel
from .training import Callback, History, Stage, _behind, _data_config, _items, _resumed, _Run, _saver

# Adam steps of the shipped recipe (scripts/train_camus_model.sh): 10000 gained over 4000 on held-out CAMUS train
# patients (benchmarks/validate_refine_anatomy.py; docs/generalisation.md, "Tenth session").
# `echoreg train anatomy` writes it out
# (the command line does not import torch); Testing/test_dlir_anatomy.py holds the two together.
ANATOMY_ITERATIONS = 10000
# Validation LV Dice under which training ends with a warning. On held-out CAMUS train patients (A4C) the maps'
# gain over the network alone was none at 0.833 (2000 steps), in the mean only at 0.864 (4000: +0.001 to
# +0.003, every interval containing 0) and shown at 0.878 (10000: +0.005 to +0.007) (docs/generalisation.md,
# "Tenth session"); 0.85 lies between the first two: a network under it is weaker than one whose maps gained
# nothing measurable.
USEFUL_ANATOMY_DICE_LV = 0.85
MAX_ROTATION_DEG = 12.0  # random rotation of the training frames about their centre, +-
MAX_SCALING = 0.15       # random scaling, 1 +- this along each axis
CLASSES = [0, *ANATOMY_LABELS]  # channels of the label maps the network predicts, background first


def random_rotation_scaling(images: torch.Tensor, labels: torch.Tensor,
                            rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, h, w) images and (B, C, h, w) soft label maps rotated by up to
    :data:`MAX_ROTATION_DEG` and scaled by 1 +- :data:`MAX_SCALING` about the image centre (in
    normalised image coordinates: an augmentation, not a physical transform); bilinear, zero
    outside (background for the labels)."""
    batch = images.shape[0]
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, batch))
    sx, sy = rng.uniform(1 - MAX_SCALING, 1 + MAX_SCALING, (2, batch))
    theta = np.zeros((batch, 2, 3))
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(angle) * sx, -np.sin(angle) * sy
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(angle) * sx, np.cos(angle) * sy
    grid = F.affine_grid(torch.as_tensor(theta, dtype=images.dtype, device=images.device), list(images.shape),
                         align_corners=False)
    moved = F.grid_sample(torch.cat((images, labels), 1), grid, align_corners=False)
    moved_labels = moved[:, 1:]
    moved_labels[:, :1] += 1 - moved_labels.sum(1, keepdim=True)  # outside: background
    return moved[:, :1], moved_labels


def anatomy_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy + 1 - mean soft Dice of the classes after background, that Dice term) of
    (B, C, h, w) logits against (B, C, h, w) soft label maps (background first)."""
    cross_entropy = -(target * logits.log_softmax(1)).sum(1).mean()
    overlap = 1 - dice_scores(logits.softmax(1)[:, 1:], target[:, 1:]).mean()
    return cross_entropy + overlap, overlap


def anatomy_dice(model: AnatomyNet, items: Any, device: torch.device) -> dict[str, float]:
    """Mean Dice of the most probable class against the annotation, per structure of
    :data:`.anatomy.ANATOMY_LABELS` (``dice_lv``, ``dice_myocardium``, ``dice_la``), over the
    annotated frames of ``items`` (:class:`.data.SequenceItem`); NaN for a structure no frame shows.

    Each frame is normalised with its whole sequence's intensity window
    (:func:`.grid.sequence_intensity_window`), as the refinement and the training do."""
    names = {1: "dice_lv", 2: "dice_myocardium", 3: "dice_la"}
    scores: dict[int, list[float]] = {label: [] for label in ANATOMY_LABELS}
    for item in items:
        seq = item.sequence
        window = sequence_intensity_window(seq.frames, seq.spacing, model.working_size)
        for t in seq.label_frames or ():
            labels = seq.label_map(t)
            frame = torch.from_numpy(np.asarray(seq.frames[t], dtype=np.float32))[None, None].to(device)
            with torch.inference_mode():
                probabilities = model.probabilities(frame, seq.spacing, window)[0]
            background = 1 - probabilities.sum(0, keepdim=True)
            predicted = torch.cat((background, probabilities)).argmax(0).cpu().numpy()
            for k, label in enumerate(ANATOMY_LABELS, start=1):
                truth, guess = labels == label, predicted == k
                if truth.any():
                    scores[label].append(2 * float((truth & guess).sum()) / float(truth.sum() + guess.sum()))
    return {names[label]: float(np.mean(values)) if values else math.nan for label, values in scores.items()}


def anatomy_dice_warning(history: History) -> str | None:
    """The warning that training's last epoch (``val_dice_lv`` of :func:`train_anatomy`'s history) scored
    an LV Dice under :data:`USEFUL_ANATOMY_DICE_LV`, or None: at or above it, or not scored (no validation
    data in that epoch, or none of its frames annotated with an LV: NaN)."""
    last = history[-1].get("val_dice_lv") if history else None
    if last is None or math.isnan(last) or last >= USEFUL_ANATOMY_DICE_LV:
        return None
    return (f"the anatomy network segments the validation frames' LV at Dice {last:.3f}, under "
            f"{USEFUL_ANATOMY_DICE_LV}: on held-out CAMUS A4C frames, maps from networks this weak gave the "
            "refinement no measurable gain (docs/generalisation.md, \"Tenth session\"); train it longer (the "
            f"recipe runs {ANATOMY_ITERATIONS} steps) before registering with it")


def train_anatomy(data: Any, output: str | os.PathLike, *, base: DLIRModel | str | os.PathLike,
                  validation: Any = None, size: int = DEFAULT_ANATOMY_SIZE, iterations: int = ANATOMY_ITERATIONS,
                  batch_size: int = 4, learning_rate: float = 2e-3, randomise: float = 0.8,
                  unet: Mapping[str, Any] | None = None, iterations_per_epoch: int = 250, seed: int = 0,
                  device: str | torch.device = "auto", resume: bool = True, progress: bool = True,
                  callback: Callback | None = None) -> History:
    """Train an anatomy network for the DLIR model ``base`` and save the model with it.

    Args:
        data, output, validation, iterations_per_epoch, seed, device, resume, progress, callback: as
            for :func:`.training.train_vae` (one process: no torchrun). The training sequences need
            annotated frames (CAMUS pairs, simulated sequences); validation scores the network's Dice
            on the annotated frames of the validation sequences (:func:`anatomy_dice`).
        base: the trained DLIR model (or its checkpoint, path or installed name); it is frozen and
            saved with the anatomy network; one it holds already is replaced.
        size: rows of the anatomy network's working grid.
        iterations, batch_size, learning_rate: Adam steps (cosine-decayed within the run, as every
            trainer here), pairs per step (two frames each), initial step size.
        randomise: share of the pairs whose appearance is redrawn (:func:`.augment.randomise_appearance`).
        unet: :class:`~.networks.RegistrationUNet` arguments over :data:`.anatomy.DEFAULT_ANATOMY_UNET`.

    The checkpoint's config keeps the base's own config as ``base_model`` (None for a base given as
    a model) and the terms of both (:func:`.data.combined_licence`).

    Returns:
        The history: per epoch the mean ``loss`` and ``dice_loss`` (its 1 - soft Dice term), with
        validation data ``val_dice_lv``, ``val_dice_myocardium`` and ``val_dice_la``. With validation
        data, a last LV Dice under :data:`USEFUL_ANATOMY_DICE_LV` is warned about
        (:func:`anatomy_dice_warning`, an :class:`~..sequence.EchoModelWarning`).

    Raises:
        ValueError: no training frame is annotated; ``base`` is not a DLIR model; several processes
            (torchrun); an earlier run in ``output`` with other settings.
        FileExistsError: an earlier run in ``output`` and ``resume`` False.
    """
    processes, frozen = _behind(base, device, "train_anatomy")
    dev = processes.device
    items, val_items = open_source(data), _items(validation)
    first, base_name, base_config, base_licence = frozen.model, frozen.name, frozen.config, frozen.licence
    torch.manual_seed(seed)
    model = copy.deepcopy(first).to(dev).eval()
    model.requires_grad_(False)
    model.anatomy = AnatomyNet.new(size, **(unet or {})).to(dev)
    anatomy = model.anatomy
    anatomy.requires_grad_(True)
    settings = {"base": base_name, "size": int(size), "iterations": int(iterations),
                "batch_size": int(batch_size), "learning_rate": float(learning_rate),
                "randomise": float(randomise), "max_rotation_deg": MAX_ROTATION_DEG, "max_scaling": MAX_SCALING,
                "iterations_per_epoch": int(iterations_per_epoch), "seed": int(seed),
                "world_size": processes.world_size}
    run = _Run("anatomy", Path(output), settings, int(seed), int(iterations_per_epoch), processes,
               progress, callback)
    optimizer = torch.optim.Adam(anatomy.parameters(), lr=learning_rate)
    state, history = _resumed(run, model, optimizer, resume, dev)
    sampler = PairSampler(items, storage_size=size, randomise=randomise)
    if not sampler.has_labels:
        raise ValueError("the anatomy network trains on annotated frames, and these sources have none: give a "
                         "folder of CAMUS pairs with their *_gt masks or simulated sequences (sim:START-STOP)")
    data_config = _data_config(items, val_items)
    data_config["licence"] = combined_licence(base_licence, data_config["licence"])

    def step(_: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        anatomy.train()
        batch = sampler.sample(batch_size, size, rng, dev)
        while batch.fixed_labels is None:  # a batch without an annotated pair: draw again
            batch = sampler.sample(batch_size, size, rng, dev)
        annotated = batch.labelled > 0
        images = torch.cat((batch.fixed, batch.moving))[torch.cat((annotated, annotated))]
        labels = torch.cat((batch.fixed_labels, batch.moving_labels))[torch.cat((annotated, annotated))][:, CLASSES]
        images, labels = random_rotation_scaling(images, labels, rng)
        loss, overlap = anatomy_loss(anatomy(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "dice_loss": overlap.detach()}

    def validate(_: Stage) -> dict[str, Any]:
        if val_items is None:
            return {}
        anatomy.eval()
        return anatomy_dice(anatomy, val_items, dev)

    save = _saver(run, model, optimizer, settings, data_config, base_config)
    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    history = run.loop([Stage(int(size), int(iterations))], start, history, step, validate, save, [optimizer],
                       learning_rate)
    weak = anatomy_dice_warning(history)
    if weak is not None:
        warnings.warn(EchoModelWarning(f"{output}: {weak}"), stacklevel=2)
    return history


__all__ = ["USEFUL_ANATOMY_DICE_LV", "anatomy_dice", "anatomy_dice_warning", "anatomy_loss", "random_rotation_scaling",
           "train_anatomy"]
