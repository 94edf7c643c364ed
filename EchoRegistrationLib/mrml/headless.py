"""A MRML scene outside Slicer (``slicer-core`` wheels): the module logics the bridge relies on.

Inside Slicer use ``slicer.mrmlScene``. In a plain Python, :func:`standalone_scene` gives a scene
with an application logic and the Colors, Sequences (browsers create proxy nodes), Transforms,
Segmentations and Markups logics registered, in the order they need. Without an application event loop, call
``sequences.UpdateProxyNodesFromSequences(browser)`` after changing a browser's selected item if
the proxies must follow at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import slicer


@dataclass(eq=False)
class StandaloneScene:
    """A scene, its application logic and the module logics (kept alive here)."""

    scene: slicer.vtkMRMLScene
    application: slicer.vtkSlicerApplicationLogic
    sequences: slicer.vtkSlicerSequencesLogic
    logics: dict[str, object] = field(default_factory=dict)

    def select_frame(self, browser: slicer.vtkMRMLSequenceBrowserNode, frame: int) -> None:
        """Show item ``frame`` of ``browser``, its proxy nodes updated at once (no event loop here).

        Raises:
            IndexError: ``frame`` outside 0 .. items - 1.
        """
        items = browser.GetNumberOfItems()
        if not 0 <= frame < items:
            raise IndexError(f"frame {frame} outside 0..{items - 1} of '{browser.GetName()}'")
        browser.SetSelectedItemNumber(frame)
        self.sequences.UpdateProxyNodesFromSequences(browser)


def standalone_scene() -> StandaloneScene:
    """A new scene with the logics registered (Sequences before any browser node is made)."""
    scene = slicer.vtkMRMLScene()
    application = slicer.vtkSlicerApplicationLogic()
    application.SetMRMLScene(scene)
    logics = {"Colors": slicer.vtkMRMLColorLogic(), "Sequences": slicer.vtkSlicerSequencesLogic(),
              "Transforms": slicer.vtkSlicerTransformLogic(),
              "Segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
              "Markups": slicer.vtkSlicerMarkupsLogic()}  # markups drawn in the views need it
    for name, logic in logics.items():
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(application)
        application.SetModuleLogic(name, logic)
    return StandaloneScene(scene, application, logics["Sequences"], logics)
