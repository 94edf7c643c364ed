"""Enhancement of echo sequences by a trained low -> high quality generator (:func:`enhance_sequence`).

Frames are resampled to the model's pixel size (``pixel_mm`` in its config), translated in batches
under ``torch.inference_mode`` on CPU or GPU, resampled back onto the sequence's grid and masked to
its field of view; frames without signal (constant) are kept as they are, so that registration still
recognises and bridges them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..dlir.checkpoints import load_model, read_config
from ..dlir.shipped import ENHANCER_KIND, MODELS_DIR, ModelKindError, resolve_model
from ..device import resolve_device
from ..sequence import EchoDataError, EchoSequence, no_signal_frames
from ..spatial.pyramid import resample_image
from .data import frames_at_pixel_size
from .networks import ResnetGenerator, to_grey, translate


def resolve_enhancer(model: str | os.PathLike, folder: str | os.PathLike = MODELS_DIR) -> Path:
    """The checkpoint ``model`` stands for: an existing path as it is, else the installed enhancement
    model of that name in ``folder`` (the catalog, :func:`..dlir.shipped.list_models`).

    Raises:
        ModelKindError: (an :class:`EchoDataError`) ``model`` names an installed registration (DLIR)
            model instead.
        FileNotFoundError: neither; the message lists the installed enhancement models.
    """
    return resolve_model(model, folder, kind=ENHANCER_KIND)


def load_enhancer(model: str | os.PathLike | nn.Module,
                  device: torch.device | str = "cpu") -> ResnetGenerator:
    """The generator of an enhancement checkpoint (name, folder or file; :func:`resolve_enhancer`)
    with its ``pixel_mm`` attribute set from the config, in eval mode on ``device``; a generator
    module is returned as it is (it needs ``pixel_mm``).

    Raises:
        FileNotFoundError: no such checkpoint.
        ModelKindError: (an :class:`EchoDataError`) a checkpoint or installed name of another kind
            (a registration model).
        ValueError: a module that is not a generator with ``pixel_mm``.
    """
    if isinstance(model, nn.Module):
        generator = model.to(device).eval()
    else:
        path = resolve_enhancer(model)
        generator = load_model(path, device)
        if not isinstance(generator, ResnetGenerator):
            raise ModelKindError(str(model), f"a {type(generator).__name__} checkpoint, not an enhancement "
                                             "model (a ResnetGenerator from train_enhancer)")
        generator.pixel_mm = float(read_config(path)["pixel_mm"])
    if not isinstance(generator, ResnetGenerator) or not hasattr(generator, "pixel_mm"):
        raise ValueError(f"{model}: not an enhancement model (a ResnetGenerator with pixel_mm, from "
                         f"train_enhancer)")
    return generator


def enhance_frames(frames: np.ndarray, spacing: tuple[float, float], generator: ResnetGenerator,
                   device: torch.device, batch_size: int = 16) -> np.ndarray:
    """(T, H, W) grey 0..255 frames -> (T, H, W) float32 0..255 enhanced frames on the same grid
    (not masked)."""
    out = np.empty(np.shape(frames), dtype=np.float32)
    with torch.inference_mode():
        for first in range(0, len(frames), batch_size):
            batch = frames_at_pixel_size(frames[first:first + batch_size], spacing, generator.pixel_mm)
            enhanced = to_grey(translate(generator, batch.to(device)))
            out[first:first + batch_size] = resample_image(enhanced, out.shape[-2:])[:, 0].cpu().numpy()
    return out


def require_pixel_size(seq: EchoSequence) -> None:
    """Check that ``seq``'s pixel size is known: an enhancer works on its own mm grid, so a
    placeholder spacing would show it the image at an arbitrary scale.

    Raises:
        EchoDataError: naming ``seq.source``: the pixel size is unknown (``spacing_known`` False).
    """
    if not seq.spacing_known:
        raise EchoDataError(seq.source, f"pixel size unknown: enhancement needs the pixel size in mm (the model "
                                        f"works on a mm grid; {seq.spacing} is a placeholder); set the spacing in "
                                        "the file (e.g. a NIfTI or NRRD header) or leave enhancement off")


def enhance_sequence(seq: EchoSequence, model: str | os.PathLike | nn.Module, *,
                     device: str | torch.device = "auto", batch_size: int = 16) -> EchoSequence:
    """A copy of ``seq`` with enhanced frames (module docstring).

    Args:
        seq: the sequence, (T, H, W) frames 0..255.
        model: an installed enhancement model's name, a checkpoint (``train_enhancer``'s output
            folder or its ``model.safetensors``) or a loaded generator (:func:`load_enhancer`).
        device: "auto", "cpu", "cuda" ...
        batch_size: frames per network call.

    Returns:
        The sequence with (T, H, W) float32 0..255 enhanced frames, 0 outside the field of view
        (``seq.mask``, else the pixels nonzero in some frame); everything else unchanged;
        ``metadata["enhancement"]`` names the model.

    Raises:
        EchoDataError: the pixel size of ``seq`` is unknown (:func:`require_pixel_size`), checked
            before the model is read.
        FileNotFoundError, ModelKindError: as :func:`load_enhancer`.
    """
    require_pixel_size(seq)
    dev = resolve_device(device)
    generator = load_enhancer(model, dev)
    frames = enhance_frames(seq.frames, seq.spacing, generator, dev, batch_size)
    inside = np.asarray(seq.mask, dtype=bool) if seq.mask is not None else (seq.frames > 0).any(axis=0)
    frames = np.where(inside, frames, 0.0).astype(np.float32)
    kept = no_signal_frames(seq.frames, seq.mask)
    frames[kept] = seq.frames[kept]
    name = str(model) if not isinstance(model, nn.Module) else type(model).__name__
    return dataclasses.replace(seq, frames=frames, metadata={**seq.metadata, "enhancement": name})
