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
* :mod:`.headless`: a scene with the module logics the bridge needs, outside Slicer.
"""

from .myocardium import myocardium_from_node
from .outputs import EchoOutputs, add_outputs, remove_nodes, remove_outputs, show_frame_registration
from .pipeline import (DEVICES, METHODS, Analysis, FrameRegistration, RegistrationSettings, analyse,
                       register_frame)
from .sequences import (browser_for, echo_sequence_from_node, find_browser, selected_frame,
                        volume_sequence_node)
from .tables import read_table_csv, table_columns, write_table_csv
from .transforms import field_from_transform_node, grid_transform_node, transform_sequence_node

__all__ = [
    "DEVICES", "METHODS", "Analysis", "EchoOutputs", "FrameRegistration", "RegistrationSettings",
    "add_outputs", "analyse", "browser_for", "echo_sequence_from_node",
    "field_from_transform_node", "find_browser", "grid_transform_node", "myocardium_from_node",
    "read_table_csv", "register_frame", "remove_nodes", "remove_outputs", "selected_frame",
    "show_frame_registration", "table_columns", "transform_sequence_node", "volume_sequence_node",
    "write_table_csv",
]
