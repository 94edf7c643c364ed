"""What the Slicer module runs, without Qt: settings -> registration (+ strain) of a sequence node.

:func:`analyse` reads the sequence node, gets the myocardium (when a source node is given), runs
:func:`~EchoRegistrationLib.registration.register_sequence` with progress and cancel callbacks,
and computes the strain. It changes nothing in the scene: the output nodes are made afterwards by
:func:`~.outputs.add_outputs`, so a cancelled or failed run leaves the scene as it was.
:func:`register_frame` registers one frame to the reference, for a quick look while scrubbing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import slicer

from ..registration import RegistrationCancelled, RegistrationResult, register_sequence
from ..registration.tracking import default_mode, resolve_device, tracked_frames
from ..sequence import EchoSequence
from ..strain import StrainResult, compute_strain
from ..strain.myocardium import DEFAULT_WALL_WIDTH
from ..strain.reference import tracking_reference
from .myocardium import myocardium_from_node
from .sequences import echo_sequence_from_node

METHODS = ("deformable", "affine", "rigid", "dlir")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RegistrationSettings:
    """How to register a sequence.

    Attributes:
        method: one of :data:`METHODS`.
        model: for ``method="dlir"``, an installed model's name (:func:`..dlir.shipped.list_models`) or
            a checkpoint path.
        refine: DLIR only: optimisation steps refining the predicted fields (0: none).
        reference: user-set reference frame; None: track from the file's ED, else the first
            frame, and take strain relative to ED (given, else detected:
            :mod:`~EchoRegistrationLib.strain.reference`).
        device: one of :data:`DEVICES`.
        chunk_size: frame pairs per batch; smaller chunks report progress (and let the GUI
            breathe) more often.
        options: further :func:`~EchoRegistrationLib.registration.register_pair` options.
    """

    method: str = "deformable"
    model: str = ""
    refine: int = 0
    reference: int | None = None
    device: str = "auto"
    chunk_size: int = 4
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.method == "dlir" and not self.model:
            raise ValueError("no DLIR model chosen: name an installed model or a checkpoint (a trained "
                             "model's .safetensors with its .json), or choose an optimisation method")

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``register_sequence`` (besides the sequence and callbacks)."""
        arguments: dict[str, Any] = {"method": self.method, "reference": self.reference,
                                     "device": self.device, "chunk_size": self.chunk_size,
                                     **self.options}
        if self.method == "dlir":
            arguments.update(model=self.model, refine=self.refine)
        return arguments


class InputRemoved(RegistrationCancelled):
    """The input sequence node left its scene (deleted, or the scene closed) during a run: the run
    stopped, and no outputs were made."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' was removed from the scene (or the scene was closed) during the "
                         "registration: no outputs were made")


@dataclass(eq=False)
class Analysis:
    """A registered sequence: its frames, the registration and (with a myocardium) the strain."""

    sequence: EchoSequence
    registration: RegistrationResult
    strain: StrainResult | None = None


def analyse(sequence_node: slicer.vtkMRMLNode, settings: RegistrationSettings,
            myocardium_node: slicer.vtkMRMLNode | None = None, *,
            wall_width: float = DEFAULT_WALL_WIDTH,
            progress: Callable[[int, int], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> Analysis:
    """Register every frame of ``sequence_node`` (a sequence or browser node) to the reference and,
    with a ``myocardium_node`` drawn on the reference frame, compute the strain.

    The myocardium is read before the registration starts, so a bad one fails at once. It is
    drawn on the tracked-from frame (:func:`~EchoRegistrationLib.strain.reference.tracking_reference`);
    strain is relative to ED (given, else detected) unless the settings set a reference.

    The run also stops when ``sequence_node`` leaves its scene (deleted, or the scene closed: the
    progress callback may let the application process events), since its outputs would have no scene.

    Raises:
        EchoDataError: unreadable sequence or myocardium.
        RegistrationCancelled: ``cancel()`` returned True.
        InputRemoved: ``sequence_node`` left its scene during the run.
    """
    seq = echo_sequence_from_node(sequence_node)
    myocardium = None if myocardium_node is None else \
        myocardium_from_node(myocardium_node, seq, wall_width=wall_width)
    name = sequence_node.GetName()

    def stop() -> bool:
        return sequence_node.GetScene() is None or (cancel is not None and cancel())

    arguments = {**settings.arguments(), "reference": tracking_reference(seq, settings.reference)}
    try:
        registration = register_sequence(seq, progress=progress, cancel=stop, **arguments)
    except RegistrationCancelled:
        if sequence_node.GetScene() is None:
            raise InputRemoved(name) from None
        raise
    if sequence_node.GetScene() is None:
        raise InputRemoved(name)
    strain = None if myocardium is None else compute_strain(seq, registration, myocardium,
                                                            reference=settings.reference)
    return Analysis(seq, registration, strain)


@dataclass(eq=False)
class FrameRegistration:
    """One frame registered to the reference: (H, W, 2) mm field and (H, W) warped frame."""

    sequence: EchoSequence
    frame: int
    reference: int
    displacement: np.ndarray
    warped: np.ndarray


def register_frame(sequence_node: slicer.vtkMRMLNode, frame: int,
                   settings: RegistrationSettings) -> FrameRegistration:
    """Register frame ``frame`` of ``sequence_node`` to the reference frame: directly by
    optimisation (one pair, quick), and by DLIR as :func:`analyse` would, through the frames
    between when it tracks sequentially (a model trained on near neighbours, or refinement; the
    network is fast, and such a model is not meant for distant pairs)."""
    seq = echo_sequence_from_node(sequence_node)
    reference = tracking_reference(seq, settings.reference)
    if not 0 <= frame < seq.n_frames:
        raise ValueError(f"{seq.source}: frame {frame} is outside 0..{seq.n_frames - 1}")
    if frame == reference:
        return FrameRegistration(seq, frame, reference, np.zeros((*seq.frame_shape, 2), np.float32),
                                 seq.frames[frame].copy())
    arguments = settings.arguments()
    mode = "to_reference"
    if settings.method == "dlir":  # loaded once here, to read how it tracks
        from ..dlir.inference import as_model

        arguments["model"] = as_model(settings.model, resolve_device(settings.device))
        mode = default_mode("dlir", settings.refine, arguments["model"].mode)
    frames = tracked_frames(frame, reference, mode)
    arguments["reference"] = frames.index(reference)
    result = register_sequence(seq.subsequence(frames), mode=mode, **arguments)
    moving = frames.index(frame)
    return FrameRegistration(seq, frame, reference, result.displacement[moving], result.warped[moving])
