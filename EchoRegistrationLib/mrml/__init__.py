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

from ..lazy import lazy_package

__getattr__, __all__ = lazy_package(__name__, {
    ".myocardium": ("myocardium_from_node",),
    ".display": ("SliceLayers", "apply_layers", "output_layers", "set_grid_visible"),
    ".outputs": ("EchoOutputs", "add_outputs", "remove_nodes", "remove_outputs", "show_frame_registration"),
    ".pipeline": ("DEVICES", "METHODS", "Analysis", "FrameRegistration", "InputRemoved",
                  "RegistrationSettings", "analyse", "register_frame"),
    ".sequences": ("browser_for", "echo_sequence_from_node", "find_browser", "selected_frame",
                   "volume_sequence_node"),
    ".tables": ("REGISTRATION_ATTRIBUTE", "export_tables", "read_table_csv", "table_columns", "write_table_csv"),
    ".transforms": ("field_from_transform_node", "grid_transform_node", "transform_sequence_node"),
    ".gui_connection": ("ParameterGuiConnection",),
})
