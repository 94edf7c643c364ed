"""Pictures of a run the way the Slicer module shows it: the analysis put in a scene by the module's
own bridge (:func:`~.outputs.add_outputs`), shown with its display decisions (:mod:`.display`) and
rendered offscreen by Slicer's displayable managers (:mod:`.render`). ``echoreg register`` /
``strain --slicer-views`` and ``echoreg demo`` write them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..io.atomic import atomic_output
from .display import output_layers
from .headless import standalone_scene
from .outputs import add_outputs
from .pipeline import Analysis
from .render import DEFAULT_SIZE, SliceView
from .sequences import browser_for, volume_sequence_node


def default_frames(analysis: Analysis) -> list[int]:
    """The reference frame and the end-systolic frame (the last frame when ES is unknown)."""
    seq = analysis.sequence
    es = seq.n_frames - 1 if seq.es_index is None else seq.es_index
    return sorted({analysis.registration.reference, es})


def slice_view_name(frame: int) -> str:
    """The file name :func:`write_slice_views` gives the picture of ``frame``."""
    return f"slicer_view_frame{frame:03d}.png"


#: What the names of :func:`slice_view_name` match (``Path.glob``), whatever the frame.
SLICE_VIEW_GLOB = "slicer_view_frame[0-9][0-9][0-9]*.png"


def write_slice_views(analysis: Analysis, folder: str | os.PathLike, frames: Sequence[int] | None = None,
                      overwrite: bool = False, size: tuple[int, int] = DEFAULT_SIZE,
                      name: str = "echo") -> list[Path]:
    """Write ``slicer_view_frame{t:03d}.png`` into ``folder`` for each of ``frames`` (default
    :func:`default_frames`): the warped frame t with the strain map over it (when the analysis has
    strain) and the deformation grid, as Slicer's slice view shows the module's outputs.

    Raises:
        IndexError: a frame outside the sequence.
        FileExistsError: a picture exists and ``overwrite`` is False.
        RuntimeError: no OpenGL context for offscreen rendering.
    """
    folder = Path(folder)
    env = standalone_scene()
    node = volume_sequence_node(env.scene, name, analysis.sequence)
    browser = browser_for(env.scene, node)
    outputs = add_outputs(env.scene, browser, node, analysis)
    view = SliceView(env, size)
    paths = []
    try:
        view.show(output_layers(outputs, browser))
        for frame in default_frames(analysis) if frames is None else frames:
            env.select_frame(browser, frame)
            with atomic_output(folder / slice_view_name(frame), overwrite) as tmp:
                tmp.write_bytes(view.png())
            paths.append(folder / slice_view_name(frame))
    finally:
        view.close()
    return paths
