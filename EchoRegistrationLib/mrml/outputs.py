"""The output nodes of an analysis, synchronised in the input's sequence browser.

:func:`add_outputs` makes, for an input sequence named N:

* ``N warped``: volume sequence of the frames warped onto the reference frame;
* ``N enhanced``: volume sequence of the frames as registered, enhanced before registration and
  unwarped (only when the settings enhanced them, ``registration.enhanced``);
* ``N deformation``: sequence of grid transforms (the fields, "from parent" = resampling
  direction), its proxy shown as a deformation grid in the slice views;
* ``N longitudinal strain``: volume sequence of the longitudinal strain maps in % on the reference
  frame (NaN outside the myocardium, shown transparent) with a diverging colour table, shortening
  red and lengthening blue (with a myocardium);

(how they are shown: :mod:`.display`)
* ``N frames``: table, one row per frame: time, GLS, the six segments, LV area and volume (with a
  myocardium) and the registration quality (NCC before / after, folding);
* ``N strain summary``: table (measure, region, value, unit): peaks, time to peak, end-systolic
  strain, quality per segment, EDV, ESV, EF (with a myocardium);
* ``N strain curves``: plot chart of GLS and the segments over time from ED (with a myocardium),
  over frame indices when the frame times are unknown.

The deformation sequence and the tables carry :data:`.tables.REGISTRATION_ATTRIBUTE`: how the
registration was made (saved with the scene, written beside the tables by :func:`.tables.export_tables`);
so do the quick look's ``N warped frame`` and ``N frame deformation`` (:func:`show_frame_registration`).

Unknown basis: without pixel size the mm / mm2 / ml values are NaN and their names and units say
so; without frame times the times are NaN (:class:`~EchoRegistrationLib.strain.StrainResult`).

The sequences share the input's index values, so the browser shows all of them at the input's
current frame. If making them fails half-way, the nodes made so far are removed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import slicer

from ..sequence import EchoSequence
from ..strain import StrainResult
from ..strain.result import NO_TIMES
from ..workflow import describe_registration
from .pipeline import Analysis, FrameRegistration
from .sequences import (find_browser, remove_node, synchronise, unsynchronise, volume_node,
                        volume_sequence_node)
from .tables import REGISTRATION_ATTRIBUTE, line_chart, remove_chart, table_node
from .display import show_deformation_grid, show_strain_map, strain_colour_table
from .transforms import grid_transform_node, transform_sequence_node

TIME_COLUMN = "time from ED (s)"
FRAME_COLUMN = "frame"


@dataclass(eq=False)
class EchoOutputs:
    """The output nodes of one analysis (those without a myocardium are None, ``enhanced`` when the
    frames were not enhanced before registration)."""

    warped: slicer.vtkMRMLSequenceNode
    transforms: slicer.vtkMRMLSequenceNode
    frame_table: slicer.vtkMRMLTableNode
    strain_map: slicer.vtkMRMLSequenceNode | None = None
    summary_table: slicer.vtkMRMLTableNode | None = None
    chart: slicer.vtkMRMLPlotChartNode | None = None
    enhanced: slicer.vtkMRMLSequenceNode | None = None

    def nodes(self) -> list[slicer.vtkMRMLNode]:
        """The nodes that exist, in field order."""
        return [getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None]


# ------------------------------------------------------------------------------ table contents
def frame_columns(analysis: Analysis) -> dict[str, np.ndarray]:
    """Per-frame columns: the strain table (frame, times, GLS, segments, area, volume) when there
    is a strain result, else frame and time; then NCC before / after and folding (%)."""
    seq, registration, strain = analysis.sequence, analysis.registration, analysis.strain
    if strain is None:
        columns = {FRAME_COLUMN: np.arange(seq.n_frames), "time (s)": seq.frame_times}
    else:
        header, rows = strain.frame_table()
        columns = {name: np.array(values) for name, values in zip(header, zip(*rows))}
    columns.update({"NCC before": registration.similarity_before,
                    "NCC after": registration.similarity_after,
                    "folding (%)": 100.0 * registration.folding_fraction})
    return columns


def chart_axis(strain: StrainResult) -> tuple[str, str]:
    """(x column, x axis title) of the strain chart: time from ED, or the frame index when the
    frame times are unknown."""
    if strain.frame_times_known:
        return TIME_COLUMN, TIME_COLUMN
    return FRAME_COLUMN, f"frame index ({NO_TIMES})"


def summary_columns(strain: StrainResult) -> dict[str, object]:
    """Columns measure, region, value, unit of the strain summary."""
    measure, region, value, unit = zip(*strain.summary_table())
    return {"measure": list(measure), "region": list(region),
            "value": np.array(value, dtype=np.float64), "unit": list(unit)}


# ------------------------------------------------------------------------------ making and removing
def remove_nodes(nodes: Iterable[slicer.vtkMRMLNode]) -> None:
    """Remove ``nodes`` (with their display and storage nodes) from their scene: sequences after
    taking them (and their proxies) out of every browser that plays them beside its master,
    charts with their plot series."""
    for node in reversed(list(nodes)):
        if isinstance(node, slicer.vtkMRMLSequenceNode) and node.GetScene() is not None:
            while (browser := find_browser(node.GetScene(), node, include_master=False)) is not None:
                unsynchronise(browser, node)
        if isinstance(node, slicer.vtkMRMLPlotChartNode):
            remove_chart(node)
        else:
            remove_node(node)


def add_outputs(scene: slicer.vtkMRMLScene, browser: slicer.vtkMRMLSequenceBrowserNode,
                input_sequence: slicer.vtkMRMLSequenceNode, analysis: Analysis) -> EchoOutputs:
    """Make the output nodes of ``analysis`` (of ``input_sequence``) and play the sequences in
    ``browser``. All or nothing: on an error the nodes made so far are removed."""
    seq, registration, strain = analysis.sequence, analysis.registration, analysis.strain
    name = input_sequence.GetName()
    made: list[slicer.vtkMRMLNode] = []

    def keep(node):
        made.append(node)
        return node

    try:
        warped = keep(volume_sequence_node(scene, f"{name} warped", seq, registration.warped,
                                           like=input_sequence))
        transforms = keep(transform_sequence_node(scene, f"{name} deformation",
                                                  registration.displacement, seq, like=input_sequence))
        strain_map = None if strain is None else keep(volume_sequence_node(
            scene, f"{name} longitudinal strain", seq, strain.longitudinal_map, like=input_sequence))
        enhanced = None if registration.enhanced is None else keep(volume_sequence_node(
            scene, f"{name} enhanced", seq, registration.enhanced, like=input_sequence))
        proxies = synchronise(browser, [n for n in (warped, transforms, strain_map, enhanced) if n is not None])
        show_deformation_grid(proxies[1])
        if strain_map is not None:
            show_strain_map(proxies[2], strain_colour_table(scene))
        frame_table = keep(table_node(scene, f"{name} frames", frame_columns(analysis)))
        summary = chart = None
        if strain is not None:
            summary = keep(table_node(scene, f"{name} strain summary", summary_columns(strain)))
            x_column, x_title = chart_axis(strain)
            chart = keep(line_chart(scene, f"{name} strain curves", frame_table, x_column,
                                    [f"{curve} (%)" for curve in strain.curves()],
                                    x_title=x_title, y_title="strain (%)"))
    except BaseException:
        remove_nodes(made)
        raise
    described = describe_registration(registration.method, registration.parameters)
    for node in (transforms, frame_table, summary):
        if node is not None:
            node.SetAttribute(REGISTRATION_ATTRIBUTE, described)
    return EchoOutputs(warped, transforms, frame_table, strain_map, summary, chart, enhanced)


def remove_outputs(outputs: EchoOutputs) -> None:
    """Remove the output nodes (and their proxies, plot series, display and storage nodes)."""
    remove_nodes(outputs.nodes())


def show_frame_registration(scene: slicer.vtkMRMLScene, name: str, frame: FrameRegistration,
                            warped: slicer.vtkMRMLScalarVolumeNode | None = None,
                            transform: slicer.vtkMRMLGridTransformNode | None = None
                            ) -> tuple[slicer.vtkMRMLScalarVolumeNode, slicer.vtkMRMLGridTransformNode]:
    """Put one frame's registration in ``warped`` and ``transform`` (made in ``scene`` as
    ``{name} warped frame`` / ``{name} frame deformation`` when None); the transform is shown as
    a deformation grid, and both carry how the frame was registered (:data:`.tables.REGISTRATION_ATTRIBUTE`,
    :attr:`FrameRegistration.description`). Returns both nodes."""
    seq: EchoSequence = frame.sequence
    if warped is None:
        warped = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{name} warped frame")
    if transform is None:
        transform = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", f"{name} frame deformation")
    volume_node(frame.warped, seq, warped)
    if warped.GetDisplayNode() is None:
        warped.CreateDefaultDisplayNodes()
    grid_transform_node(frame.displacement, seq, transform)
    show_deformation_grid(transform)
    for node in (warped, transform):
        node.SetAttribute(REGISTRATION_ATTRIBUTE, frame.description)
    return warped, transform
