"""The panel's parameter-node connection (issue 17) with stand-in parameter-node wrappers that behave as
Slicer's ``parameterNodeWrapper`` does: every ``connectGui`` adds connectors under a new tag and one
parameter-node observer; ``disconnectGui(tag)`` removes that tag's connectors; Slicer up to 5.8 returns
None from ``connectGui``, 5.10 returns the tag. The real wrapper needs Qt and ``slicer.app``, which no
test machine has."""

from __future__ import annotations

import pytest

from EchoRegistrationLib.mrml.gui_connection import ParameterGuiConnection


class StandInNode:
    """The MRML parameter node: counts the observers added to it."""

    def __init__(self) -> None:
        self.observers = 0


class StandInWrapper:
    """A ``parameterNodeWrapper`` of ``node``; ``returns_tag``: Slicer 5.10 (True) or 5.6/5.8 (False)."""

    def __init__(self, node: StandInNode, returns_tag: bool) -> None:
        self.parameterNode = node
        self.returns_tag = returns_tag
        self._parameterGUIs: dict[int, object] = {}
        self._nextParameterGUIsTag = 0

    def connectGui(self, gui):
        tag = self._nextParameterGUIsTag
        self._nextParameterGUIsTag += 1
        self._parameterGUIs[tag] = gui
        self.parameterNode.observers += 1
        return tag if self.returns_tag else None

    def disconnectGui(self, tag) -> None:
        self._parameterGUIs.pop(tag, None)


@pytest.mark.parametrize("returns_tag", [False, True], ids=["slicer-5.8", "slicer-5.10"])
def test_one_connection_through_reentry_and_scene_changes(returns_tag):
    gui = object()
    connection = ParameterGuiConnection(gui)
    first_node = StandInNode()
    first = StandInWrapper(first_node, returns_tag)
    assert connection.connect(first) and connection.wrapper is first
    assert first._parameterGUIs == {0: gui} and connection.tag == 0

    # Module re-entry: getParameterNode() wraps the same node again; nothing is connected twice.
    again = StandInWrapper(first_node, returns_tag)
    assert not connection.connect(again)
    assert connection.wrapper is first and again._parameterGUIs == {} and first_node.observers == 1

    # Scene close and a new scene: the old connectors are really removed.
    second = StandInWrapper(StandInNode(), returns_tag)
    assert connection.connect(second)
    assert first._parameterGUIs == {} and second._parameterGUIs == {0: gui}
    assert connection.connect(None) and second._parameterGUIs == {} and connection.wrapper is None
    connection.disconnect()  # nothing connected: nothing to do


def test_a_wrapper_without_recoverable_tags_is_still_connected_once():
    """A wrapper that neither returns its tag nor keeps them where they can be read: the connection
    cannot be removed, but module re-entry still does not add connectors."""

    class Opaque(StandInWrapper):
        def connectGui(self, gui):
            super().connectGui(gui)
            self.hidden, self._parameterGUIs = self._parameterGUIs, {}

    node = StandInNode()
    connection = ParameterGuiConnection(object())
    assert connection.connect(Opaque(node, returns_tag=False)) and connection.tag is None
    assert not connection.connect(Opaque(node, returns_tag=False))
    assert node.observers == 1
