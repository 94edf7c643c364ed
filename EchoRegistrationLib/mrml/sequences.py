"""Volume sequences in MRML and :class:`~EchoRegistrationLib.sequence.EchoSequence`, both ways.

A 2D echo cine in Slicer is a ``vtkMRMLSequenceNode`` whose items are single-slice volumes
(``vtkMRMLScalarVolumeNode``, or ``vtkMRMLVectorVolumeNode`` for colour frames) and whose index
values are the frame times. :func:`echo_sequence_from_node` reads one (or the master sequence of a
``vtkMRMLSequenceBrowserNode``) into an EchoSequence: IJK-to-RAS -> spacing, origin and LPS
direction; index values in s or ms -> frame times; colour frames -> BT.601 luma.
:func:`volume_sequence_node` writes frames on an EchoSequence's grid back as a sequence node, with
the index of an existing sequence (so a browser shows them frame by frame together) or the
EchoSequence's times.

ED / ES frames (and, when the user set ES, the file's: :data:`ES_IN_FILE_ATTRIBUTE`), the apical view and
the spacing flag travel as node attributes (:data:`ED_ATTRIBUTE`, ...), so a sequence written here and read
back keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..io.colour import rgb_to_luma
from ..io.seqnrrd import (ED_FRAME_KEY, ES_FRAME_KEY, ES_IN_FILE_KEY, SPACING_KNOWN_KEY, TIME_UNIT_SECONDS, VIEW_KEY,
                          format_number, phase_fields)
from ..sequence import EchoDataError, EchoSequence, geometry_from_ijk_to_ras

# the .seq.nrrd header fields Slicer keeps as attributes of the sequence node
ED_ATTRIBUTE, ES_ATTRIBUTE = ED_FRAME_KEY, ES_FRAME_KEY
# present only when ES was set by the user: the file's ES frame ("" when the file gave none)
ES_IN_FILE_ATTRIBUTE = ES_IN_FILE_KEY
VIEW_ATTRIBUTE = VIEW_KEY  # the view ("A4C", CAMUS "2CH" ...), the same field in a .seq.nrrd header
SPACING_KNOWN_ATTRIBUTE = SPACING_KNOWN_KEY  # the .seq.nrrd header field Slicer keeps as attribute
_GEOMETRY_TOLERANCE = 1e-4  # mm: frames whose IJK-to-RAS differ by more are not one cine


# ------------------------------------------------------------------------------ reading
def master_sequence(node: slicer.vtkMRMLNode) -> slicer.vtkMRMLSequenceNode:
    """The sequence node itself, or the master sequence of a sequence browser node."""
    if isinstance(node, slicer.vtkMRMLSequenceBrowserNode):
        master = node.GetMasterSequenceNode()
        if master is None:
            raise EchoDataError(node_source(node), "the sequence browser has no master sequence")
        return master
    if not isinstance(node, slicer.vtkMRMLSequenceNode):
        raise TypeError(f"expected a sequence or sequence browser node, got {node.GetClassName()}")
    return node


def echo_sequence_from_node(node: slicer.vtkMRMLNode) -> EchoSequence:
    """The EchoSequence of a volume sequence node (or of a browser's master sequence).

    Frames are (T, H, W) float32 from single-slice volumes; spacing, origin and direction come from
    the first frame's IJK-to-RAS (every frame must share it); frame times from the index values
    when the index unit is s or ms and the values increase, else unknown (``metadata["note"]``
    says why). ED / ES / view / spacing flag come from the node attributes when present.

    Raises:
        EchoDataError: empty sequence, items that are not image volumes, 3D or multi-component
            non-colour frames, frames of different size or geometry, or an ED / ES attribute that
            is not a frame index (message names the node).
    """
    sequence = master_sequence(node)
    source = node_source(sequence)
    n = sequence.GetNumberOfDataNodes()
    if n == 0:
        raise EchoDataError(source, "the sequence is empty")
    frames, matrices = [], []
    for i in range(n):
        volume = sequence.GetNthDataNode(i)
        frames.append(_frame_pixels(volume, i, source))
        matrix = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(matrix)
        matrices.append(slicer.util.arrayFromVTKMatrix(matrix))
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise EchoDataError(source, f"frames differ in size: {sorted(shapes)}")
    moved = [i for i, m in enumerate(matrices) if not np.allclose(m, matrices[0], atol=_GEOMETRY_TOLERANCE)]
    if moved:
        raise EchoDataError(source, f"frame {moved[0]} is placed differently from frame 0 "
                                    "(IJK-to-RAS differs); frames must share one grid")
    times, note = _frame_times(sequence)
    metadata = {"source": source, "sequence_index": f"{sequence.GetIndexName()} "
                                                     f"({sequence.GetIndexUnit() or 'no unit'})"}
    if note:
        metadata["note"] = note
    if str(sequence.GetAttribute(SPACING_KNOWN_ATTRIBUTE) or "true").lower() == "false":
        metadata["spacing_known"] = False
    if sequence.GetAttribute(VIEW_ATTRIBUTE):
        metadata["view"] = sequence.GetAttribute(VIEW_ATTRIBUTE)
    attributes = {name: sequence.GetAttribute(name) for name in (ED_ATTRIBUTE, ES_ATTRIBUTE, ES_IN_FILE_ATTRIBUTE)}
    phases, in_file = phase_fields(attributes, n, source)
    metadata.update(in_file)
    return EchoSequence(frames=np.stack(frames), frame_times=times, metadata=metadata, **phases,
                        **geometry_from_ijk_to_ras(matrices[0]))


def node_source(node: slicer.vtkMRMLNode) -> str:
    """How messages name a node: its class without "vtkMRML" and its name."""
    return f"{node.GetClassName().removeprefix('vtkMRML')} '{node.GetName()}'"


def _frame_pixels(volume: slicer.vtkMRMLNode, index: int, source: str) -> np.ndarray:
    """(H, W) float32 pixels of one single-slice volume (colour -> luma)."""
    if not isinstance(volume, slicer.vtkMRMLVolumeNode):
        raise EchoDataError(source, f"item {index} is a {volume.GetClassName()}, not an image volume")
    image = volume.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise EchoDataError(source, f"item {index} has no pixels")
    w, h, depth = image.GetDimensions()
    if depth != 1:
        raise EchoDataError(source, f"frames are 3D volumes with {depth} slices; only single-slice "
                                    "(2D) frames are supported")
    scalars = image.GetPointData().GetScalars()
    components = scalars.GetNumberOfComponents()
    pixels = numpy_support.vtk_to_numpy(scalars).reshape(h, w, components)
    if components == 1:
        return pixels[..., 0].astype(np.float32)
    if components in (3, 4):
        return rgb_to_luma(pixels)
    raise EchoDataError(source, f"frames hold {components}-component pixels; expected scalar or "
                                "RGB/RGBA colour frames")


def _frame_times(sequence: slicer.vtkMRMLSequenceNode) -> tuple[np.ndarray | None, str]:
    """(times in s, "") from a time index in s / ms with increasing numeric values, else
    (None, why not)."""
    unit = (sequence.GetIndexUnit() or "").strip().lower()
    factor = TIME_UNIT_SECONDS.get(unit)
    name = f"'{sequence.GetIndexName()}' ({unit or 'no unit'})"
    if factor is None:
        return None, f"sequence index {name} is not a time; frame times unknown"
    values = [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())]
    try:
        times = np.array([float(v) for v in values]) * factor
    except ValueError:
        return None, (f"sequence index values are not numeric ({' '.join(values[:3])} ...); "
                      "frame times unknown")
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        return None, "sequence index times are not strictly increasing; frame times unknown"
    return times, ""


# ------------------------------------------------------------------------------ writing
def image_data(pixels: np.ndarray) -> vtk.vtkImageData:
    """A single-slice vtkImageData of (H, W) scalars or (H, W, C) vectors (deep copy, same dtype)."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    components = 1 if pixels.ndim == 2 else pixels.shape[2]
    image = vtk.vtkImageData()
    image.SetDimensions(w, h, 1)
    scalars = numpy_support.numpy_to_vtk(pixels.reshape(h * w, components), deep=True)
    image.GetPointData().SetScalars(scalars)
    return image


def volume_node(frame: np.ndarray, seq: EchoSequence, node: slicer.vtkMRMLScalarVolumeNode | None = None
                ) -> slicer.vtkMRMLScalarVolumeNode:
    """``node`` (a new, scene-less scalar volume by default) holding the (H, W) ``frame`` on
    ``seq``'s grid as a single-slice volume: floating-point pixels as float32, integers (labels)
    as they are."""
    node = slicer.vtkMRMLScalarVolumeNode() if node is None else node
    pixels = np.asarray(frame)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(seq.ijk_to_ras()))
    node.SetAndObserveImageData(image_data(pixels.astype(np.float32) if pixels.dtype.kind == "f" else pixels))
    return node


def index_values(seq: EchoSequence, like: slicer.vtkMRMLSequenceNode | None = None) -> list[str]:
    """Index values for ``seq``'s frames: those of ``like`` (which must have as many items), else
    the frame times in s (frame numbers when the times are unknown)."""
    if like is not None:
        if like.GetNumberOfDataNodes() != seq.n_frames:
            raise ValueError(f"{node_source(like)} has {like.GetNumberOfDataNodes()} items, "
                             f"the data has {seq.n_frames} frames")
        return [like.GetNthIndexValue(i) for i in range(seq.n_frames)]
    if seq.frame_times_known:
        return [format_number(t) for t in seq.frame_times]
    return [str(i) for i in range(seq.n_frames)]


def new_sequence_node(scene: slicer.vtkMRMLScene, name: str, seq: EchoSequence,
                      like: slicer.vtkMRMLSequenceNode | None = None) -> slicer.vtkMRMLSequenceNode:
    """An empty sequence node in ``scene`` with the index of ``like`` (name, unit, type), else a
    time index in s (a unit-less "frame" index when the times are unknown), and ``seq``'s ED / ES /
    view / spacing flag as attributes."""
    node = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    if like is not None:
        node.SetIndexName(like.GetIndexName())
        node.SetIndexUnit(like.GetIndexUnit())
        node.SetIndexType(like.GetIndexType())
    elif seq.frame_times_known:
        node.SetIndexName("time")
        node.SetIndexUnit("s")
    else:
        node.SetIndexName("frame")
        node.SetIndexUnit("")
    for attribute, value in ((ED_ATTRIBUTE, seq.ed_index), (ES_ATTRIBUTE, seq.es_index),
                             (VIEW_ATTRIBUTE, seq.metadata.get("view"))):
        if value is not None:
            node.SetAttribute(attribute, str(value))
    if seq.es_set_by_user:
        node.SetAttribute(ES_IN_FILE_ATTRIBUTE, "" if seq.es_in_file is None else str(seq.es_in_file))
    if not seq.spacing_known:
        node.SetAttribute(SPACING_KNOWN_ATTRIBUTE, "false")
    return node


def volume_sequence_node(scene: slicer.vtkMRMLScene, name: str, seq: EchoSequence,
                         frames: np.ndarray | None = None,
                         like: slicer.vtkMRMLSequenceNode | None = None) -> slicer.vtkMRMLSequenceNode:
    """A new sequence node in ``scene`` of single-slice scalar volumes on ``seq``'s grid.

    Args:
        name: node name.
        seq: geometry, times and ED / ES of the frames.
        frames: (T, H, W) pixels (float32); default ``seq.frames``.
        like: a sequence whose index (name, unit, values) the new one copies, so that one browser
            shows both frame by frame; default: ``seq``'s frame times.
    """
    frames = seq.frames if frames is None else np.asarray(frames, dtype=np.float32)
    if frames.shape != seq.frames.shape:
        raise ValueError(f"frames of shape {frames.shape} do not match the sequence {seq.frames.shape}")
    values = index_values(seq, like)
    node = new_sequence_node(scene, name, seq, like)
    for value, frame in zip(values, frames):
        node.SetDataNodeAtValue(volume_node(frame, seq), value)
    return node


# ------------------------------------------------------------------------------ browsers
def find_browser(scene: slicer.vtkMRMLScene, sequence: slicer.vtkMRMLSequenceNode,
                 include_master: bool = True) -> slicer.vtkMRMLSequenceBrowserNode | None:
    """The first sequence browser in ``scene`` that plays ``sequence`` (as master too, unless
    ``include_master`` is False)."""
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    for i in range(browsers.GetNumberOfItems()):
        browser = browsers.GetItemAsObject(i)
        if browser.IsSynchronizedSequenceNode(sequence.GetID(), include_master):
            return browser
    return None


def browser_for(scene: slicer.vtkMRMLScene,
                sequence: slicer.vtkMRMLSequenceNode) -> slicer.vtkMRMLSequenceBrowserNode:
    """The browser that plays ``sequence``, created (with ``sequence`` as master) when none does.
    Creating one needs the Sequences module logic on the scene (always so inside Slicer)."""
    browser = find_browser(scene, sequence)
    if browser is None:
        browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{sequence.GetName()} browser")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    return browser


def selected_frame(browser: slicer.vtkMRMLSequenceBrowserNode,
                   sequence: slicer.vtkMRMLSequenceNode | None = None) -> int:
    """The frame (item number) the browser shows now: of its master sequence, or of ``sequence``, one
    of the sequences it plays (the item its proxy shows: the browser's index value looked up in
    ``sequence``, the nearest item when the values differ, as the browser itself does).

    Raises:
        EchoDataError: the browser shows no item (an empty sequence), or ``sequence`` has none for it."""
    item = int(browser.GetSelectedItemNumber())
    master = browser.GetMasterSequenceNode()
    if sequence is not None and master is not None and item >= 0 and sequence is not master:
        item = int(sequence.GetItemNumberFromIndexValue(master.GetNthIndexValue(item), False))
    if item < 0:
        raise EchoDataError(node_source(sequence if sequence is not None else browser),
                            "the sequence browser shows no frame of it")
    return item


def synchronise(browser: slicer.vtkMRMLSequenceBrowserNode,
                sequences: Sequence[slicer.vtkMRMLSequenceNode]) -> list[slicer.vtkMRMLNode]:
    """Play ``sequences`` in ``browser`` (their proxies follow the selected frame; edits of the
    proxies are not written back); returns the proxy nodes in the same order."""
    proxies = []
    for sequence in sequences:
        browser.AddSynchronizedSequenceNode(sequence)
        browser.SetSaveChanges(sequence, False)
        proxy = browser.GetProxyNode(sequence)
        if proxy is None:
            raise RuntimeError(f"{node_source(browser)} made no proxy node for {node_source(sequence)}: "
                               "is the Sequences module logic running on this scene?")
        proxies.append(proxy)
    return proxies


def unsynchronise(browser: slicer.vtkMRMLSequenceBrowserNode, sequence: slicer.vtkMRMLSequenceNode) -> None:
    """Stop playing ``sequence`` in ``browser`` and remove its proxy node from the scene."""
    proxy = browser.GetProxyNode(sequence)
    browser.RemoveSynchronizedSequenceNode(sequence.GetID())
    if proxy is not None:
        remove_node(proxy)


def remove_node(node: slicer.vtkMRMLNode) -> None:
    """Remove ``node`` and its display and storage nodes from its scene (a plain
    ``scene.RemoveNode`` leaves those behind)."""
    scene = node.GetScene()
    if scene is None:
        return
    helpers = []
    if isinstance(node, slicer.vtkMRMLDisplayableNode):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if isinstance(node, slicer.vtkMRMLStorableNode):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)
