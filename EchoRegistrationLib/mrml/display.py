"""How the module shows its outputs in a slice view: one set of decisions for the Slicer panel, the
offscreen renderer (:mod:`.render`) and the web page (:mod:`EchoRegistrationLib.web`).

* Layers (:class:`SliceLayers`): the warped frames as background, the longitudinal strain map as
  foreground at :data:`STRAIN_OPACITY`, the deformation grid of the current frame's transform
  (:func:`output_layers`); :func:`apply_layers` puts them on a slice composite node.
* The strain map: diverging colour table (shortening red, lengthening blue) from
  -:data:`~EchoRegistrationLib.strain.result.LONGITUDINAL_RANGE` to + that many %, NaN (outside the
  myocardium) transparent, no interpolation (:func:`show_strain_map`).
* The deformation grid: a grid every :data:`GRID_SPACING_MM` mm, in the slice views only
  (:func:`show_deformation_grid`, :func:`set_grid_visible`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import slicer

from ..strain.result import LONGITUDINAL_RANGE

if TYPE_CHECKING:
    from .outputs import EchoOutputs

STRAIN_OPACITY = 0.6  # foreground opacity of the strain map over the warped frames
GRID_SPACING_MM = 5.0  # spacing of the deformation grid drawn in the slice views
STRAIN_COLOUR_TABLE = "EchoRegistration strain"
# ColorBrewer RdBu (matplotlib "RdBu"), low to high: shortening red, lengthening blue.
RDBU = ("#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de",
        "#4393c3", "#2166ac", "#053061")
_COLOURS = 256
_SHOWN_RANGE = 1e6  # %: the display threshold keeps finite strain, so NaN pixels are transparent


@dataclass(frozen=True, eq=False)
class SliceLayers:
    """What a slice view shows.

    Attributes:
        background: volume under everything (the warped frame).
        foreground: volume blended over it (the strain map), or None.
        foreground_opacity: 0 (hidden) to 1.
        grid: transform node drawn as a deformation grid (visibility on its display node), or None.
    """

    background: slicer.vtkMRMLVolumeNode
    foreground: slicer.vtkMRMLVolumeNode | None = None
    foreground_opacity: float = 0.0
    grid: slicer.vtkMRMLTransformNode | None = None

    def with_foreground_opacity(self, opacity: float) -> SliceLayers:
        """The same layers with the foreground at ``opacity`` (clipped to 0..1)."""
        return dataclasses.replace(self, foreground_opacity=float(np.clip(opacity, 0.0, 1.0)))


def output_layers(outputs: EchoOutputs, browser: slicer.vtkMRMLSequenceBrowserNode) -> SliceLayers:
    """The layers of an analysis's outputs played in ``browser``: its proxy nodes (so the view
    follows the browser's frame), the strain map at :data:`STRAIN_OPACITY` when there is one."""
    strain = None if outputs.strain_map is None else browser.GetProxyNode(outputs.strain_map)
    return SliceLayers(background=browser.GetProxyNode(outputs.warped), foreground=strain,
                       foreground_opacity=STRAIN_OPACITY if strain is not None else 0.0,
                       grid=browser.GetProxyNode(outputs.transforms))


def apply_layers(composite: slicer.vtkMRMLSliceCompositeNode, layers: SliceLayers) -> None:
    """Show ``layers`` in the slice view of ``composite`` (background, foreground and its opacity;
    no label layer)."""
    with slicer.util.NodeModify(composite):
        composite.SetBackgroundVolumeID(layers.background.GetID())
        composite.SetForegroundVolumeID(None if layers.foreground is None else layers.foreground.GetID())
        composite.SetForegroundOpacity(layers.foreground_opacity)
        composite.SetLabelVolumeID(None)


# ------------------------------------------------------------------------------ strain map
def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[k:k + 2], 16) for k in (1, 3, 5)]) / 255.0


def strain_colour_table(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLColorTableNode:
    """The diverging strain colour table of ``scene`` (made once, then reused)."""
    existing = scene.GetFirstNodeByName(STRAIN_COLOUR_TABLE)
    if isinstance(existing, slicer.vtkMRMLColorTableNode):
        return existing
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", STRAIN_COLOUR_TABLE)
    table.SetTypeToUser()
    table.SetNumberOfColors(_COLOURS)
    anchors = np.array([_rgb(c) for c in RDBU])
    positions = np.linspace(0.0, 1.0, len(anchors))
    for i, t in enumerate(np.linspace(0.0, 1.0, _COLOURS)):
        rgb = [np.interp(t, positions, anchors[:, k]) for k in range(3)]
        table.SetColor(i, *rgb, 1.0)
    return table


def show_strain_map(node: slicer.vtkMRMLScalarVolumeNode, colours: slicer.vtkMRMLColorTableNode,
                    limit: float = LONGITUDINAL_RANGE) -> slicer.vtkMRMLScalarVolumeDisplayNode:
    """Display ``node`` with ``colours`` from -``limit`` to +``limit`` %, NaN transparent."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(colours.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevel(2.0 * limit, 0.0)
    display.AutoThresholdOff()
    display.SetThreshold(-_SHOWN_RANGE, _SHOWN_RANGE)
    display.ApplyThresholdOn()
    display.SetInterpolate(False)
    return display


# ------------------------------------------------------------------------------ deformation grid
def show_deformation_grid(node: slicer.vtkMRMLTransformNode,
                          spacing_mm: float = GRID_SPACING_MM) -> slicer.vtkMRMLTransformDisplayNode:
    """Show ``node`` as a deformed grid in the slice views; returns its display node."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetVisualizationMode(slicer.vtkMRMLTransformDisplayNode.VIS_MODE_GRID)
    display.SetGridSpacingMm(spacing_mm)
    display.SetVisibility(True)
    display.SetVisibility2D(True)
    display.SetVisibility3D(False)
    return display


def set_grid_visible(layers: SliceLayers, visible: bool) -> None:
    """Show or hide the deformation grid of ``layers`` in the slice views (no-op without a grid)."""
    if layers.grid is not None:
        show_deformation_grid(layers.grid).SetVisibility2D(bool(visible))
