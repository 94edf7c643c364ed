"""Training of the DLIR models: plain functions for the Slicer Python console, scripts and the CLI.

* :func:`train_vae`: a mask VAE of one structure (LV cavity or myocardium), the shape prior;
* :func:`train_affine`: the affine CNN, unsupervised (NCC) on pairs with random affine motion;
* :func:`train_dlir`: the registration U-Net, multi-scale (e.g. 32 -> 64 -> 128 rows, each stage
  starting from the previous one's weights), with similarity, bending energy, Dice, the VAE shape
  term and the adversarial texture term, alternating generator and discriminator steps.

Every function is seeded (the same seed gives the same run on the same device), decays its step
size by a cosine within each stage, shows a progress bar, checkpoints its output folder after
every epoch (``iterations_per_epoch`` steps) and resumes from it (weights, optimiser states,
position, history), and returns the history: one dict per epoch with the mean training losses and
the validation metrics. Launched under ``torchrun`` (environment variables RANK / WORLD_SIZE),
they train with DistributedDataParallel: each process samples its own shard of the sequences, and
only rank 0 validates, writes and shows progress.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..io.atomic import check_output_folder
from ..losses import ncc_loss
from ..spatial.pyramid import resample_image
from ..device import resolve_device
from ..spatial import affine_to_displacement, in_view_mask, warp
from .affine_net import AffineNet
from .checkpoints import (MODEL_NAME, load_model, load_training_state, read_config, save_model,
                          save_training_state)
from .augment import random_affine
from .data import PairSampler, SequenceItem, data_licence, describe_source, open_source
from .discriminator import PatchDiscriminator
from .evaluation import evaluate
from .grid import prepare_frames
from .inference import autocast_context
from .model import DLIRModel
from .networks import registration_network
from .objectives import DLIRObjective, LossWeights, ShapePrior, discriminator_loss
from .vae import MaskVAE, structure_label

History = list[dict[str, Any]]
Callback = Callable[[dict[str, Any]], None]
DISCRIMINATOR_NAME = "discriminator"
GAN_BETAS = (0.5, 0.999)  # Adam momentum of the discriminator, as usual for GANs
VAE_AUGMENTATION = {"max_rotation": 15.0, "max_scale": 0.15, "max_shift": 0.08}  # shift: of the depth
VAE_BLUR_FACTORS = (1, 2, 4)  # masks are shrunk by one of these and enlarged back: soft edges
VALIDATION_MASKS = 64
LR_FLOOR = 0.05  # the step size decays to this fraction of the learning rate within each stage


@dataclass(frozen=True)
class Stage:
    """One stage of training: the working grid's rows and the optimiser steps there."""

    size: int
    iterations: int


def stage_learning_rate(base: float, step: int, steps: int) -> float:
    """Step size at ``step`` of a stage of ``steps``: a cosine from ``base`` down to
    ``LR_FLOOR * base``, restarting at every stage (the end of each stage settles, the next one
    starts from its weights at full speed)."""
    return base * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1))))


def stages_of(scales: Sequence[int] | int, iterations: Sequence[int] | int) -> list[Stage]:
    """Stages from working sizes (coarse to fine) and steps (one number for all, or one each)."""
    sizes = [int(scales)] if isinstance(scales, int) else [int(s) for s in scales]
    steps = [int(iterations)] * len(sizes) if isinstance(iterations, int) else [int(i) for i in iterations]
    if not sizes or len(steps) != len(sizes) or min(sizes) < 8 or min(steps) < 0:
        raise ValueError(f"need one or more scales >= 8 and as many iteration counts >= 0, got "
                         f"scales {scales} and iterations {iterations}")
    if not sum(steps):
        raise ValueError(f"nothing to train: every stage has 0 iterations ({iterations})")
    return [Stage(s, i) for s, i in zip(sizes, steps)]


# ---------------------------------------------------------------------------- distributed set-up
@dataclass
class _Processes:
    """Where this process trains: rank and world size (1 outside torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module | None) -> nn.Module | None:
        """``module`` in DistributedDataParallel when there are several processes."""
        if module is None or self.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _processes(device: str | torch.device) -> _Processes:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, else Gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return _Processes(0, 1, resolve_device(device))
    cuda = torch.cuda.is_available() and str(device) != "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    return _Processes(dist.get_rank(), world_size, dev)


# ---------------------------------------------------------------------------- the shared loop
@dataclass
class _Run:
    """What every trainer shares: the output folder, settings, seeding, progress and the epochs."""

    name: str
    output: Path
    settings: dict[str, Any]
    seed: int
    iterations_per_epoch: int
    processes: _Processes
    progress: bool
    callback: Callback | None

    def resume_state(self, resume: bool,
                     architecture: dict[str, Any]) -> tuple[dict[str, Any] | None, History]:
        """The saved training state and history of an earlier run in the output folder (None and
        [] when there is none). A run with another architecture or other settings is refused; so
        is any earlier run when ``resume`` is False (outputs are never replaced silently).

        Raises:
            PermissionError, NotADirectoryError: the output folder cannot be written (probed here,
                before any training, not at the first checkpoint).
            FileExistsError, ValueError: an earlier run that may not be continued, as above.
        """
        if self.processes.main:
            check_output_folder(self.output, ())
        state = load_training_state(self.output, self.processes.device)
        if state is None:
            return None, []
        if not resume:
            raise FileExistsError(f"{self.output}: holds a training run already; pass resume=True "
                                  "(CLI: leave out --no-resume) to continue it, or choose another folder")
        config = read_config(self.output / f"{MODEL_NAME}.safetensors")
        if _fixed_part(config.get("architecture")) != _fixed_part(architecture):
            raise ValueError(f"{self.output}: cannot resume: it holds another architecture, "
                             f"{config.get('architecture')}")
        if config.get("training") != self.settings:
            saved, current = config.get("training") or {}, self.settings
            changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            raise ValueError(f"{self.output}: cannot resume: the settings differ in {changed} (give the same "
                             "settings to continue the run, or another output folder)")
        return state, list(config.get("history", []))

    def loop(self, stages: list[Stage], start: tuple[int, int], history: History,
             step: Callable[[Stage, np.random.Generator], dict[str, torch.Tensor]],
             validate: Callable[[Stage], dict[str, Any]],
             save: Callable[[History, dict[str, int]], None],
             optimizers: Sequence[torch.optim.Optimizer], learning_rate: float) -> History:
        """Run the stages from ``start`` = (stage, epoch). Each epoch's random numbers derive from
        (seed, stage, epoch, rank) only, and the step size from the position in the stage
        (:func:`stage_learning_rate`), so a resumed run repeats the uninterrupted one."""
        from tqdm import tqdm

        ipe = self.iterations_per_epoch
        done = sum(s.iterations for s in stages[:start[0]])
        if start[0] < len(stages):
            done += min(start[1] * ipe, stages[start[0]].iterations)
        with tqdm(total=sum(s.iterations for s in stages), initial=done, desc=self.name, unit="step",
                  disable=not (self.progress and self.processes.main), dynamic_ncols=True) as bar:
            # closed on an error too, so that an error line does not start on the bar's line
            for k in range(start[0], len(stages)):
                stage = stages[k]
                for epoch in range(start[1] if k == start[0] else 0, math.ceil(stage.iterations / ipe)):
                    rng = np.random.default_rng([self.seed, k, epoch, self.processes.rank])
                    torch.manual_seed(int(rng.integers(2**62)))
                    began = time.perf_counter()
                    n = min(ipe, stage.iterations - epoch * ipe)
                    sums: dict[str, torch.Tensor] = {}
                    counts: dict[str, int] = {}
                    for i in range(epoch * ipe, epoch * ipe + n):
                        rate = stage_learning_rate(learning_rate, i, stage.iterations)
                        for optimizer in optimizers:
                            for group in optimizer.param_groups:
                                group["lr"] = rate
                        terms = step(stage, rng)
                        for key, value in terms.items():
                            sums[key] = sums.get(key, 0) + value.detach().float()
                            counts[key] = counts.get(key, 0) + 1
                        bar.update()
                    done += n
                    row = {"stage": k, "size": stage.size, "epoch": epoch, "iterations": done,
                           "learning_rate": rate, **{key: float(sums[key]) / counts[key] for key in sums}}
                    if self.processes.main:
                        row.update({f"val_{key}": value for key, value in validate(stage).items()})
                    row["seconds"] = round(time.perf_counter() - began, 3)
                    history.append(row)
                    bar.set_postfix({key: f"{row[key]:.4g}" for key in ("loss", "val_epe_es", "val_dice_es")
                                     if isinstance(row.get(key), float)})
                    if self.processes.main:
                        save(history, {"stage": k, "epoch": epoch + 1})
                        if self.callback is not None:
                            self.callback(row)
                    self.processes.barrier()
        return history


INFERENCE_SETTINGS = ("working_size", "passes")  # architecture keys that are not weight shapes


def _fixed_part(architecture: dict[str, Any] | None) -> dict[str, Any] | None:
    """An architecture without :data:`INFERENCE_SETTINGS`: ``working_size`` follows the stage a
    checkpoint was saved in, ``passes`` is chosen after training (and absent from older configs)."""
    return None if architecture is None else \
        {k: v for k, v in architecture.items() if k not in INFERENCE_SETTINGS}


def _items(source: Any) -> Sequence[SequenceItem] | None:
    return None if source is None else open_source(source)


def _data_config(data: Sequence[SequenceItem], validation: Sequence[SequenceItem] | None) -> dict:
    """The checkpoint config entries on the data: ``data`` (training and validation sources) and the
    ``licence`` the weights carry by their training data (:func:`~.data.data_licence`)."""
    training = describe_source(data)
    return {"data": {"training": training,
                     "validation": None if validation is None else describe_source(validation)},
            "licence": data_licence(training)}


def _load_or_keep(model: nn.Module | str | os.PathLike, cls: type) -> nn.Module:
    """``model`` itself, or the model of that class loaded from a checkpoint path."""
    if not isinstance(model, nn.Module):
        model = load_model(model)
    if not isinstance(model, cls):
        raise ValueError(f"expected a {cls.__name__}, got a {type(model).__name__}")
    return model


@dataclass
class _FrozenBase:
    """A trained DLIR model that a new part (a correction stage, an anatomy network) is trained behind:
    the model, its name, its checkpoint config (None for a model given as an object) and its terms
    (the catalog's: its config's licence, else what its training sources imply; None when not known)."""

    model: DLIRModel
    name: str
    config: dict[str, Any] | None
    licence: str | None


def _resumed(run: _Run, model: nn.Module, optimizer: torch.optim.Optimizer, resume: bool,
             device: torch.device) -> tuple[dict[str, Any] | None, History]:
    """:meth:`_Run.resume_state` of a trainer with one model and one optimiser, whose weights and
    state are loaded from the earlier run when there is one."""
    state, history = run.resume_state(resume, model.architecture())
    if state is not None:
        model.load_state_dict(load_model(run.output, device).state_dict())
        optimizer.load_state_dict(state["optimizer"])
    return state, history


def _saver(run: _Run, model: nn.Module, optimizer: torch.optim.Optimizer, settings: dict[str, Any],
           data_config: dict[str, Any],
           base_config: dict[str, Any] | None) -> Callable[[History, dict[str, int]], None]:
    """The :meth:`_Run.loop` checkpoint writer of a trainer that adds a part to a base model: the
    model with its settings, data, history and the base's config, and the optimiser's state."""
    def save(history: History, position: dict[str, int]) -> None:
        save_model(model, run.output, training=settings, **data_config, history=history, base_model=base_config)
        save_training_state(run.output, {**position, "optimizer": optimizer.state_dict()})
    return save


def _behind(base: DLIRModel | str | os.PathLike, device: str | torch.device,
            trainer: str) -> tuple[_Processes, _FrozenBase]:
    """The one process (torchrun refused: the parts are small) and the base of a trainer that adds a
    part to a trained DLIR model ``base`` (object, checkpoint path or installed name)."""
    from .shipped import licence_of

    processes = _processes(device)
    if processes.world_size > 1:
        raise ValueError(f"{trainer} runs in one process (the network is small): start it without torchrun")
    model = _load_or_keep(base, DLIRModel)
    if isinstance(base, nn.Module):
        return processes, _FrozenBase(model, type(base).__name__, None, None)
    return processes, _FrozenBase(model, str(base), read_config(base), licence_of(base))


READING_OF_THE_OUTPUT = ("mode", "diffeomorphic", "integration_steps")


def _start_from(model: DLIRModel, trained: DLIRModel) -> None:
    """Copy the weights of ``trained`` into ``model``; their networks must have the same shape (the
    working size, the passes, the tracking mode and :data:`READING_OF_THE_OUTPUT` may differ: a
    displacement network is a close start for a velocity network, exp(v) = v + O(|v| |grad v|)).
    A correction stage of ``trained`` is not copied: it was trained for the fields of the network
    before this training (:func:`.correction_training.train_correction` trains one anew)."""
    def networks(m: DLIRModel) -> dict[str, Any]:
        return {k: v for k, v in (_fixed_part(m.architecture()) or {}).items()
                if k not in (*READING_OF_THE_OUTPUT, "correction")}
    if networks(trained) != networks(model):
        kinds = [(m.net.architecture().get("kind", "unet") if m.net is not None else None) for m in (trained, model)]
        hint = (f": it is a {kinds[0]} network, this run trains a {kinds[1]} one (--network {kinds[0]})"
                if None not in kinds and kinds[0] != kinds[1] else "")
        raise ValueError(f"cannot start from {getattr(trained, 'name', 'that model')}{hint}: its networks "
                         f"{networks(trained)} differ from {networks(model)}")
    model.load_state_dict({k: v for k, v in trained.state_dict().items() if not k.startswith("correction.")})


# ---------------------------------------------------------------------------- VAE
def _augment_masks(masks: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random affine motion, horizontal flips and edge softening of (B, 1, H, W) masks."""
    batch, shape = masks.shape[0], masks.shape[-2:]
    unit = (1.0, 1.0)
    matrix = random_affine(batch, rng, VAE_AUGMENTATION["max_rotation"], VAE_AUGMENTATION["max_scale"],
                           VAE_AUGMENTATION["max_shift"] * (shape[0] - 1), device=masks.device)
    masks = warp(masks, affine_to_displacement(matrix, shape, unit), unit, padding="zeros")
    flip = torch.from_numpy(rng.random(batch) < 0.5).to(masks.device)
    masks = torch.where(flip[:, None, None, None], masks.flip(-1), masks)
    factor = int(rng.choice(VAE_BLUR_FACTORS))
    if factor > 1:
        small = (max(2, shape[0] // factor), max(2, shape[1] // factor))
        masks = resample_image(resample_image(masks, small), shape)
    return masks


def vae_loss(vae: MaskVAE, masks: torch.Tensor, beta: float,
             wrapper: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative ELBO per pixel: binary cross-entropy of the reconstruction against the soft masks
    plus ``beta`` times the KL divergence of the posterior from N(0, I), both summed per item and
    divided by the pixels of the VAE grid. ``wrapper`` (DistributedDataParallel around ``vae``)
    runs the forward pass when given, so that the gradients are averaged across processes."""
    logits, mean, log_variance = (wrapper or vae)(masks)
    target = vae.resize(masks).clamp(0, 1)
    reconstruction = F.binary_cross_entropy_with_logits(logits, target)
    kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(1).mean() / target[0].numel()
    return reconstruction + beta * kl, {"reconstruction": reconstruction.detach(), "kl": kl.detach()}


def reconstruction_dice(vae: MaskVAE, masks: torch.Tensor) -> float:
    """Mean Dice of the thresholded reconstructions (from the latent means) and the masks."""
    with torch.inference_mode():
        logits, _, _ = vae.eval()(masks)
        predicted, target = logits > 0, vae.resize(masks) > 0.5
        overlap = (predicted & target).sum(dim=(1, 2, 3)).float()
        total = (predicted.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))).float()
    return float((2 * overlap / total.clamp(min=1)).mean())


def train_vae(data: Any, output: str | os.PathLike, *, structure: int | str = "lv",
              validation: Any = None, iterations: int = 3000, batch_size: int = 32,
              learning_rate: float = 1e-3, latent_size: int = 32,
              channels: Sequence[int] = (16, 32, 64, 64), input_size: int = 64, beta: float = 1.0,
              storage_size: int = 128, iterations_per_epoch: int = 100, seed: int = 0,
              device: str | torch.device = "auto", resume: bool = True, progress: bool = True,
              callback: Callback | None = None) -> History:
    """Train the mask VAE of one structure.

    Args:
        data: training sequences with labels: a source spec (``"sim:0-500"``, a folder), a list of
            specs, or a sequence of :class:`~.data.SequenceItem`.
        output: checkpoint folder (``model.safetensors`` + ``model.json``, ``training_state.pt``).
        structure: "lv", "myocardium" or a label code.
        validation: optional labelled sequences; their masks give the validation Dice.
        iterations, batch_size, learning_rate: Adam steps, masks per step (per process under
            torchrun), initial step size (:func:`stage_learning_rate`).
        latent_size, channels, input_size: the architecture (:class:`~.vae.MaskVAE`).
        beta: weight of the KL term (1: the evidence lower bound).
        storage_size: rows of the working grid the masks are taken from.
        iterations_per_epoch: steps between history rows and checkpoints.
        seed, device, resume, progress: reproducibility, "auto"/"cpu"/"cuda", continue a run in
            ``output``, show a progress bar.
        callback: called with each epoch's history row (e.g. to update a GUI).

    Returns:
        The history: per epoch, mean ``loss``, ``reconstruction`` and ``kl``, and ``val_dice`` (Dice
        of the reconstructions of validation masks, without augmentation).

    Each step augments the masks: random rotation (15 degrees), scaling (15 %), shift (8 % of the
    depth), horizontal flip, and soft edges (shrunk by 1, 2 or 4 and enlarged back), since the shape
    term sees bilinearly warped masks at every multi-scale stage.
    """
    processes = _processes(device)
    dev = processes.device
    label = structure_label(structure)
    items, val_items = open_source(data), _items(validation)
    settings = {"structure": label, "iterations": int(iterations), "batch_size": int(batch_size),
                "learning_rate": float(learning_rate), "beta": float(beta),
                "storage_size": int(storage_size), "iterations_per_epoch": int(iterations_per_epoch),
                "seed": int(seed), "augmentation": dict(VAE_AUGMENTATION),
                "blur_factors": list(VAE_BLUR_FACTORS), "world_size": processes.world_size}
    run = _Run(f"VAE {label}", Path(output), settings, int(seed), int(iterations_per_epoch),
               processes, progress, callback)
    torch.manual_seed(seed)
    vae = MaskVAE(label, latent_size, channels, input_size).to(dev)
    optimizer = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    state, history = run.resume_state(resume, vae.architecture())
    if state is not None:
        vae.load_state_dict(load_model(run.output, dev).state_dict())
        optimizer.load_state_dict(state["optimizer"])
    sampler = PairSampler(items, storage_size=storage_size, rank=processes.rank,
                          world_size=processes.world_size)
    val_masks = None
    if val_items is not None:
        val_sampler = PairSampler(val_items, storage_size=storage_size, augment=False)
        val_masks = val_sampler.sample_masks(VALIDATION_MASKS, label, np.random.default_rng(0), dev)
    trained = processes.wrap(vae)

    def step(stage: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        vae.train()
        masks = _augment_masks(sampler.sample_masks(batch_size, label, rng, dev), rng)
        loss, terms = vae_loss(vae, masks, beta, trained)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), **terms}

    def validate(stage: Stage) -> dict[str, Any]:
        return {} if val_masks is None else {"dice": reconstruction_dice(vae, val_masks)}

    def save(history: History, position: dict[str, int]) -> None:
        save_model(vae, run.output, training=settings, **_data_config(items, val_items),
                   history=history)
        save_training_state(run.output, {**position, "optimizer": optimizer.state_dict()})

    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    return run.loop([Stage(input_size, int(iterations))], start, history, step, validate, save,
                    [optimizer], learning_rate)



# ---------------------------------------------------------------------------- affine CNN
def _affine_validation(items: Sequence[SequenceItem], size: int, device: torch.device,
                       augmentation: Mapping[str, float]) -> list[tuple[torch.Tensor, ...]]:
    """(fixed, moving, spacing, true field) per item: its ED frame on the working grid and the
    same frame moved by a random affine map (fixed seed), whose field is the answer."""
    rng = np.random.default_rng(0)
    cases = []
    for k in range(len(items)):
        seq = items[k].sequence
        frame = torch.from_numpy(seq.frames[seq.ed_index or 0]).to(device)[None, None]
        fixed, spacing = prepare_frames(frame, seq.spacing, size)
        matrix = random_affine(1, rng, **augmentation, device=device)
        truth = affine_to_displacement(matrix, fixed.shape[-2:], spacing)
        moving = warp(fixed, affine_to_displacement(torch.linalg.inv(matrix), fixed.shape[-2:], spacing),
                      spacing)
        cases.append((fixed, moving, torch.tensor([spacing], device=device), truth))
    return cases


def train_affine(data: Any, output: str | os.PathLike, *, validation: Any = None, size: int = 64,
                 iterations: int = 3000, batch_size: int = 16, learning_rate: float = 1e-3,
                 channels: Sequence[int] = (16, 32, 32, 64, 64), max_rotation: float = 15.0,
                 max_scale: float = 0.15, max_shift: float = 10.0, iterations_per_epoch: int = 100,
                 seed: int = 0, device: str | torch.device = "auto", amp: bool = True,
                 resume: bool = True, progress: bool = True,
                 callback: Callback | None = None) -> History:
    """Train the affine CNN without labels: maximise the NCC of fixed frames and warped moving
    frames that were moved by random affine maps.

    Args:
        data, output, validation: as for :func:`train_vae` (no labels needed).
        size: rows of the working grid.
        iterations, batch_size, learning_rate: Adam steps, pairs per step (per process under
            torchrun), initial step size (:func:`stage_learning_rate`).
        channels: widths of the :class:`~.affine_net.AffineNet` levels.
        max_rotation, max_scale, max_shift: the random affine maps (degrees, relative, mm) applied
            to the moving frames of training pairs and to the validation frames.
        iterations_per_epoch, seed, device, resume, progress, callback: as for :func:`train_vae`.
        amp: mixed precision on CUDA.

    Returns:
        The history: per epoch the mean ``loss`` (1 - NCC) and ``val_epe`` (mm): the end-point error
        of the recovered affine field over the image, on validation ED frames moved by known maps.
        The checkpoint is an affine-only :class:`~.model.DLIRModel`, for ``method="dlir"`` or as
        the first stage of :func:`train_dlir`.
    """
    processes = _processes(device)
    dev = processes.device
    items, val_items = open_source(data), _items(validation)
    augmentation = {"max_rotation": float(max_rotation), "max_scale": float(max_scale),
                    "max_shift": float(max_shift)}
    settings = {"size": int(size), "iterations": int(iterations), "batch_size": int(batch_size),
                "learning_rate": float(learning_rate), "augmentation": augmentation,
                "iterations_per_epoch": int(iterations_per_epoch), "seed": int(seed),
                "world_size": processes.world_size}
    run = _Run("affine", Path(output), settings, int(seed), int(iterations_per_epoch), processes,
               progress, callback)
    torch.manual_seed(seed)
    model = DLIRModel(None, affine=AffineNet(channels), working_size=size).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    state, history = run.resume_state(resume, model.architecture())
    if state is not None:
        model.load_state_dict(load_model(run.output, dev).state_dict())
        optimizer.load_state_dict(state["optimizer"])
    sampler = PairSampler(items, storage_size=size, rank=processes.rank, world_size=processes.world_size)
    cases = None if val_items is None else _affine_validation(val_items, size, dev, augmentation)
    trained = processes.wrap(model)

    def step(stage: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        model.train()
        batch = sampler.sample(batch_size, size, rng, dev)
        matrix = random_affine(batch_size, rng, **augmentation, device=dev)
        shape = batch.fixed.shape[-2:]
        inverse = affine_to_displacement(torch.linalg.inv(matrix), shape, batch.spacing)
        moving = warp(batch.moving, inverse, batch.spacing)
        with autocast_context(dev, amp):
            field = trained(batch.fixed, moving, batch.spacing)
        valid = in_view_mask(field.detach(), batch.spacing)
        loss = ncc_loss(batch.fixed, warp(moving, field, batch.spacing), mask=valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    def validate(stage: Stage) -> dict[str, Any]:
        if cases is None:
            return {}
        model.eval()
        with torch.inference_mode():
            errors = [float((model(f, m, s) - t).norm(dim=1).mean()) for f, m, s, t in cases]
        return {"epe": float(np.mean(errors))}

    def save(history: History, position: dict[str, int]) -> None:
        save_model(model, run.output, training=settings, **_data_config(items, val_items),
                   history=history)
        save_training_state(run.output, {**position, "optimizer": optimizer.state_dict()})

    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    return run.loop([Stage(int(size), int(iterations))], start, history, step, validate, save,
                    [optimizer], learning_rate)


# ---------------------------------------------------------------------------- DLIR
def train_dlir(data: Any, output: str | os.PathLike, *, validation: Any = None,
               scales: Sequence[int] | int = (32, 64, 128), iterations: Sequence[int] | int = 1000,
               batch_size: int = 8, learning_rate: float = 1e-3,
               weights: LossWeights | Mapping[str, float] | None = None, similarity: str = "lncc",
               lncc_window_mm: float = 10.0, vaes: Sequence[MaskVAE | str | os.PathLike] = (),
               texture: bool = True, diffeomorphic: bool = False, passes: int = 1,
               unet: Mapping[str, Any] | None = None, affine: DLIRModel | str | os.PathLike | None = None,
               ed_es_fraction: float = 0.3, mode: str = "to_reference", max_frame_gap: int = 3,
               randomise: float = 0.0, init: DLIRModel | str | os.PathLike | None = None,
               iterations_per_epoch: int = 100,
               seed: int = 0, device: str | torch.device = "auto", amp: bool = True,
               resume: bool = True, progress: bool = True, callback: Callback | None = None) -> History:
    """Train the DLIR registration network, multi-scale.

    Args:
        data, output, validation: as for :func:`train_vae`. Labels are optional: pairs without
            them train on similarity, bending energy and texture. Validation sequences need ED and
            ES; the simulator's also give the end-point error.
        scales: working-grid rows of the stages, coarse to fine; each stage starts from the weights
            of the previous one (the network is fully convolutional and predicts in units of the
            field of view, so they carry over). The final model runs at the last size.
        iterations: Adam steps per stage (one number for all, or one per stage).
        batch_size, learning_rate: pairs per step (per process under torchrun), initial Adam step
            size of each stage (:func:`stage_learning_rate`; also the discriminator's).
        weights: :class:`~.objectives.LossWeights` or a {term: weight} mapping.
        similarity: "lncc" (local NCC, ``lncc_window_mm`` wide) or "mi".
        vaes: mask VAEs (models or checkpoint paths; :func:`train_vae`) for the shape term, which
            is on when some are given and ``weights.shape`` > 0.
        texture: the adversarial texture term (with ``weights.texture`` > 0).
        diffeomorphic: predict a stationary velocity field and integrate it.
        passes: applications of the network per training pair (:attr:`.model.DLIRModel.passes`, a
            recurrent cascade trained end to end, as Zhao et al., ICCV 2019): every term is computed
            on the composed field, so the network learns to correct its own residual; saved as the
            model's passes (validation may change them afterwards). Each pass costs a network run.
        unet: the registration network's architecture (:func:`~.networks.registration_network`):
            :class:`~.networks.RegistrationUNet` arguments (default: its defaults), or ``{"kind":
            "cost_volume", ...}`` for a :class:`~.networks.CostVolumeNet`.
        affine: an affine-only DLIR model (:func:`train_affine`) to use, frozen, as the first stage.
        ed_es_fraction: share of ED <-> ES pairs among the random pairs ("to_reference" only).
        mode: the tracking the model is for, saved with it: "to_reference" trains on ED <-> ES and
            random pairs; "sequential" on near neighbours, at most ``max_frame_gap`` frames apart
            (inference then composes neighbour fields; validation too).
        randomise: share of the training pairs whose appearance is redrawn
            (:func:`~.augment.randomise_appearance`; domain randomisation, 0: off).
        init: a DLIR model or checkpoint of the same architecture whose weights the first stage
            starts from (fine-tuning, e.g. a finer last stage on a trained model); ignored when
            resuming.
        iterations_per_epoch, seed, device, resume, progress, callback: as for :func:`train_vae`.
        amp: mixed precision for the network on CUDA.

    Returns:
        The history: per epoch the mean ``loss`` and each active term (``similarity``, ``bending``,
        ``dice``, ``shape``, ``texture``; ``discriminator``), and with validation data
        ``val_epe_es`` (mm), ``val_dice_es`` and ``val_folding`` (%).
    """
    processes = _processes(device)
    dev = processes.device
    items, val_items = open_source(data), _items(validation)
    stages = stages_of(scales, iterations)
    loss_weights = LossWeights.of(weights)
    torch.manual_seed(seed)
    first_stage = None if affine is None else _load_or_keep(affine, DLIRModel).affine
    if affine is not None and first_stage is None:
        raise ValueError("the affine first stage must be a model trained by train_affine")
    model = DLIRModel(registration_network(unet), working_size=stages[-1].size,
                      diffeomorphic=diffeomorphic, affine=first_stage, mode=mode, passes=passes).to(dev)
    if first_stage is not None:
        first_stage.requires_grad_(False)
    prior = None
    if vaes and loss_weights.shape > 0:
        prior = ShapePrior([_load_or_keep(v, MaskVAE) for v in vaes]).to(dev)
    discriminator = PatchDiscriminator().to(dev) if texture and loss_weights.texture > 0 else None
    objective = DLIRObjective(loss_weights, similarity, lncc_window_mm, prior, discriminator)
    settings = {"scales": [s.size for s in stages], "iterations": [s.iterations for s in stages],
                **({"passes": int(passes)} if passes != 1 else {}),
                "batch_size": int(batch_size), "learning_rate": float(learning_rate),
                "loss": objective.settings(),
                "vaes": [v.architecture() for v in prior.vaes] if prior is not None else [],
                "ed_es_fraction": float(ed_es_fraction) if mode == "to_reference" else 0.0,
                "max_frame_gap": int(max_frame_gap) if mode == "sequential" else None,
                **({"randomise": float(randomise)} if randomise else {}),
                "init": None if init is None else (type(init).__name__ if isinstance(init, nn.Module)
                                                   else str(init)),
                "iterations_per_epoch": int(iterations_per_epoch), "seed": int(seed),
                "world_size": processes.world_size}
    run = _Run("DLIR", Path(output), settings, int(seed), int(iterations_per_epoch), processes,
               progress, callback)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    d_optimizer = None if discriminator is None else \
        torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=GAN_BETAS)
    state, history = run.resume_state(resume, model.architecture())
    if state is None and init is not None:
        _start_from(model, _load_or_keep(init, DLIRModel))
    if state is not None:
        model.load_state_dict(load_model(run.output, dev).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        if discriminator is not None:
            discriminator.load_state_dict(load_model(run.output / f"{DISCRIMINATOR_NAME}.safetensors",
                                                     dev).state_dict())
            d_optimizer.load_state_dict(state["discriminator_optimizer"])
    sampler = PairSampler(items, storage_size=max(s.size for s in stages),
                          ed_es_fraction=settings["ed_es_fraction"],
                          max_frame_gap=settings["max_frame_gap"], rank=processes.rank,
                          world_size=processes.world_size, randomise=randomise)
    trained, d_trained = processes.wrap(model), processes.wrap(discriminator)

    def step(stage: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        model.train()
        model.working_size = stage.size
        batch = sampler.sample(batch_size, stage.size, rng, dev)
        if discriminator is not None:
            discriminator.requires_grad_(False)  # the generator step leaves it alone
        with autocast_context(dev, amp):
            field = trained(batch.fixed, batch.moving, batch.spacing)
        total, terms, warped = objective(field, batch.fixed, batch.moving, batch.spacing,
                                         batch.fixed_labels, batch.moving_labels, batch.labelled,
                                         batch.motion, batch.supervised)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        terms["loss"] = total.detach()
        if discriminator is not None:
            discriminator.requires_grad_(True)
            d_loss = discriminator_loss(d_trained, batch.fixed, batch.neighbour, warped.detach())
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
            terms["discriminator"] = d_loss.detach()
        return terms

    def validate(stage: Stage) -> dict[str, Any]:
        if val_items is None:
            return {}
        scores = evaluate(model, val_items, dev)
        model.train()
        return {key: scores[key] for key in ("epe_es", "dice_es", "folding")}

    def save(history: History, position: dict[str, int]) -> None:
        save_model(model, run.output, training=settings, **_data_config(items, val_items),
                   history=history)
        state = {**position, "optimizer": optimizer.state_dict()}
        if discriminator is not None:
            save_model(discriminator, run.output, name=DISCRIMINATOR_NAME)
            state["discriminator_optimizer"] = d_optimizer.state_dict()
        save_training_state(run.output, state)

    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    optimizers = [optimizer] if d_optimizer is None else [optimizer, d_optimizer]
    return run.loop(stages, start, history, step, validate, save, optimizers, learning_rate)
