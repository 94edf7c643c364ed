"""Training of the enhancement CycleGAN (EchoGANhance): :func:`train_enhancer`.

Same style as the DLIR trainers (:mod:`..dlir.training`, whose loop it shares): seeded, resumable
from its output folder, a progress bar, a checkpoint and a history row per epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..dlir.checkpoints import load_model, save_model, save_training_state
from ..dlir.data import describe_source
from ..dlir.training import Callback, History, Stage, _processes, _Run
from .data import DegradedSequences, FrameSampler, frames_at_pixel_size, open_domain
from .networks import PatchGAN70, ResnetGenerator, initialise, translate
from .objectives import (EnhancerWeights, discriminator_adversarial, generator_adversarial, ssim,
                         structure_terms)

PIXEL_MM = 1.1            # model grid: about the DLIR working grid (128 rows over a 140-160 mm sector)
BETAS = (0.5, 0.999)      # CycleGAN's Adam
# Checkpoint names in the output folder: model = the low -> high generator (what enhancement uses).
NETWORKS = ("model", "generator_high_to_low", "discriminator_high", "discriminator_low")
VALIDATION_FRAMES = 2     # frames per validation sequence (ED and the last)
SIMULATED_SOURCES = {"simulator", "simulator (degraded)"}
PROJECT_LICENCE = "BSD-3-Clause"


def _validation_pairs(spec: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(degraded, clean) (T, 1, h, w) frames on the model grid of each validation sequence."""
    source = open_domain(spec)
    if not isinstance(source, DegradedSequences):
        raise ValueError("validation needs degraded simulated sequences with their clean truth "
                         "(a \"degraded:START-STOP\" spec)")
    pairs = []
    for k in range(len(source)):
        degraded, clean = source.pair(k)
        index = [0, degraded.sequence.n_frames - 1][:VALIDATION_FRAMES]
        pairs.append(tuple(frames_at_pixel_size(item.sequence.frames[index], item.sequence.spacing, PIXEL_MM)
                           for item in (degraded, clean)))
    return pairs


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """dB, images in -1..1 (peak-to-peak 2)."""
    return float(10.0 * torch.log10(4.0 / F.mse_loss(a, b).clamp(min=1e-12)))


def _default_licence(descriptions: list[Any]) -> str:
    """BSD-3-Clause when every described source is the simulator, else unknown."""
    flat = [d for item in descriptions for d in (item if isinstance(item, list) else [item])]
    simulated = all(isinstance(d, dict) and d.get("source") in SIMULATED_SOURCES for d in flat)
    return PROJECT_LICENCE if simulated else "unknown (see the model card)"


def train_enhancer(low: Any, high: Any, output: str | os.PathLike, *, validation: Any = None,
                   iterations: int = 2000, crop: int = 80, width: int = 16, blocks: int = 6,
                   discriminator_channels: tuple[int, ...] = (64, 128, 256, 512),
                   learning_rate: float = 2e-4, weights: EnhancerWeights | dict[str, float] | None = None,
                   licence: str | None = None, iterations_per_epoch: int = 100, seed: int = 0,
                   device: str | torch.device = "auto",
                   resume: bool = True, progress: bool = True, callback: Callback | None = None) -> History:
    """Train the enhancement CycleGAN on unpaired frames of a low- and a high-quality domain.

    Two :class:`~.networks.ResnetGenerator` (low -> high, high -> low) and two
    :class:`~.networks.PatchGAN70` discriminators; least-squares adversarial losses (the
    discriminators' weighted by one half), cycle consistency, identity, and the structure terms
    SSIM and illumination consistency between each generator's input and output
    (:mod:`.objectives`); Adam (``learning_rate``, beta1 0.5), batch 1 (one crop of one frame of
    each domain per step). The step size decays by a cosine within the run (as in DLIR training;
    CycleGAN decays linearly over its second half).

    Args:
        low, high: the two domains: source specs (``"degraded:START-STOP"``, ``"sim:START-STOP"``,
            a folder such as the CAMUS root; :mod:`.data`), lists of specs or sequences of items.
            Frames of real data (CAMUS) carry their licence into the model (see the model card).
        output: checkpoint folder: ``model.safetensors`` / ``.json`` (the low -> high generator,
            what :func:`.inference.enhance_sequence` uses) and the other three networks, plus
            ``training_state.pt``.
        validation: optional ``"degraded:START-STOP"`` spec (seeds never used in training): each
            epoch scores the enhanced frames against their clean truth.
        iterations, crop: steps and crop side (pixels of the model grid, :data:`PIXEL_MM` mm).
        width, blocks: the generators (:class:`~.networks.ResnetGenerator`).
        discriminator_channels: the PatchGAN widths (default C64-C128-C256-C512).
        learning_rate: Adam step size of generators and discriminators.
        weights: :class:`~.objectives.EnhancerWeights` or a {term: weight} mapping.
        licence: the terms of the weights, written to the config (``licence``); default
            BSD-3-Clause when both domains are the project's simulator, else "unknown (see the
            model card)": real data bring their own terms (CAMUS: CC BY-NC-SA 4.0).
        iterations_per_epoch, seed, device, resume, progress, callback: as for
            :func:`..dlir.training.train_vae`.

    Returns:
        The history: per epoch the mean ``loss`` (generators' total), ``adversarial``, ``cycle``,
        ``identity``, ``ssim`` (1 - SSIM), ``illumination`` and ``discriminator``; with validation
        ``val_psnr`` / ``val_ssim`` of enhanced against clean frames and ``val_psnr_degraded`` /
        ``val_ssim_degraded`` of the degraded input (model grid).
    """
    processes = _processes(device)
    if processes.world_size != 1:
        raise ValueError("train_enhancer runs in one process (batch 1); do not launch it under torchrun")
    dev = processes.device
    low_items, high_items = open_domain(low), open_domain(high)
    loss_weights = EnhancerWeights.of(weights)
    settings = {"iterations": int(iterations), "crop": int(crop), "pixel_mm": PIXEL_MM,
                "learning_rate": float(learning_rate), "betas": list(BETAS), "batch_size": 1,
                "loss": loss_weights.settings(), "iterations_per_epoch": int(iterations_per_epoch),
                "seed": int(seed), "world_size": 1}
    run = _Run("enhancer", Path(output), settings, int(seed), int(iterations_per_epoch), processes,
               progress, callback)
    torch.manual_seed(seed)
    networks = [initialise(ResnetGenerator(width, blocks)), initialise(ResnetGenerator(width, blocks)),
                initialise(PatchGAN70(discriminator_channels)), initialise(PatchGAN70(discriminator_channels))]
    g_low_high, g_high_low, d_high, d_low = (n.to(dev) for n in networks)
    g_optimizer = torch.optim.Adam([*g_low_high.parameters(), *g_high_low.parameters()], learning_rate, betas=BETAS)
    d_optimizer = torch.optim.Adam([*d_high.parameters(), *d_low.parameters()], learning_rate, betas=BETAS)
    state, history = run.resume_state(resume, g_low_high.architecture())
    if state is not None:
        for name, network in zip(NETWORKS, (g_low_high, g_high_low, d_high, d_low)):
            network.load_state_dict(load_model(run.output / f"{name}.safetensors", dev).state_dict())
        g_optimizer.load_state_dict(state["generator_optimizer"])
        d_optimizer.load_state_dict(state["discriminator_optimizer"])
    low_frames, high_frames = FrameSampler(low_items, PIXEL_MM, crop), FrameSampler(high_items, PIXEL_MM, crop)
    val_pairs = None if validation is None else _validation_pairs(validation)
    w = loss_weights

    def step(stage: Stage, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        real_low, real_high = low_frames.sample(rng, dev), high_frames.sample(rng, dev)
        for network in (g_low_high, g_high_low, d_high, d_low):
            network.train()
        d_high.requires_grad_(False)
        d_low.requires_grad_(False)
        fake_high, fake_low = g_low_high(real_low), g_high_low(real_high)
        adversarial = generator_adversarial(d_high(fake_high)) + generator_adversarial(d_low(fake_low))
        cycle = (g_high_low(fake_high) - real_low).abs().mean() + (g_low_high(fake_low) - real_high).abs().mean()
        identity = ((g_low_high(real_high) - real_high).abs().mean()
                    + (g_high_low(real_low) - real_low).abs().mean())
        forward, backward = structure_terms(real_low, fake_high), structure_terms(real_high, fake_low)
        terms = {"adversarial": adversarial, "cycle": cycle, "identity": identity,
                 "ssim": forward["ssim"] + backward["ssim"],
                 "illumination": forward["illumination"] + backward["illumination"]}
        loss = sum(getattr(w, name) * value for name, value in terms.items())
        g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        g_optimizer.step()
        d_high.requires_grad_(True)
        d_low.requires_grad_(True)
        d_loss = (discriminator_adversarial(d_high, real_high, fake_high)
                  + discriminator_adversarial(d_low, real_low, fake_low))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()},
                "discriminator": d_loss.detach()}

    def validate(stage: Stage) -> dict[str, Any]:
        if val_pairs is None:
            return {}
        g_low_high.eval()
        scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_degraded": [], "ssim_degraded": []}
        with torch.inference_mode():
            for degraded, clean in val_pairs:
                degraded, clean = degraded.to(dev), clean.to(dev)
                enhanced = translate(g_low_high, degraded)
                for suffix, image in (("", enhanced), ("_degraded", degraded)):
                    scores["psnr" + suffix].append(_psnr(image, clean))
                    scores["ssim" + suffix].append(float(ssim(image, clean)))
        return {key: float(np.mean(values)) for key, values in scores.items()}

    data = {"low": describe_source(low_items), "high": describe_source(high_items),
            "validation": None if validation is None else str(validation)}
    licence = licence or _default_licence([data["low"], data["high"]])

    def save(history: History, position: dict[str, int]) -> None:
        for name, network in zip(NETWORKS, (g_low_high, g_high_low, d_high, d_low)):
            extra = {"training": settings, "data": data, "history": history,
                     "pixel_mm": PIXEL_MM, "licence": licence} if name == "model" else {}
            save_model(network, run.output, name=name, **extra)
        save_training_state(run.output, {**position, "generator_optimizer": g_optimizer.state_dict(),
                                         "discriminator_optimizer": d_optimizer.state_dict()})

    start = (state["stage"], state["epoch"]) if state is not None else (0, 0)
    return run.loop([Stage(int(crop), int(iterations))], start, history, step, validate, save,
                    [g_optimizer, d_optimizer], learning_rate)

