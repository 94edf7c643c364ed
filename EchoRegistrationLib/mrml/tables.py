"""Table and plot nodes: columns in, columns out, CSV at full precision, line charts.

Columns are ``{name: values}`` in order: integer values become ``vtkIntArray`` columns, other
numbers ``vtkDoubleArray``, text ``vtkStringArray``. :func:`write_table_csv` writes a table with
the float64 values unrounded (Slicer's own table writer keeps 6 significant digits), and
:func:`read_table_csv` reads such a file back to the same columns. :func:`export_tables` writes an
analysis's tables with a note of how their registration was made (:data:`REGISTRATION_ATTRIBUTE`).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import slicer
import vtk

from ..io.atomic import atomic_output, check_writable

Columns = dict[str, np.ndarray | list[str]]

# Node attribute (saved with the scene) of an analysis's deformation sequence and tables, and of the quick look's
# warped frame and frame deformation (outputs.show_frame_registration): how the registration was made, in one
# line (:func:`..workflow.describe_registration`: the method; DLIR: the model, its licence, the networks'
# precision, the refinement, the systole anchor frame).
REGISTRATION_ATTRIBUTE = "EchoRegistration.Registration"

# Colours of the curves of a chart, in order (matplotlib's "tab10").
CURVE_COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
                 (0.58, 0.4, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5),
                 (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))


def _column(name: str, values: Sequence) -> vtk.vtkAbstractArray:
    array = np.asarray(values)
    if array.dtype.kind in "biu":
        column = vtk.vtkIntArray()
    elif array.dtype.kind == "f":
        column = vtk.vtkDoubleArray()
    else:
        column = vtk.vtkStringArray()
        array = array.astype(str)
    column.SetName(name)
    column.SetNumberOfValues(len(array))
    for i, value in enumerate(array.tolist()):
        column.SetValue(i, value)
    return column


def table_node(scene: slicer.vtkMRMLScene, name: str, columns: Mapping[str, Sequence]
               ) -> slicer.vtkMRMLTableNode:
    """A new table node in ``scene`` with ``columns`` (all of one length)."""
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"table '{name}': columns of different lengths {sorted(lengths)}")
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column_name, values in columns.items():
        node.AddColumn(_column(column_name, values))
    return node


def table_columns(node: slicer.vtkMRMLTableNode) -> Columns:
    """``{name: values}`` of a table node: numeric columns as numpy arrays, text as lists."""
    table = node.GetTable()
    out: Columns = {}
    for c in range(table.GetNumberOfColumns()):
        column = table.GetColumn(c)
        values = [column.GetValue(i) for i in range(column.GetNumberOfValues())]
        out[column.GetName()] = values if isinstance(column, vtk.vtkStringArray) else np.array(values)
    return out


def _cell(value: object) -> str:
    """Float64 values as their shortest exact text, others as they are."""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def write_table_csv(node: slicer.vtkMRMLTableNode, path: str | os.PathLike,
                    overwrite: bool = False) -> Path:
    """Write ``node`` as CSV (header = column names, values unrounded), atomically."""
    columns = table_columns(node)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) for v in row] for row in zip(*columns.values())])
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(buffer.getvalue())
    return Path(path)


def export_tables(tables: Sequence[slicer.vtkMRMLTableNode], folder: str | os.PathLike, overwrite: bool = False,
                  registration: str | None = None) -> list[Path]:
    """Write the (non-empty) ``tables`` as ``{table name}.csv`` in ``folder`` (:func:`write_table_csv`) and
    how their registration was made as ``{first table's name} registration.txt``, so that the model, its
    licence and the networks' precision travel with the numbers: ``registration``, else the first table's
    :data:`REGISTRATION_ATTRIBUTE`. When neither says (a scene saved before it was recorded) no note is
    written, and with ``overwrite`` an earlier note of that name is removed (it described another run).
    Every file is checked before any is written. Returns the paths written.

    Raises:
        FileExistsError: a file exists (the note included) and not ``overwrite`` (nothing written).
    """
    folder = Path(folder)
    paths = [folder / f"{table.GetName()}.csv" for table in tables]
    described = registration or tables[0].GetAttribute(REGISTRATION_ATTRIBUTE)
    note = folder / f"{tables[0].GetName()} registration.txt"
    for path in (*paths, note):
        check_writable(path, overwrite)
    written = [write_table_csv(table, path, overwrite) for table, path in zip(tables, paths)]
    if described:
        with atomic_output(note, overwrite) as tmp:
            tmp.write_text(described + "\n")
        written.append(note)
    else:
        note.unlink(missing_ok=True)
    return written


def _parsed(values: list[str]) -> np.ndarray | list[str]:
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values])
        except ValueError:
            continue
    return values


def read_table_csv(path: str | os.PathLike) -> Columns:
    """The columns of a CSV file written by :func:`write_table_csv`: integer and float columns as
    numpy arrays, text columns as lists."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    header, body = rows[0], rows[1:]
    return {name: _parsed([row[c] for row in body]) for c, name in enumerate(header)}


def line_chart(scene: slicer.vtkMRMLScene, name: str, table: slicer.vtkMRMLTableNode, x_column: str,
               y_columns: Sequence[str], *, x_title: str, y_title: str) -> slicer.vtkMRMLPlotChartNode:
    """A new plot chart in ``scene`` with one line per ``y_columns`` entry against ``x_column`` of
    ``table`` (series named after the columns)."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for k, column in enumerate(y_columns):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column)
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(column)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        series.SetColor(*CURVE_COLOURS[k % len(CURVE_COLOURS)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def remove_chart(chart: slicer.vtkMRMLPlotChartNode) -> None:
    """Remove ``chart`` and its plot series from their scene."""
    scene = chart.GetScene()
    if scene is None:
        return
    series = [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]
    for node in [*series, chart]:
        if node is not None:
            scene.RemoveNode(node)
