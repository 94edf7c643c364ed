"""Fast batched DLIR inference: every frame of a sequence against the reference frame at once.

The frames are brought to the model's working grid once (:mod:`.grid`), all (reference, frame t)
pairs go through the network in batches of ``chunk_size`` under ``torch.inference_mode()`` (mixed
precision on CUDA), and the fields come back to the input grid in mm. ``register_sequence(...,
method="dlir")`` builds its :class:`~..registration.RegistrationResult` on these fields and may
refine them by optimisation (``register_pair(..., initial=field)``).
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from ..registration.tracking import resolve_device
from ..sequence import EchoSequence
from .checkpoints import load_model
from .grid import prepare_frames, to_input_grid
from .model import DLIRModel


def autocast_context(device: torch.device, enabled: bool = True):
    """bfloat16 autocast on CUDA devices that support it, float16 on older ones; nothing on CPU
    (where low precision is slower and less accurate)."""
    if not enabled or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def as_model(model: DLIRModel | str | os.PathLike, device: torch.device) -> DLIRModel:
    """A model on ``device`` in eval mode: ``model`` itself, or loaded from a checkpoint path."""
    if not isinstance(model, DLIRModel):
        model = load_model(model, device)
        if not isinstance(model, DLIRModel):
            raise ValueError(f"{model}: is not a registration model checkpoint")
    return model.to(device).eval()


def predict_sequence_fields(model: DLIRModel | str | os.PathLike, seq: EchoSequence,
                            reference: int | None = None, device: str | torch.device = "auto",
                            chunk_size: int = 32, amp: bool = True) -> torch.Tensor:
    """Fields of every frame of ``seq`` against its reference frame, predicted in batches.

    Args:
        model: a :class:`~.model.DLIRModel` or the path of its checkpoint.
        seq: the sequence (any size and spacing: the model runs on its working grid).
        reference: the fixed frame; default ED when known, else 0.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        chunk_size: pairs per network batch; halved (and the batch repeated) whenever the GPU runs
            out of memory.
        amp: mixed precision (bfloat16 / float16) for the network on CUDA; ignored on the CPU.

    Returns:
        (T, 2, H, W) float32 mm on ``device``, on the reference frame's grid: reference point p is at
        p + u_t(p) in frame t (channel 0 = x / column, 1 = y / row). Exactly 0 at the reference.
    """
    reference = (seq.ed_index or 0) if reference is None else int(reference)
    if not 0 <= reference < seq.n_frames:
        raise ValueError(f"{seq.source}: reference frame {reference} is outside 0..{seq.n_frames - 1}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dev = resolve_device(device)
    model = as_model(model, dev)
    with torch.inference_mode():
        frames = torch.from_numpy(seq.frames).to(dev)[:, None]
        working, spacing = prepare_frames(frames, seq.spacing, model.working_size)
        fields = torch.zeros(seq.n_frames, 2, *seq.frame_shape, device=dev)
        others = [t for t in range(seq.n_frames) if t != reference]
        fixed = working[reference:reference + 1]
        while others:
            chunk = others[:chunk_size]
            try:
                with autocast_context(dev, amp):
                    field = model(fixed, working[chunk], spacing)
                fields[chunk] = to_input_grid(field, seq.frame_shape)
            except torch.cuda.OutOfMemoryError:
                if chunk_size == 1:
                    raise
                chunk_size //= 2  # and try this chunk again
                torch.cuda.empty_cache()
                continue
            others = others[chunk_size:]
    return fields
