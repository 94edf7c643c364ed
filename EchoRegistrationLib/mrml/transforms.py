"""Displacement fields as Slicer grid transforms, and grid-transform sequences.

A field (H, W, 2) in mm on the reference frame's grid maps a reference point p to p + u(p) in
frame t (components along the column and row directions). In Slicer that is the *resampling*
transform, the one a grid transform node holds "from parent": putting frame t under the node shows
it warped onto the reference, and ``GetTransformFromParent().TransformPoint(p)`` gives p + u(p)
(RAS). The grid is the frame's own single-slice grid (origin, spacing and direction of the
IJK-to-RAS matrix), the vectors are in RAS; points off the frame plane get the displacement of
the plane.
"""

from __future__ import annotations

import numpy as np
import slicer

from ..sequence import LPS_TO_RAS, EchoSequence
from .sequences import image_data, index_values, new_sequence_node


def ras_vectors(field: np.ndarray, seq: EchoSequence) -> np.ndarray:
    """(H, W, 3) RAS displacement vectors of an (H, W, 2) in-plane field on ``seq``'s grid."""
    field = np.asarray(field, dtype=np.float64)
    lps = field[..., 0, None] * seq.direction[:, 0] + field[..., 1, None] * seq.direction[:, 1]
    return lps @ LPS_TO_RAS[:3, :3].T


def in_plane_field(vectors: np.ndarray, seq: EchoSequence) -> np.ndarray:
    """(H, W, 2) in-plane field (column, row components, mm) of (H, W, 3) RAS vectors; inverse of
    :func:`ras_vectors` for vectors in the frame plane."""
    lps = np.asarray(vectors, dtype=np.float64) @ LPS_TO_RAS[:3, :3].T
    return np.stack([lps @ seq.direction[:, 0], lps @ seq.direction[:, 1]], axis=-1)


def grid_transform(field: np.ndarray, seq: EchoSequence) -> slicer.vtkOrientedGridTransform:
    """A cubic-interpolating oriented grid transform of an (H, W, 2) mm field on ``seq``'s grid
    (float32 vectors: half the memory of a long cine's transform sequence)."""
    if np.shape(field) != (*seq.frame_shape, 2):
        raise ValueError(f"field of shape {np.shape(field)} does not match frames {seq.frame_shape}")
    ijk_to_ras = seq.ijk_to_ras()
    scales = np.array([*seq.spacing, seq.slice_spacing])
    grid = image_data(ras_vectors(field, seq).astype(np.float32))  # float32 like the fields
    grid.SetOrigin(*ijk_to_ras[:3, 3])
    grid.SetSpacing(*scales)
    direction = np.eye(4)
    direction[:3, :3] = ijk_to_ras[:3, :3] / scales
    transform = slicer.vtkOrientedGridTransform()
    transform.SetGridDirectionMatrix(slicer.util.vtkMatrixFromArray(direction))
    transform.SetDisplacementGridData(grid)
    transform.SetInterpolationModeToCubic()
    return transform


def grid_transform_node(field: np.ndarray, seq: EchoSequence,
                        node: slicer.vtkMRMLGridTransformNode | None = None
                        ) -> slicer.vtkMRMLGridTransformNode:
    """``node`` (a new, scene-less one by default) holding ``field`` as its from-parent transform."""
    node = slicer.vtkMRMLGridTransformNode() if node is None else node
    node.SetAndObserveTransformFromParent(grid_transform(field, seq))
    return node


def field_from_transform_node(node: slicer.vtkMRMLTransformNode, seq: EchoSequence) -> np.ndarray:
    """(H, W, 2) mm in-plane field of a grid transform node written by :func:`grid_transform_node`
    (also one read back from a file, whose class is then ``vtkMRMLTransformNode``)."""
    vectors = slicer.util.arrayFromGridTransform(node)
    if vectors.shape[:3] != (1, *seq.frame_shape):
        raise ValueError(f"grid of shape {vectors.shape[:3]} does not match frames {seq.frame_shape}")
    return in_plane_field(vectors[0], seq)


def transform_sequence_node(scene: slicer.vtkMRMLScene, name: str, displacement: np.ndarray,
                            seq: EchoSequence, like: slicer.vtkMRMLSequenceNode | None = None
                            ) -> slicer.vtkMRMLSequenceNode:
    """A new sequence node in ``scene`` of grid transform nodes, one per (T, H, W, 2) field, with
    the index of ``like`` (default ``seq``'s times)."""
    if np.shape(displacement) != (*seq.frames.shape, 2):
        raise ValueError(f"displacement of shape {np.shape(displacement)} does not match frames "
                         f"{seq.frames.shape}")
    values = index_values(seq, like)
    node = new_sequence_node(scene, name, seq, like)
    for value, field in zip(values, displacement):
        node.SetDataNodeAtValue(grid_transform_node(field, seq), value)
    return node

