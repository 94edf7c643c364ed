"""The bridge between Slicer's MRML scene and EchoRegistrationLib, without Qt or ``slicer.app``.

Everything here takes the scene and nodes as arguments, so it runs inside Slicer and, with the
``slicer-core`` wheels, in a plain Python (the tests do). Conventions: geometry in RAS in the
scene (LPS in files and in :class:`~EchoRegistrationLib.sequence.EchoSequence`); a displacement
field is a grid transform's "from parent" (resampling) transform, mapping a reference point p to
p + u(p) in frame t.

* :mod:`.sequences`: sequence node <-> EchoSequence, browsers and synchronisation.
* :mod:`.transforms`: fields as grid transforms and grid-transform sequences.
* :mod:`.tables`: table and plot nodes, CSV at full precision.
* :mod:`.myocardium`: the ED myocardium from a segmentation, labelmap or markups node.
* :mod:`.pipeline`: settings, :func:`analyse` (registration + strain), :func:`register_frame`.
* :mod:`.outputs`: the output nodes of an analysis, synchronised in the input's browser.
* :mod:`.display`: how they are shown (layers, strain colours, grid), for the panel and the renderer.
* :mod:`.render`: a slice view rendered offscreen with Slicer's displayable managers, as PNG.
* :mod:`.pictures`: pictures of an analysis as the module shows it (``--slicer-views``, the demo).
* :mod:`.headless`: a scene with the module logics the bridge needs, outside Slicer.
* :mod:`.gui_connection`: the panel's parameter-node connection, the same on every supported Slicer.

The names below are imported on first use (:mod:`..lazy`): the tables and the panel connection need no
torch, so a saved scene's tables export before PyTorch is installed; registration and strain load it.
"""

from ..lazy import lazy_attributes

_EXPORTS = {
    "myocardium_from_node": ".myocardium",
    "SliceLayers": ".display",
    "apply_layers": ".display",
    "output_layers": ".display",
    "set_grid_visible": ".display",
    "EchoOutputs": ".outputs",
    "add_outputs": ".outputs",
    "remove_nodes": ".outputs",
    "remove_outputs": ".outputs",
    "show_frame_registration": ".outputs",
    "DEVICES": ".pipeline",
    "METHODS": ".pipeline",
    "Analysis": ".pipeline",
    "FrameRegistration": ".pipeline",
    "InputRemoved": ".pipeline",
    "RegistrationSettings": ".pipeline",
    "analyse": ".pipeline",
    "register_frame": ".pipeline",
    "browser_for": ".sequences",
    "echo_sequence_from_node": ".sequences",
    "find_browser": ".sequences",
    "selected_frame": ".sequences",
    "volume_sequence_node": ".sequences",
    "read_table_csv": ".tables",
    "table_columns": ".tables",
    "write_table_csv": ".tables",
    "field_from_transform_node": ".transforms",
    "grid_transform_node": ".transforms",
    "transform_sequence_node": ".transforms",
    "ParameterGuiConnection": ".gui_connection",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
