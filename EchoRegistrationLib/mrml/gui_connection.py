"""The panel's connection to its parameter node, the same on every Slicer the module supports.

Slicer's ``parameterNodeWrapper`` binds the widgets of a panel to a parameter node with
``connectGui(gui)`` and unbinds them with ``disconnectGui(tag)``. Up to Slicer 5.8 ``connectGui`` returns
None instead of the tag (Slicer 5.10 returns it), so ``disconnectGui(None)`` silently leaves the old
connectors attached, and every later connection adds a connector and a parameter-node observer. Stale
combo-box connectors then write the first choice back whenever a new connector fills the box.

:class:`ParameterGuiConnection` keeps exactly one connection: it does not reconnect the parameter node it
already holds (module re-entry), and it recovers the tag that ``connectGui`` added when it is not
returned, so the old connection is really removed when the node changes (scene close). Pure Python: no
Qt, no Slicer import, so it is tested outside Slicer with stand-in wrappers.
"""

from __future__ import annotations

from typing import Any


def _gui_tags(wrapper: Any) -> set:
    """The tags of the connections a ``parameterNodeWrapper`` holds (its ``_parameterGUIs`` keys, the
    same in Slicer 5.6 to 5.10); empty where a wrapper keeps none."""
    return set(getattr(wrapper, "_parameterGUIs", None) or ())


class ParameterGuiConnection:
    """One panel ``gui`` connected to at most one parameter node at a time.

    Args:
        gui: what ``connectGui`` takes (the panel's ``self.ui``).
    """

    def __init__(self, gui: Any) -> None:
        self.gui = gui
        self.wrapper: Any = None
        self.tag: Any = None

    def holds(self, wrapper: Any) -> bool:
        """Whether ``wrapper`` wraps the parameter node already connected (a new wrapper of the same
        MRML node counts: ``getParameterNode()`` makes a new wrapper on every call)."""
        return (wrapper is not None and self.wrapper is not None
                and wrapper.parameterNode is self.wrapper.parameterNode)

    def connect(self, wrapper: Any) -> bool:
        """Connect the panel to ``wrapper`` (None: to nothing), removing the previous connection.

        Returns:
            False when ``wrapper`` wraps the node already connected (nothing was done), else True.
        """
        if self.holds(wrapper):
            return False
        self.disconnect()
        if wrapper is not None:
            before = _gui_tags(wrapper)
            tag = wrapper.connectGui(self.gui)
            if tag is None:  # Slicer <= 5.8: the tag is the one connectGui added
                added = _gui_tags(wrapper) - before
                tag = added.pop() if len(added) == 1 else None
            self.wrapper, self.tag = wrapper, tag
        return True

    def disconnect(self) -> None:
        """Remove the connection, if any."""
        if self.wrapper is not None and self.tag is not None:
            self.wrapper.disconnectGui(self.tag)
        self.wrapper, self.tag = None, None
