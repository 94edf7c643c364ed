"""Fast batched DLIR inference: every frame pair of a sequence through the network at once.

The frames are brought to the model's working grid once (:mod:`.grid`), all (fixed, moving) frame
pairs go through the network in batches of ``chunk_size`` under ``torch.inference_mode()`` (mixed
precision on CUDA and on CPUs with AMX, :func:`mixed_precision`), and the fields come back to the input
grid in mm (for a model with a correction stage, through the stage's grid: composed and corrected there,
then brought to the input grid once).
Pairs are every frame against the reference ("to_reference") or each frame against its neighbour
towards the reference ("sequential", then composed). ``register_sequence(..., method="dlir")`` builds its
:class:`~..registration.RegistrationResult` on these fields and may refine them by optimisation.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from ..device import resolve_device
from ..memory import keep_freed_memory
from ..spatial.pairs import chain_to_reference, check_anchors, fixed_indices, frame_pairs
from ..spatial.pyramid import resample_field
from ..sequence import EchoSequence
from .checkpoints import CheckpointError, load_model, weights_path
from .grid import INTENSITY_WINDOW, prepare_frames, to_input_grid
from .model import DLIRModel


@functools.cache
def cpu_has_amx() -> bool:
    """True on CPUs with AMX tile instructions (Intel Xeon of the Sapphire Rapids generation and later)
    that the operating system lets this process use, where oneDNN runs bfloat16 convolutions in hardware.
    There the shipped model's whole registration call on 20 frames runs about 1.4x faster in bfloat16 than in
    float32 (its convolutions 1.75x), with the same accuracy on validation data to a few thousandths of a
    millimetre (docs/generalisation.md, "Speed on the CPU"). Other CPUs keep float32: bfloat16 was not measured on one
    here. torch 2.13's probes are private (``torch.cpu._is_amx_tile_supported`` reads the CPU's flags,
    ``torch.cpu._init_amx`` asks the kernel for the tile state); without them: False."""
    supported, enabled = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_init_amx"))
    return bool(supported is not None and enabled is not None and supported() and enabled())


def mixed_precision(device: torch.device, enabled: bool = True, cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype of the networks on ``device``: None (float32) unless ``enabled``; bfloat16 on
    CUDA devices that support it, float16 on older ones; on the CPU bfloat16 when ``cpu`` and the CPU has
    AMX (:func:`cpu_has_amx`), else None. Inference passes ``cpu=True``; training keeps float32 on the
    CPU (its bfloat16 gradients were never validated)."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu and device.type == "cpu" and cpu_has_amx() else None


def network_precision(device: torch.device, amp: bool = True) -> str:
    """The name of the dtype inference runs the networks in on ``device`` ("bfloat16", "float16" or
    "float32"; :func:`mixed_precision` with ``cpu=True``)."""
    return str(mixed_precision(device, amp, cpu=True) or torch.float32).removeprefix("torch.")


def autocast_context(device: torch.device, enabled: bool = True, cpu: bool = False):
    """Autocast to :func:`mixed_precision`'s dtype. Where that is None (float32), nothing on the CPU, and on
    CUDA cuDNN's convolutions kept in float32: torch lets them use TF32 by default (10-bit mantissas on
    Ampere and later GPUs), which a run recorded as float32 must not. The field heads and the field
    arithmetic stay float32 under autocast (:func:`.networks.float32_region`)."""
    dtype = mixed_precision(device, enabled, cpu)
    if dtype is not None:
        return torch.autocast(device.type, dtype=dtype)
    return _cudnn_convolutions_in_float32() if device.type == "cuda" else nullcontext()


@contextmanager
def _cudnn_convolutions_in_float32() -> Iterator[None]:
    """cuDNN's convolutions in IEEE float32 (``torch.backends.cudnn.conv.fp32_precision``, torch's TF32
    setting for them, "tf32" by default), restored on exit."""
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = before


LOADED_MODELS = 4  # checkpoints kept loaded between calls (per file version and device)


def _file_stamp(path: Path) -> tuple[int, int, int, int]:
    """(inode, modification time, status change time (ns), size in bytes) of ``path``; zeros when it
    is absent. Saving a checkpoint replaces its files (a new inode); a copy over it (``cp``, even
    ``cp -p``) changes the status change time, which no user tool sets back."""
    try:
        stat = path.stat()
    except OSError:
        return 0, 0, 0, 0
    return stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size


@functools.lru_cache(maxsize=LOADED_MODELS)
def _loaded_model(weights: Path, stamps: tuple[tuple[int, ...], ...], device: torch.device) -> DLIRModel:
    """The registration model of the checkpoint ``weights`` on ``device``, read once per version of
    its files (``stamps``: :func:`_file_stamp` of the weights and the config)."""
    loaded = load_model(weights, device)
    if not isinstance(loaded, DLIRModel):
        raise CheckpointError(str(weights), f"a {type(loaded).__name__} checkpoint, not a registration model")
    return loaded


def as_model(model: DLIRModel | str | os.PathLike, device: torch.device) -> DLIRModel:
    """A model on ``device`` in eval mode: ``model`` itself, or loaded from a checkpoint (path or
    installed model name, :func:`.shipped.resolve_model`).

    Loaded checkpoints are kept (the last :data:`LOADED_MODELS`, keyed by file, inode, modification
    time, size and device), so calling the registration frame after frame does not read the file each
    time, and a checkpoint rewritten by training or copied over is read again. The model returned
    is shared between callers: use it for inference only, and do not move it to another device or
    change its attributes (``passes``): load a private copy with :func:`.checkpoints.load_model`.

    Raises:
        FileNotFoundError: no such checkpoint. CheckpointError: not a usable registration model.
    """
    if isinstance(model, DLIRModel):
        return model.to(device).eval()
    weights = weights_path(model)
    stamps = (_file_stamp(weights), _file_stamp(weights.with_suffix(".json")))
    return _loaded_model(weights.resolve(), stamps, torch.device(device)).eval()


def _chunked(pairs: list[tuple[int, int]], chunk_size: int, dev: torch.device, shape: tuple[int, int],
             predict) -> tuple[torch.Tensor | None, int]:
    """(P, 2, H, W) float32 fields of ``pairs`` (None when there are none) and the chunk size that
    held: ``predict(chunk, done)`` gives those of the chunk of pairs from ``done`` on, chunk by chunk
    of ``chunk_size``, halved (and the chunk repeated) whenever the GPU runs out of memory; a later
    pass over the same pairs starts from the size returned instead of failing again."""
    fields = None
    done = 0
    while done < len(pairs):
        chunk = pairs[done:done + chunk_size]
        try:
            out = predict(chunk, done).float()  # float32 also under autocast
            if len(chunk) == len(pairs):
                fields = out  # one batch: its fields as they are, not copied
            else:
                if fields is None:
                    fields = torch.empty(len(pairs), 2, *shape, device=dev)
                fields[done:done + len(chunk)] = out
        except torch.cuda.OutOfMemoryError:
            if chunk_size == 1:
                raise
            chunk_size //= 2  # and try this chunk again
            torch.cuda.empty_cache()
            continue
        done += len(chunk)
    return fields, chunk_size


def _network_fields(model: DLIRModel, seq: EchoSequence, frames: torch.Tensor, pairs: list[tuple[int, int]],
                    shape: tuple[int, int], chunk_size: int, amp: bool,
                    flip_average: bool) -> tuple[torch.Tensor, int]:
    """(P, 2, *shape) float32 mm fields of ``pairs`` from the model's network (no correction
    stage), predicted on its working grid and resampled to a grid of ``shape`` over the frames'
    extent, and the chunk size that held (:func:`_chunked`); ``frames`` are the (T, 1, H, W) raw
    frames of ``seq`` on the model's device."""
    # a subsequence cut for a few frames keeps its sequence's window (workflow.register_one_frame)
    working, spacing = prepare_frames(frames, seq.spacing, model.working_size, seq.metadata.get(INTENSITY_WINDOW))
    predict = model.mirror_averaged if flip_average else model

    def predicted(chunk: list[tuple[int, int]], done: int) -> torch.Tensor:
        with autocast_context(frames.device, amp, cpu=True):
            field = predict(working[fixed_indices(chunk)], working[[m for _, m in chunk]], spacing)
        return resample_field(field, shape)

    return _chunked(pairs, chunk_size, frames.device, shape, predicted)


def _stage_grid(model: DLIRModel, seq: EchoSequence, frames: torch.Tensor,
                correct: bool) -> tuple[torch.Tensor | None, tuple[float, float]]:
    """The frames on the grid where the fields are composed and corrected, and its (sx, sy) mm:
    the correction stage's grid (:func:`.grid.prepare_frames`, normalised as for the network: the
    sequence's stored intensity window, else its percentiles on this grid) when the model has a
    stage and ``correct``; else None and the input grid's spacing."""
    if model.correction is None or not correct:
        return None, seq.spacing
    return prepare_frames(frames, seq.spacing, model.correction.working_size, seq.metadata.get(INTENSITY_WINDOW))


def _corrected(model: DLIRModel, fine: torch.Tensor, spacing: tuple[float, float], pairs: list[tuple[int, int]],
               fields: torch.Tensor, chunk_size: int, amp: bool) -> torch.Tensor:
    """(P, 2, h, w) mm ``fields`` of (fixed, moving) ``pairs`` on the correction stage's grid
    (``fine``: the (T, 1, h, w) frames there, ``spacing`` its mm) through the stage
    (:class:`.correction.FieldCorrection`: each corrected against its moving frame warped by it)."""
    def corrected(chunk: list[tuple[int, int]], done: int) -> torch.Tensor:
        with autocast_context(fine.device, amp, cpu=True):
            return model.correction(fine[fixed_indices(chunk)], fine[[m for _, m in chunk]],
                                    fields[done:done + len(chunk)], spacing)

    return _chunked(pairs, chunk_size, fine.device, tuple(fine.shape[-2:]), corrected)[0]


def _prepared(model: DLIRModel | str | os.PathLike, device: str | torch.device,
              chunk_size: int) -> tuple[DLIRModel, torch.device]:
    """The model on its device, ready for inference, and that device.

    Raises:
        ValueError: ``chunk_size`` < 1, or an unknown device.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dev = resolve_device(device)
    model = as_model(model, dev)
    keep_freed_memory()
    return model, dev


def _predicted(model: DLIRModel | str | os.PathLike, seq: EchoSequence, network_pairs: list[tuple[int, int]],
               pairs: list[tuple[int, int]], device: str | torch.device, chunk_size: int, amp: bool,
               flip_average: bool, correct: bool,
               combine: Callable[[torch.Tensor, tuple[float, float]], torch.Tensor] | None = None) -> torch.Tensor:
    """(P, 2, H, W) float32 mm fields of ``pairs`` on the input grid: the network's fields of the
    (non-empty) ``network_pairs``, made the fields of ``pairs`` by ``combine(fields, spacing)`` (None:
    they are the same pairs), on the correction stage's grid and corrected there when the model has
    a stage and ``correct`` (else on the input grid), then resampled to the input grid once."""
    model, dev = _prepared(model, device, chunk_size)
    with torch.inference_mode():
        frames = torch.from_numpy(seq.frames).to(dev)[:, None]
        fine, spacing = _stage_grid(model, seq, frames, correct)
        shape = seq.frame_shape if fine is None else tuple(fine.shape[-2:])
        fields, chunk_size = _network_fields(model, seq, frames, network_pairs, shape, chunk_size, amp,
                                             flip_average)
        if combine is not None:
            fields = combine(fields, spacing)
        if fine is None:
            return fields
        # the stage starts from the chunk the network's memory allowed
        return to_input_grid(_corrected(model, fine, spacing, pairs, fields, chunk_size, amp), seq.frame_shape)


def predict_pair_fields(model: DLIRModel | str | os.PathLike, seq: EchoSequence,
                        pairs: list[tuple[int, int]], device: str | torch.device = "auto",
                        chunk_size: int = 32, amp: bool = True,
                        flip_average: bool = False, correct: bool = True) -> torch.Tensor:
    """Fields of (fixed, moving) frame pairs of ``seq``, predicted in batches.

    The network's fields are resampled to the input grid, or, for a model with a correction
    stage (:class:`.correction.FieldCorrection`), to the stage's grid, corrected there (each
    against its moving frame warped by it) and then resampled to the input grid: one resampling
    to full resolution per field.

    Args:
        model: a :class:`~.model.DLIRModel` or the path of its checkpoint.
        seq: the sequence (any size and spacing: the model runs on its working grid).
        pairs: (fixed frame, moving frame) indices.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        chunk_size: pairs per network batch; halved (and the batch repeated) whenever the GPU runs
            out of memory.
        amp: mixed precision for the networks (:func:`mixed_precision`: bfloat16 / float16 on CUDA,
            bfloat16 on CPUs with AMX; float32 elsewhere and when False).
        flip_average: average with the mirrored pair's field (:meth:`.model.DLIRModel.mirror_averaged`;
            the correction stage runs once, on the averaged field).
        correct: run the model's correction stage, when it has one.

    Returns:
        (P, 2, H, W) float32 mm on ``device``, each on its fixed frame's grid: point p of the fixed
        frame is at p + u(p) in the moving frame (channel 0 = x / column, 1 = y / row).
    """
    if not pairs:
        dev = _prepared(model, device, chunk_size)[1]
        return torch.zeros(0, 2, *seq.frame_shape, device=dev)
    return _predicted(model, seq, pairs, pairs, device, chunk_size, amp, flip_average, correct)


def predict_anchored_fields(model: DLIRModel | str | os.PathLike, seq: EchoSequence,
                            pairs: list[tuple[int, int]], anchors: Mapping[int, int],
                            device: str | torch.device = "auto", chunk_size: int = 32, amp: bool = True,
                            flip_average: bool = False) -> tuple[torch.Tensor, int | None]:
    """Fields of to-reference ``pairs`` (all with one fixed frame, the reference) predicted through one
    anchor frame, as :func:`~..spatial.pairs.systole_anchors` places it in systole: a frame the
    ``anchors`` map to the anchor is registered to the anchor and its field composed with the anchor's
    own, so that no network call spans the whole of a large systolic motion; as many network calls as
    :func:`predict_pair_fields`. A model's correction stage corrects the composed fields, each
    against the reference; the fields are composed and corrected on the stage's grid (on the input
    grid without a stage) and resampled to the input grid once.

    Falls back to :func:`predict_pair_fields` (and returns no anchor frame) when no frame of ``pairs``
    goes through an anchor (ES unknown or not after the reference), when the pairs do not share one
    fixed frame, or when the anchor frame has no pair (a frame skipped for having no signal).

    Args:
        model, seq, pairs, device, chunk_size, amp, flip_average: as for :func:`predict_pair_fields`.
        anchors: frame -> the frame it is registered to: the reference, or one anchor frame that is
            itself registered to the reference (:func:`~..spatial.pairs.systole_anchors`); frames not
            in it go to the reference.

    Returns:
        ((P, 2, H, W) float32 mm on ``device``, pair p's field on the reference grid as
        :func:`predict_pair_fields`; the anchor frame used, or None when no frame went through one).

    Raises:
        ValueError: ``anchors`` that :func:`~..spatial.pairs.check_anchors` refuses.
    """
    reference = pairs[0][0] if pairs else 0
    anchors = check_anchors(anchors, seq.n_frames, reference)
    via = {t: anchors.get(t, reference) for _, t in pairs}
    used = set(via.values()) - {reference}
    shared = all(f == reference for f, _ in pairs)
    if not used or not shared or not used <= set(via):
        return predict_pair_fields(model, seq, pairs, device, chunk_size, amp, flip_average), None
    registered = [(via[t], t) for t in via]

    def through_anchor(fields: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
        """Each frame's field: its own to the anchor, then the anchor's to the frame."""
        return chain_to_reference(fields, registered, seq.n_frames, reference, "sequential", spacing)[list(via)]

    # the correction stage, if any, corrects each composed field against the reference
    fields = _predicted(model, seq, registered, pairs, device, chunk_size, amp, flip_average, True, through_anchor)
    return fields, used.pop()


def predict_sequence_fields(model: DLIRModel | str | os.PathLike, seq: EchoSequence,
                            reference: int | None = None, device: str | torch.device = "auto",
                            chunk_size: int = 32, amp: bool = True,
                            mode: str | None = None, flip_average: bool = False) -> torch.Tensor:
    """Fields of every frame of ``seq`` against its reference frame, predicted in batches.

    Args:
        model, device, chunk_size, amp, flip_average: as for :func:`predict_pair_fields`.
        seq: the sequence.
        reference: the fixed frame; default ED when known, else 0.
        mode: "to_reference" (each frame against the reference) or "sequential" (each frame
            against its neighbour towards the reference, fields composed outwards); default the
            mode the model was trained for (:attr:`.model.DLIRModel.mode`).

    Returns:
        (T, 2, H, W) float32 mm on ``device``, on the reference frame's grid: reference point p is at
        p + u_t(p) in frame t (channel 0 = x / column, 1 = y / row). Exactly 0 at the reference.
    """
    reference = (seq.ed_index or 0) if reference is None else int(reference)
    if not 0 <= reference < seq.n_frames:
        raise ValueError(f"{seq.source}: reference frame {reference} is outside 0..{seq.n_frames - 1}")
    dev = resolve_device(device)
    model = as_model(model, dev)
    mode = mode or model.mode
    pairs = frame_pairs(seq.n_frames, reference, mode)
    fields = predict_pair_fields(model, seq, pairs, dev, chunk_size, amp, flip_average)
    with torch.inference_mode():
        return chain_to_reference(fields, pairs, seq.n_frames, reference, mode, seq.spacing)
