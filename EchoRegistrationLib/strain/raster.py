"""Raster helpers of the myocardium geometry with what 3D Slicer bundles (numpy, VTK).

* :func:`gaussian_blur`: separable Gaussian smoothing with edge replication (OpenCV's kernel size
  rule for float images, 8 sigma + 1);
* :func:`iso_lines`: the iso-lines of an image in mm (VTK flying edges, joined into polylines);
* :func:`polygon_mask`: the pixels whose centres lie inside a polygon (even-odd rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def gaussian_kernel(sigma: float) -> np.ndarray:
    """(K,) normalised Gaussian of ``sigma`` pixels, K = round(8 sigma + 1) made odd."""
    size = int(round(8 * sigma + 1)) | 1
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, sigma: Sequence[float]) -> np.ndarray:
    """(H, W) float64 ``image`` smoothed by a Gaussian of ``sigma`` = (along x, along y) pixels;
    the border pixels are repeated outwards."""
    result = np.asarray(image, dtype=np.float64)
    for axis, s in ((1, float(sigma[0])), (0, float(sigma[1]))):
        kernel = gaussian_kernel(s)
        half = len(kernel) // 2
        padding = [(0, 0), (0, 0)]
        padding[axis] = (half, half)
        padded = np.pad(result, padding, mode="edge")
        n = result.shape[axis]
        result = sum(weight * np.take(padded, np.arange(k, k + n), axis=axis)
                     for k, weight in enumerate(kernel))
    return result


def iso_lines(image: np.ndarray, spacing: Sequence[float], level: float) -> list[np.ndarray]:
    """The ``level`` iso-lines of an (H, W) image as (N, 2) mm polylines (x = column * sx,
    y = row * sy), linearly interpolated between pixel centres; a closed line repeats its first
    point at the end."""
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkFlyingEdges2D, vtkStripper

    h, w = image.shape
    grid = vtkImageData()
    grid.SetDimensions(w, h, 1)
    grid.SetSpacing(float(spacing[0]), float(spacing[1]), 1.0)
    grid.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(image, np.float64).ravel(), deep=True))
    contour = vtkFlyingEdges2D()
    contour.SetInputData(grid)
    contour.SetValue(0, float(level))
    joined = vtkStripper()
    joined.SetInputConnection(contour.GetOutputPort())
    joined.JoinContiguousSegmentsOn()
    joined.Update()
    output = joined.GetOutput()
    if output.GetNumberOfLines() == 0:
        return []
    points = vtk_to_numpy(output.GetPoints().GetData())[:, :2].astype(np.float64)
    connectivity = vtk_to_numpy(output.GetLines().GetConnectivityArray())
    offsets = vtk_to_numpy(output.GetLines().GetOffsetsArray())
    return [points[connectivity[a:b]] for a, b in zip(offsets[:-1], offsets[1:])]


def polygon_mask(polygon: np.ndarray, shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """(H, W) bool: pixels whose centres (column * sx, row * sy mm) are inside the closed (N, 2) mm
    ``polygon`` by the even-odd rule (scan lines: edges crossing each row's centre line)."""
    h, w = int(shape[0]), int(shape[1])
    start = np.asarray(polygon, dtype=np.float64)
    end = np.roll(start, -1, axis=0)
    rows_mm = np.arange(h)[:, None] * float(spacing[1])  # (H, 1)
    y0, y1 = start[None, :, 1], end[None, :, 1]
    crosses = (y0 <= rows_mm) != (y1 <= rows_mm)  # (H, N), half-open in y
    with np.errstate(divide="ignore", invalid="ignore"):
        x = start[None, :, 0] + (rows_mm - y0) * (end[None, :, 0] - start[None, :, 0]) / (y1 - y0)
    columns_mm = np.arange(w) * float(spacing[0])
    mask = np.zeros((h, w), dtype=bool)
    for row in np.flatnonzero(crosses.any(axis=1)):
        edges = np.sort(x[row, crosses[row]])
        inside = np.searchsorted(edges, columns_mm, side="right") % 2 == 1
        mask[row] = inside
    return mask
