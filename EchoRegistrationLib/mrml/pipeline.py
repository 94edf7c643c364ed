"""What the Slicer module runs, without Qt: node conversion around :mod:`..workflow`.

:func:`analyse` reads the sequence node and the myocardium node, runs
:func:`EchoRegistrationLib.workflow.analyse` (the same workflow as ``echoreg strain``) with progress and
cancel callbacks, and stops when the input node leaves its scene. It changes nothing in the scene:
the output nodes are made afterwards by :func:`~.outputs.add_outputs`, so a cancelled or failed run
leaves the scene as it was. :func:`register_frame` registers one frame to the reference, for a quick
look while scrubbing (:func:`EchoRegistrationLib.workflow.register_one_frame`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import slicer

from .. import workflow
from ..registration import RegistrationCancelled
from ..sequence import EchoSequence
from ..strain.myocardium import DEFAULT_WALL_WIDTH
from ..workflow import METHODS, Analysis, FrameRegistration  # noqa: F401  (re-exported; METHODS: the panel's choices)
from .myocardium import myocardium_from_node
from .sequences import echo_sequence_from_node

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RegistrationSettings(workflow.WorkflowSettings):
    """The workflow settings (:class:`EchoRegistrationLib.workflow.WorkflowSettings`) as the panel
    offers them: a device of :data:`DEVICES` and chunks of 4 pairs (progress, and the GUI breathing,
    more often). The myocardium comes from a node; ``es_frame``, the panel's ES frame (None: the
    sequence's ES, else detected), is set on the sequence read from the node (:meth:`sequence`), as
    :class:`~EchoRegistrationLib.workflow.Study` sets a file's.

    The defaults are the workflow's (:data:`~EchoRegistrationLib.workflow.DEFAULT_METHOD`, refined by
    :data:`~EchoRegistrationLib.workflow.DEFAULT_REFINE` steps), and an empty DLIR model ("" or None)
    is the default model (:data:`EchoRegistrationLib.dlir.shipped.SHIPPED_MODEL`), resolved where
    every front end's is: by the workflow (:meth:`~EchoRegistrationLib.workflow.WorkflowSettings.describe_model`)
    and the registration it calls."""

    chunk_size: int = 4
    es_frame: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.es_frame is not None and self.es_frame < 0:
            raise ValueError(f"es_frame is a frame index (from 0) or None, got {self.es_frame}")

    def sequence(self, sequence_node: slicer.vtkMRMLNode) -> EchoSequence:
        """The :class:`EchoSequence` of ``sequence_node`` (:func:`echo_sequence_from_node`), with the ES
        frame set here over the node's own (:meth:`EchoSequence.with_end_systole`).

        Raises:
            EchoDataError: an unreadable sequence, or an ES frame that is not one of its frames."""
        seq = echo_sequence_from_node(sequence_node)
        return seq if self.es_frame is None else seq.with_end_systole(self.es_frame, "ES frame")


class InputRemoved(RegistrationCancelled):
    """The input sequence node left its scene (deleted, or the scene closed) during a run: the run
    stopped, and no outputs were made."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' was removed from the scene (or the scene was closed) during the "
                         "registration: no outputs were made")


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
    seq = settings.sequence(sequence_node)
    myocardium = None if myocardium_node is None else \
        myocardium_from_node(myocardium_node, seq, wall_width=wall_width)
    name = sequence_node.GetName()

    def stop() -> bool:
        return sequence_node.GetScene() is None or (cancel is not None and cancel())

    try:
        analysis = workflow.analyse(seq, settings, myocardium, progress=progress, cancel=stop)
    except RegistrationCancelled:
        if sequence_node.GetScene() is None:
            raise InputRemoved(name) from None
        raise
    if sequence_node.GetScene() is None:
        raise InputRemoved(name)
    return analysis


def register_frame(sequence_node: slicer.vtkMRMLNode, frame: int,
                   settings: RegistrationSettings) -> FrameRegistration:
    """Register frame ``frame`` of ``sequence_node`` to the reference frame, tracked as
    :func:`analyse` would track it (:func:`EchoRegistrationLib.workflow.register_one_frame`)."""
    return workflow.register_one_frame(settings.sequence(sequence_node), frame, settings)
