"""The reference-frame (ED) myocardium from a segmentation, a labelmap or three markups points.

* Segmentation node: segments are recognised by name ("myocardium"; "left atrium", "LA"; "LV
  cavity", "LV", "blood pool", "endocardium"), else by a CAMUS label value (1 LV cavity,
  2 myocardium, 3 left atrium, as a labelmap imported into a segmentation keeps). They are
  rasterised on the frame grid, so a segmentation drawn on any geometry works.
* Labelmap volume node: CAMUS codes (1 LV cavity, 2 myocardium, 3 left atrium) on the frame grid;
  a labelmap on another grid goes through a segmentation to be resampled.
* Markups point list: exactly three points, in order: mitral annulus, apex, mitral annulus;
  the myocardium is a template band of ``wall_width`` mm outside them
  (:func:`~EchoRegistrationLib.strain.myocardium_from_landmarks`).

Each returns a :class:`~EchoRegistrationLib.strain.Myocardium` on the EchoSequence's frame grid.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import numpy as np
import slicer
import vtk

from ..sequence import LABEL_LA, LABEL_LV, LABEL_MYOCARDIUM, LABEL_NAMES, EchoDataError, EchoSequence
from ..strain import Myocardium, myocardium_from_labels, myocardium_from_landmarks
from ..strain.myocardium import DEFAULT_WALL_WIDTH
from .sequences import node_source, volume_node

# Segment names -> CAMUS codes, tried in this order ("LV myocardium" is myocardium and "LA cavity"
# the atrium, not the LV cavity).
SEGMENT_NAME_PATTERNS = (
    (LABEL_MYOCARDIUM, re.compile(r"myo", re.IGNORECASE)),
    (LABEL_LA, re.compile(r"atri|\bla\b", re.IGNORECASE)),
    (LABEL_LV, re.compile(r"cavity|blood ?pool|endocard|left ventric|\blv\b", re.IGNORECASE)),
)
_GRID_TOLERANCE = 1e-4  # mm


def myocardium_from_node(node: slicer.vtkMRMLNode, seq: EchoSequence, *,
                         wall_width: float = DEFAULT_WALL_WIDTH) -> Myocardium:
    """The myocardium at the reference frame from a segmentation, labelmap or markups node."""
    source = node_source(node)
    if isinstance(node, slicer.vtkMRMLSegmentationNode):
        return myocardium_from_labels(labels_from_segmentation(node, seq), seq.spacing, source=source)
    if isinstance(node, slicer.vtkMRMLLabelMapVolumeNode):
        return myocardium_from_labels(labels_from_labelmap(node, seq), seq.spacing, source=source)
    if isinstance(node, slicer.vtkMRMLMarkupsFiducialNode):
        return myocardium_from_landmarks(landmarks_from_markups(node, seq), seq.frame_shape, seq.spacing,
                                         wall_width=wall_width, source=source)
    raise TypeError(f"{source}: the myocardium comes from a segmentation, a labelmap volume or a "
                    "markups point list")


# ------------------------------------------------------------------------------ segmentation
def segment_codes(segmentation: slicer.vtkMRMLSegmentationNode) -> dict[int, str]:
    """{CAMUS code: segment ID} of the segments recognised by name, else by label value.

    Raises:
        EchoDataError: no LV cavity or no myocardium segment, or two segments for one structure.
    """
    source = node_source(segmentation)
    content = segmentation.GetSegmentation()
    found: dict[int, list[str]] = {}
    names = []
    for i in range(content.GetNumberOfSegments()):
        segment_id, segment = content.GetNthSegmentID(i), content.GetNthSegment(i)
        names.append(segment.GetName())
        code = next((c for c, pattern in SEGMENT_NAME_PATTERNS if pattern.search(segment.GetName())),
                    segment.GetLabelValue() if segment.GetLabelValue() in LABEL_NAMES else None)
        if code is not None:
            found.setdefault(code, []).append(segment_id)
    for code in (LABEL_LV, LABEL_MYOCARDIUM):
        if code not in found:
            raise EchoDataError(source, f"no {LABEL_NAMES[code]} segment among {names}: name the "
                                        "segments 'LV cavity' and 'myocardium'")
    doubles = {LABEL_NAMES[c]: ids for c, ids in found.items() if len(ids) > 1}
    if doubles:
        raise EchoDataError(source, f"several segments for one structure: {doubles}")
    return {code: ids[0] for code, ids in sorted(found.items())}


@contextlib.contextmanager
def _temporary_nodes(scene: slicer.vtkMRMLScene) -> Iterator[None]:
    """Remove, on leaving, every node added to ``scene`` inside the block (temporary volumes and
    the colour tables and display nodes that MRML makes for them)."""
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    try:
        yield
    finally:
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in reversed([n for n in added if n.GetID() not in before]):
            if node.GetScene() is not None:
                scene.RemoveNode(node)


def labels_from_segmentation(segmentation: slicer.vtkMRMLSegmentationNode, seq: EchoSequence) -> np.ndarray:
    """(H, W) uint8 CAMUS label map of ``segmentation`` rasterised on ``seq``'s frame grid."""
    scene = segmentation.GetScene()
    codes = segment_codes(segmentation)
    ids = vtk.vtkStringArray()
    for segment_id in codes.values():
        ids.InsertNextValue(segment_id)
    with _temporary_nodes(scene):
        reference = scene.AddNode(volume_node(np.zeros(seq.frame_shape, np.uint8), seq))
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation, ids, labelmap, reference):
            raise EchoDataError(node_source(segmentation), "could not be rasterised on the frame grid")
        exported = slicer.util.arrayFromVolume(labelmap)[0]
    lookup = np.zeros(len(codes) + 1, dtype=np.uint8)
    lookup[1:] = list(codes)  # the export numbers the segments 1, 2, ... in the order given
    return lookup[exported]


# ------------------------------------------------------------------------------ labelmap
def labels_from_labelmap(labelmap: slicer.vtkMRMLLabelMapVolumeNode, seq: EchoSequence) -> np.ndarray:
    """(H, W) uint8 CAMUS label map from a labelmap volume: taken as is on ``seq``'s frame grid,
    resampled through a temporary segmentation on any other grid."""
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetIJKToRASMatrix(matrix)
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(matrix)
    pixels = slicer.util.arrayFromVolume(labelmap)
    # The slice axis may be flipped (Slicer's reader does so for left-handed frames): compare the
    # in-plane axes and the origin only.
    same_grid = (pixels.shape == (1, *seq.frame_shape)
                 and np.allclose(ijk_to_ras[:3, [0, 1, 3]], seq.ijk_to_ras()[:3, [0, 1, 3]],
                                 atol=_GRID_TOLERANCE))
    if same_grid:
        return pixels[0].astype(np.uint8)
    scene = labelmap.GetScene()
    with _temporary_nodes(scene):
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
            raise EchoDataError(node_source(labelmap), "could not be converted to segments")
        return labels_from_segmentation(segmentation, seq)


# ------------------------------------------------------------------------------ markups
def landmarks_from_markups(markups: slicer.vtkMRMLMarkupsFiducialNode, seq: EchoSequence) -> np.ndarray:
    """(3, 2) mm (x, y) frame coordinates of the three control points (annulus, apex, annulus),
    projected onto the frame plane.

    Raises:
        EchoDataError: not exactly three points.
    """
    n = markups.GetNumberOfControlPoints()
    if n != 3:
        raise EchoDataError(node_source(markups),
                            f"expected 3 points (mitral annulus, apex, mitral annulus), got {n}")
    ras = np.array([markups.GetNthControlPointPositionWorld(i) for i in range(n)])
    ijk = (np.linalg.inv(seq.ijk_to_ras()) @ np.c_[ras, np.ones(n)].T).T
    return ijk[:, :2] * np.asarray(seq.spacing)
