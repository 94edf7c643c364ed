"""One web page's scene and work, with no web code: what ``echoreg web`` shows and does.

The scene is a :func:`~EchoRegistrationLib.mrml.headless.standalone_scene`; everything goes through the
same bridge as the Slicer module: the cine becomes a sequence node with its browser, the analysis is
:func:`~EchoRegistrationLib.mrml.analyse` then :func:`~EchoRegistrationLib.mrml.add_outputs`, and the
view shows :func:`~EchoRegistrationLib.mrml.output_layers` in an offscreen Slicer slice view. Files
(uploads, the CSV, the curves) live in the session's own temporary folder and nowhere else.

Threads: :meth:`WebSession.analyse` may run in a worker thread (it reads the scene and computes, it
changes nothing); every other method, :meth:`WebSession.show` included, belongs to the thread that
serves the page.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer

from ..io import load_sequence
from ..mrml import (REGISTRATION_ATTRIBUTE, Analysis, EchoOutputs, RegistrationSettings, SliceLayers, add_outputs,
                    analyse, browser_for, export_tables, output_layers, remove_nodes, set_grid_visible,
                    table_columns, volume_sequence_node)
from ..mrml.display import STRAIN_OPACITY
from ..mrml.headless import standalone_scene
from ..mrml.render import SliceView
from ..mrml.sequences import volume_node
from ..sequence import EchoDataError, EchoSequence
from ..strain.figures import save_strain_curves

VIEW_SIZE = (560, 480)  # view pixels (width, height)
MAX_UPLOAD_MB = 200.0
MYOCARDIUM_SOURCES = ("landmarks", "labelmap", "none")
LANDMARK_NAMES = ("mitral annulus", "apex", "mitral annulus")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(ValueError):
    """An upload over the size limit, or without a usable file name."""


@dataclass
class Overlays:
    """What the view draws over the frames: the grid, and the strain map at ``opacity`` (0..1)."""

    grid: bool = True
    strain: bool = True
    opacity: float = STRAIN_OPACITY


class WebSession:
    """A scene, its slice view and the files of one page.

    Args:
        folder: the session's temporary folder (uploads and downloads are kept here, nowhere else).
        max_upload_mb: largest upload accepted.
        size: view (width, height) in pixels.
    """

    def __init__(self, folder: str | Path, max_upload_mb: float = MAX_UPLOAD_MB,
                 size: tuple[int, int] = VIEW_SIZE) -> None:
        self.folder = Path(folder)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.env = standalone_scene()
        self.view = SliceView(self.env, size, name="Red")
        self.sequence: EchoSequence | None = None
        self.input: slicer.vtkMRMLSequenceNode | None = None
        self.browser: slicer.vtkMRMLSequenceBrowserNode | None = None
        self.landmarks: slicer.vtkMRMLMarkupsFiducialNode | None = None
        self.labelmap: slicer.vtkMRMLLabelMapVolumeNode | None = None
        self.analysis: Analysis | None = None
        self.outputs: EchoOutputs | None = None
        self.overlays = Overlays()
        self.progress = (0, 0)  # frame pairs done, total: written by the worker
        self._cancel = threading.Event()

    # ------------------------------------------------------------------ files
    def save_upload(self, name: str, content: bytes) -> Path:
        """Keep an uploaded file in the session folder (its base name made safe; an earlier file of
        that name is replaced) and return its path.

        Raises:
            UploadRefused: over the size limit, or no usable name.
        """
        if len(content) > self.max_upload_bytes:
            raise UploadRefused(f"'{name}' is {len(content) / 2**20:.1f} MB; uploads are limited to "
                                f"{self.max_upload_bytes / 2**20:.0f} MB")
        safe = _SAFE_NAME.sub("_", Path(str(name)).name).lstrip(".")
        if not safe:
            raise UploadRefused(f"no usable file name in {name!r}")
        uploads = self.folder / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        path = uploads / safe
        path.write_bytes(content)
        return path

    def open_cine(self, path: str | Path) -> EchoSequence:
        """Load a cine (any format ``echoreg`` reads) as the session's input, replacing the earlier
        input with its landmarks, labelmap and outputs; the view shows its first frame.

        Raises:
            FileNotFoundError, EchoDataError: unreadable file.
        """
        seq = load_sequence(path)
        seq.require_frames(2)
        self._clear()
        self.sequence = seq
        self.input = volume_sequence_node(self.env.scene, Path(path).name.split(".")[0] or "cine", seq)
        self.browser = browser_for(self.env.scene, self.input)
        self.landmarks = self.env.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "landmarks")
        self.landmarks.CreateDefaultDisplayNodes()
        self.select_frame(0)
        self.view.show(self.layers())
        return seq

    def open_labelmap(self, path: str | Path) -> slicer.vtkMRMLLabelMapVolumeNode:
        """Load a label image (CAMUS codes: 1 LV cavity, 2 myocardium, 3 left atrium) drawn on the
        reference frame's grid.

        Raises:
            EchoDataError: no cine open, or labels of another size than the frames.
        """
        import SimpleITK as sitk

        seq = self._require_cine()
        labels = np.squeeze(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
        if labels.shape != seq.frame_shape:
            raise EchoDataError(str(path), f"labels of shape {labels.shape} do not match the frames "
                                           f"{seq.frame_shape}")
        if self.labelmap is not None:
            remove_nodes([self.labelmap])
        self.labelmap = self.env.scene.AddNode(volume_node(labels.astype(np.uint8), seq,
                                                           slicer.vtkMRMLLabelMapVolumeNode()))
        self.labelmap.SetName("labels")
        return self.labelmap

    # ------------------------------------------------------------------ landmarks
    def add_landmark(self, column: float, row: float) -> int:
        """Place the next landmark (mitral annulus, apex, mitral annulus) at a view pixel; returns
        how many are placed.

        Raises:
            EchoDataError: no cine open, or three placed already.
        """
        self._require_cine()
        n = self.landmarks.GetNumberOfControlPoints()
        if n >= len(LANDMARK_NAMES):
            raise EchoDataError(self.input.GetName(), "three landmarks are placed; clear them first")
        index = self.landmarks.AddControlPoint(*self.view.ras_at(column, row))
        self.landmarks.SetNthControlPointLabel(index, LANDMARK_NAMES[n])
        return n + 1

    def clear_landmarks(self) -> None:
        """Remove the placed landmarks."""
        if self.landmarks is not None:
            self.landmarks.RemoveAllControlPoints()

    # ------------------------------------------------------------------ analysis
    def analyse(self, settings: RegistrationSettings, myocardium: str = "landmarks") -> Analysis:
        """Register the cine (and compute the strain with a myocardium); may run in a worker thread.
        Progress goes to :attr:`progress`; :meth:`cancel` stops it. Changes nothing in the scene.

        Raises:
            ValueError: unknown myocardium source.
            EchoDataError: no cine, or a bad myocardium (e.g. not three landmarks).
            ~EchoRegistrationLib.registration.RegistrationCancelled: cancelled.
        """
        if myocardium not in MYOCARDIUM_SOURCES:
            raise ValueError(f"myocardium must be one of {MYOCARDIUM_SOURCES}, got {myocardium!r}")
        self._require_cine()
        node = {"landmarks": self.landmarks, "labelmap": self.labelmap, "none": None}[myocardium]
        if myocardium == "labelmap" and node is None:
            raise EchoDataError(self.input.GetName(), "no labelmap loaded")
        self.progress = (0, self.sequence.n_frames - 1)

        def progress(done: int, total: int) -> None:
            self.progress = (done, total)

        try:
            return analyse(self.input, settings, node, progress=progress, cancel=self._cancel.is_set)
        finally:
            self._cancel.clear()

    def cancel(self) -> None:
        """Stop the running :meth:`analyse` (it raises RegistrationCancelled), or the next one when
        it has not started yet (a worker thread may start late)."""
        self._cancel.set()

    def show(self, analysis: Analysis) -> EchoOutputs:
        """Put the outputs of ``analysis`` in the scene (replacing earlier ones) and show them."""
        if self.outputs is not None:
            remove_nodes(self.outputs.nodes())
            self.outputs = None
        self.outputs = add_outputs(self.env.scene, self.browser, self.input, analysis)
        self.analysis = analysis
        self.set_overlays(self.overlays)
        return self.outputs

    # ------------------------------------------------------------------ view
    def layers(self) -> SliceLayers:
        """The layers the view shows: the module's output layers after a run, the cine before."""
        if self.outputs is None:
            return SliceLayers(background=self.browser.GetProxyNode(self.input))
        layers = output_layers(self.outputs, self.browser)
        return layers.with_foreground_opacity(self.overlays.opacity if self.overlays.strain else 0.0)

    def set_overlays(self, overlays: Overlays) -> None:
        """Show or hide the grid and the strain map (at its opacity)."""
        self.overlays = overlays
        if self.browser is None:
            return
        layers = self.layers()
        set_grid_visible(layers, overlays.grid)
        self.view.show(layers)

    def select_frame(self, frame: int) -> None:
        """Show frame ``frame`` of the cine (and of the outputs)."""
        self._require_cine()
        self.env.select_frame(self.browser, frame)

    def png(self) -> bytes:
        """The view as it is now, PNG-encoded (black before a cine is open)."""
        return self.view.png()

    # ------------------------------------------------------------------ results
    def frame_table(self) -> dict[str, list]:
        """The outputs' per-frame table (time, GLS, segments, volumes, quality) as lists."""
        if self.outputs is None:
            return {}
        return {name: list(np.asarray(values).tolist()) for name, values in
                table_columns(self.outputs.frame_table).items()}

    def export_paths(self) -> tuple[Path, Path]:
        """The per-frame table written as CSV in the session folder, and beside it how its registration was
        made (``<frames name> registration.txt``: the method; DLIR: the model, its licence, the networks'
        precision), as the Slicer module's Export CSV writes them (:func:`..mrml.export_tables`).

        Raises:
            EchoDataError: no outputs yet.
        """
        if self.outputs is None:
            raise EchoDataError(self._require_cine().source, "no results yet: press Apply first")
        table, note = export_tables([self.outputs.frame_table], self.folder, overwrite=True)
        return table, note

    def registration_line(self) -> str:
        """How the shown results were registered, in one line, as their tables record it
        (:data:`..mrml.REGISTRATION_ATTRIBUTE`, :func:`..workflow.describe_registration`'s words); "" before any."""
        if self.outputs is None:
            return ""
        return self.outputs.frame_table.GetAttribute(REGISTRATION_ATTRIBUTE) or ""

    def curves_path(self) -> Path | None:
        """GLS and segment curves with the LV volume as PNG in the session folder (None without strain)."""
        if self.analysis is None or self.analysis.strain is None:
            return None
        return save_strain_curves(self.analysis.strain, self.folder / "strain_curves.png", overwrite=True)

    def scene_nodes(self) -> list[str]:
        """Names of the data nodes in the scene (sequences, tables, charts, markups, labelmaps)."""
        names = []
        for kind in ("vtkMRMLSequenceNode", "vtkMRMLTableNode", "vtkMRMLPlotChartNode",
                     "vtkMRMLMarkupsFiducialNode", "vtkMRMLLabelMapVolumeNode"):
            nodes = self.env.scene.GetNodesByClass(kind)
            names += [nodes.GetItemAsObject(i).GetName() for i in range(nodes.GetNumberOfItems())]
        return names

    def _clear(self) -> None:
        """Remove the input with its browser, proxy, landmarks, labelmap and outputs."""
        if self.outputs is not None:
            remove_nodes(self.outputs.nodes())
        if self.browser is not None:
            remove_nodes([n for n in (self.browser.GetProxyNode(self.input), self.browser) if n is not None])
        remove_nodes([n for n in (self.input, self.landmarks, self.labelmap) if n is not None])
        self.sequence = self.input = self.browser = self.landmarks = self.labelmap = None
        self.analysis = self.outputs = None

    def _require_cine(self) -> EchoSequence:
        if self.sequence is None:
            raise EchoDataError("echoreg web", "open a cine first")
        return self.sequence

