"""EchoRegistration: register 2D echocardiography cines and measure myocardial strain in 3D Slicer.

Slicer's scripted-module layout: Module (metadata), Widget (wires the panel
``Resources/UI/EchoRegistration.ui`` to a typed parameter node and nothing else), Logic (takes nodes
and settings, never touches widgets) and Test. All computation and all scene work go through
``EchoRegistrationLib`` (its MRML bridge is ``EchoRegistrationLib.mrml``, which has no Qt). PyTorch
is installed on first use after asking (through SlicerPyTorch's ``PyTorchUtils`` when that extension is
installed); the torch-free parts (the model list, the panel connection, the table export) work before;
everything else comes from Slicer's Python.

Supported: Slicer 5.10 and later (:data:`MINIMUM_SLICER`). On an older Slicer this file still loads
(it is kept importable by Python 3.9, the Python of Slicer 5.6 and 5.8) and the panel says why it
cannot run, instead of failing in the library.
"""

import contextlib
import importlib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, Union

import qt
import slicer
import vtk
from slicer import (vtkMRMLGridTransformNode, vtkMRMLLabelMapVolumeNode, vtkMRMLMarkupsFiducialNode,
                    vtkMRMLPlotChartNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode,
                    vtkMRMLSequenceNode, vtkMRMLTableNode)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

if TYPE_CHECKING:  # the library needs Python 3.11: imported where it runs
    from EchoRegistrationLib.dlir.shipped import ModelInfo


def _projectFolder() -> Path:
    """The folder that holds ``EchoRegistrationLib`` and ``Resources``: beside this file in an
    installed extension, the repository root in a source checkout ("Add module path")."""
    here = Path(__file__).resolve().parent
    return here if (here / "EchoRegistrationLib").is_dir() else here.parent


PROJECT_FOLDER = _projectFolder()
RESOURCES = PROJECT_FOLDER / "Resources"
if str(PROJECT_FOLDER) not in sys.path:  # developer install: make EchoRegistrationLib importable
    sys.path.insert(0, str(PROJECT_FOLDER))

# The oldest Slicer the module runs in, and why: the library needs Python >= 3.11 (pyproject.toml's
# requires-python; Python 3.10 reached its end of life in October 2026). Slicer 5.6 and 5.8 ship
# Python 3.9, for which PyTorch publishes no wheel after 2.8; Slicer 5.10 ships Python 3.12.
MINIMUM_PYTHON = (3, 11)
MINIMUM_SLICER = "5.10"

# Python packages the module needs beyond what Slicer bundles (numpy, SimpleITK, VTK): PyTorch only.
# The library's file readers, figures and training tools use more (pyproject.toml), but the
# module's path does not (Testing/test_slicer_dependencies.py runs it with those packages blocked).
REQUIREMENTS = (("torch", "torch>=2.2"),)

# Panel choices -> (EchoRegistrationLib method, DLIR refinement on).
METHOD_CHOICES = {
    "Deformable": ("deformable", False),
    "Affine": ("affine", False),
    "Rigid": ("rigid", False),
    "DLIR": ("dlir", False),
    "DLIR + refine": ("dlir", True),
}
DEVICE_CHOICES = {"auto": "auto", "CPU": "cpu", "GPU": "cuda"}
# EchoOutputs field -> parameter holding that output node.
OUTPUT_PARAMETERS = {
    "warped": "warpedSequence",
    "transforms": "transformSequence",
    "strain_map": "strainMapSequence",
    "frame_table": "frameTable",
    "summary_table": "summaryTable",
    "chart": "strainChart",
    "enhanced": "enhancedSequence",
}


def unsupportedReason(version: tuple = tuple(sys.version_info)) -> str:
    """Why the module cannot run with this Python ("" when it can): the Slicer it needs."""
    if tuple(version[:2]) >= MINIMUM_PYTHON:
        return ""
    return _("Echo Registration needs 3D Slicer {slicer} or later (Python {python} or later); this Slicer "
             "runs Python {found}. Please install a current Slicer.").format(
        slicer=MINIMUM_SLICER, python=".".join(map(str, MINIMUM_PYTHON)),
        found=".".join(map(str, version[:3])))


#
# Module
#
class EchoRegistration(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Echo Registration")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Ultrasound")]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["EchoRegistration developers"]
        self.parent.helpText = _(
            "Register every frame of a 2D echocardiography cine to a reference frame (ED) and measure "
            "myocardial strain: warped frames, deformation grids, strain maps, GLS and segmental "
            "strain tables and curves, EF. Needs Slicer {slicer} or later. See the project README for a "
            "step-by-step guide.").format(slicer=MINIMUM_SLICER)
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer, PyTorch and SimpleITK. Test data: CAMUS (Leclerc et al., IEEE TMI 2019).")
        self.parent.icon = qt.QIcon(str(RESOURCES / "Icons" / "EchoRegistration.png"))


#
# Parameter node
#
@parameterNodeWrapper
class EchoRegistrationParameterNode:
    """Every setting of the panel and the output nodes of the last run; saved with the scene.

    inputSequence: the echo cine (sequence of single-slice volumes).
    referenceFrame: reference frame index; -1: ED (from the sequence, else detected as the frame of
        largest tracked LV volume; tracked from the first frame).
    endSystoleFrame: end-systole frame index set by the user, over the sequence's own
        (``EchoSequence.with_end_systole``); -1: the sequence's ES, else detected as the frame of smallest
        tracked LV volume (and no systole anchor).
    myocardiumSource: segmentation, labelmap or three-point list at the reference frame, or None. A
        Union of node types must end with None: Slicer writes the default (None) to a fresh node,
        and stores the index of the member a value belongs to, so the order of members is fixed.
    wallWidth: myocardial thickness (mm) of the three-point template.
    method, refineIterations, device: how to register. The default is the library's
        (``EchoRegistrationLib.workflow.DEFAULT_METHOD`` / ``DEFAULT_REFINE``): "DLIR + refine", 24
        steps (against the images and the default model's anatomy maps), through the systole anchor
        where ES is known (the library's default), near the best without folding on the held-out
        domains of the generalisation benchmark, at under half the optimiser's time per real pair
        (README, Generalisation); "Deformable" is the
        optimiser alone (the one for segmental strain), "DLIR" the network alone.
    refineStart: "DLIR + refine" to the reference: where each frame's refinement starts
        (``EchoRegistrationLib.registration.tracking.REFINE_STARTS``): "best" (the library's default: both the
        direct and the chained start refined, the cine keeping the one that matches the reference better),
        "direct" or "chained" (the hint: ``EchoRegistrationLib.workflow.REFINE_START_HINT``).
    model: the DLIR model: an installed model's name (Resources/Models/<name>), or a checkpoint
        path; a name stays valid when the extension moves (another Slicer revision). Empty: the
        default model (``EchoRegistrationLib.dlir.shipped.SHIPPED_MODEL``); the Widget shows it
        chosen when it is installed.
    systoleAnchor: DLIR to the reference: track through the systole anchor frame when ES is known (the
        sequence's or ``endSystoleFrame``; the library's default, ``WorkflowSettings.anchor`` None); off:
        every frame registered directly (``anchor`` 0).
    float32: DLIR: the networks in float32 where they would run in reduced precision (bfloat16 on CPUs with
        AMX, bfloat16 or float16 on GPUs; ``WorkflowSettings.float32``): results that do not depend on AMX
        (the costs: ``EchoRegistrationLib.workflow.FLOAT32_HINT``, the checkbox's tooltip).
    enhance: enhance the frames with the installed enhancement model before registering
        (experimental, off by default; :meth:`EchoRegistrationLogic.enhancer`).
    warpedSequence ... strainChart, enhancedSequence: outputs of the last run (replaced by the next
        run); enhancedSequence holds the enhanced, unwarped frames, None unless the run enhanced them.
    frameWarped, frameTransform: outputs of "Register current frame".
    """

    inputSequence: vtkMRMLSequenceNode
    referenceFrame: Annotated[int, Minimum(-1)] = -1
    endSystoleFrame: Annotated[int, Minimum(-1)] = -1
    myocardiumSource: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode, vtkMRMLMarkupsFiducialNode,
                            None]
    wallWidth: Annotated[float, WithinRange(3.0, 25.0)] = 10.0
    # literals (this file is read before the library can be imported); Testing/test_slicer_module_ui.py
    # holds them to workflow.DEFAULT_METHOD (refined) and DEFAULT_REFINE
    method: Annotated[str, Choice(list(METHOD_CHOICES))] = "DLIR + refine"
    model: str = ""
    refineIterations: Annotated[int, WithinRange(1, 1000)] = 24
    # registration.tracking.REFINE_STARTS and its default, written out (Testing/test_slicer_module_ui.py)
    refineStart: Annotated[str, Choice(["best", "direct", "chained"])] = "best"
    device: Annotated[str, Choice(list(DEVICE_CHOICES))] = "auto"
    systoleAnchor: bool = True
    float32: bool = False
    enhance: bool = False
    warpedSequence: vtkMRMLSequenceNode
    transformSequence: vtkMRMLSequenceNode
    strainMapSequence: vtkMRMLSequenceNode
    frameTable: vtkMRMLTableNode
    summaryTable: vtkMRMLTableNode
    strainChart: vtkMRMLPlotChartNode
    enhancedSequence: vtkMRMLSequenceNode
    frameWarped: vtkMRMLScalarVolumeNode
    frameTransform: vtkMRMLGridTransformNode


#
# Widget
#
class EchoRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds the .ui to the parameter node, runs the Logic, shows progress and results."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._connection = None  # EchoRegistrationLib.mrml.gui_connection.ParameterGuiConnection
        self._running = False
        self._cancelRequested = False
        self._modelNames = []
        self._modelTerms = {}  # installed model name -> its licence and training data (translated)
        self._otherModelTerms = ""
        self._enhancerInstalled = False
        self._framesChosenFor = None  # the input sequence the reference and ES frames were chosen on

    @property
    def _parameterNode(self) -> Optional[EchoRegistrationParameterNode]:
        return self._connection.wrapper if self._connection else None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        reason = unsupportedReason()
        if reason:  # say why, instead of failing in the library
            label = qt.QLabel(reason)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        from EchoRegistrationLib.dlir.shipped import list_models
        from EchoRegistrationLib.mrml.gui_connection import ParameterGuiConnection

        uiWidget = slicer.util.loadUI(str(RESOURCES / "UI" / "EchoRegistration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = EchoRegistrationLogic()
        self._connection = ParameterGuiConnection(self.ui)

        self._setupModels(list_models())
        self._setupEnhancement()
        # Translated once: slicer.i18n.tr walks the stack on Slicer 5.6 (about 100 ms a call).
        self._applyToolTips = {
            True: _("No DLIR model: put one in Resources/Models or choose another method."),
            False: _("Register every frame to the reference and, with a myocardium, compute the strain.")}

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.registerFrameButton.connect("clicked(bool)", self.onRegisterFrameButton)
        for parameter in ("referenceFrame", "endSystoleFrame"):
            getattr(self.ui, f"{parameter}CurrentButton").connect(
                "clicked(bool)", lambda _checked=False, p=parameter: self.onCurrentFrameButton(p))
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.initializeParameterNode()

    def _setupModels(self, models: "list[ModelInfo]") -> None:
        """List the installed DLIR ``models`` in the model box, each with its licence, training
        data, tracking mode and anatomy network (whose maps guide the refinement) in its tooltip;
        the licence and training data of each are also kept (translated once, here) for the label
        under the box, which shows the chosen model's."""
        self._modelTerms = {}
        for info in models:
            terms = _("Licence: {licence}. Trained on: {data}.").format(
                licence=info.licence, data=", ".join(info.training_data) or "?")
            if "NC" in info.licence.replace("-", " ").split():  # Creative Commons NonCommercial
                terms = _("{terms} Non-commercial use only.").format(terms=terms)
            tooltip = _("{terms} Tracking: {mode}.").format(terms=terms, mode=info.mode)
            if info.anatomy_rows:
                tooltip = _("{tooltip} The refinement also compares its anatomy maps (LV, myocardium, "
                            "left atrium).").format(tooltip=tooltip)
            self.ui.modelComboBox.addItem(info.name, info.name)
            self.ui.modelComboBox.setItemData(self.ui.modelComboBox.count - 1, tooltip, qt.Qt.ToolTipRole)
            self._modelNames.append(info.name)
            self._modelTerms[info.name] = terms
        if not self._modelNames:
            self.ui.modelComboBox.addItem(_("(no model in Resources/Models)"), "")
        self._otherModelTerms = _("Licence and training data: see the checkpoint's .json "
                                  "(not an installed model).")

    def _modelTermsText(self, model: str) -> str:
        """The label's text for the parameter node's ``model``; empty, the default model's, blank when
        that is not installed (nothing translated here: it runs on every parameter change)."""
        if not model:
            from EchoRegistrationLib.dlir.shipped import SHIPPED_MODEL

            return self._modelTerms.get(SHIPPED_MODEL, "")
        return self._modelTerms.get(model, self._otherModelTerms)

    def _setupEnhancement(self) -> None:
        """Enable "Enhance before registration" when an enhancement model is installed, with its
        name, licence and the benchmark's verdict in the tooltip; else disable it and say why."""
        enhancer = self.logic.enhancer()
        self._enhancerInstalled = enhancer is not None
        self.ui.enhanceCheckBox.enabled = self._enhancerInstalled
        if enhancer is None:
            self.ui.enhanceCheckBox.toolTip = _(
                "No enhancement model installed (Resources/Models); train one with scripts/train_enhancer.sh")
            return
        self.ui.enhanceCheckBox.toolTip = _(
            "Enhance the frames with the model '{name}' (licence: {licence}) before registering. "
            "Experimental, off by default: in the project's benchmark it made the DLIR registration of "
            "degraded simulated echo more accurate, but not that of degraded real (CAMUS) frames.").format(
            name=enhancer.name, licence=enhancer.licence)

    def cleanup(self) -> None:
        self.removeObservers()
        if self._connection:
            self._connection.disconnect()

    def enter(self) -> None:
        if self.logic:  # None where the Slicer is too old
            self.initializeParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        if self._running:
            self._cancelRequested = True
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputSequence:
            self._parameterNode.inputSequence = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceNode")
        model = self._chosenModel(self._parameterNode.model)
        if model != self._parameterNode.model:
            self._parameterNode.model = model
        if self._parameterNode.enhance and not self._enhancerInstalled:  # a scene from elsewhere
            self._parameterNode.enhance = False

    def _chosenModel(self, stored: str) -> str:
        """The model the parameter node should hold: the stored one when it is installed or exists,
        the installed model that a scene saved by another installation names by its path, the
        default model when none is stored."""
        from EchoRegistrationLib.dlir.shipped import installed_model_name

        if not stored:
            return self._modelNames[0] if self._modelNames else ""
        if stored in self._modelNames or Path(stored).exists():
            return stored
        return installed_model_name(stored) or stored

    def _modelAvailable(self, model: str) -> bool:
        return bool(model) and (model in self._modelNames or Path(model).exists())

    def setParameterNode(self, parameterNode: Optional[EchoRegistrationParameterNode]) -> None:
        """Connect the panel to ``parameterNode`` (None: to nothing). The node already connected is
        not connected again (:class:`EchoRegistrationLib.mrml.gui_connection.ParameterGuiConnection`)."""
        previous = self._parameterNode
        self._framesChosenFor = parameterNode.inputSequence if parameterNode is not None else None
        if self._connection.connect(parameterNode):
            if previous is not None:
                self.removeObserver(previous, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            if parameterNode is not None:
                self.addObserver(parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
        self._updateGui()

    def _updateGui(self, caller=None, event=None) -> None:
        """Enable what the settings allow; keep the model list on the parameter node's model."""
        node = self._parameterNode
        ready = node is not None and node.inputSequence is not None and not self._running
        method, refine = METHOD_CHOICES[node.method] if node else ("deformable", False)
        dlir = method == "dlir"
        if node and self.ui.modelComboBox.findData(node.model) >= 0:
            self.ui.modelComboBox.currentIndex = self.ui.modelComboBox.findData(node.model)
        missingModel = dlir and not (node and self._modelAvailable(node.model))
        self.ui.inputsCollapsibleButton.enabled = not self._running
        self.ui.registrationCollapsibleButton.enabled = not self._running
        self.ui.modelComboBox.enabled = dlir and bool(self._modelNames)
        self.ui.modelTermsLabel.text = self._modelTermsText(node.model) if node else ""
        self.ui.modelTermsLabel.visible = dlir
        self.ui.refineSpinBox.enabled = self.ui.refineStartComboBox.enabled = refine
        self.ui.systoleAnchorCheckBox.enabled = self.ui.float32CheckBox.enabled = dlir
        points = node and node.myocardiumSource
        self.ui.wallWidthSpinBox.enabled = isinstance(points, vtkMRMLMarkupsFiducialNode)
        if node and node.inputSequence is not self._framesChosenFor:
            # another cine: frame numbers chosen on the last one mean nothing here (a spin box would
            # only clamp them to the new cine's frames)
            changed, self._framesChosenFor = self._framesChosenFor is not None, node.inputSequence
            if changed:
                node.referenceFrame = node.endSystoleFrame = -1
        if node and node.inputSequence:
            last = max(node.inputSequence.GetNumberOfDataNodes() - 1, 0)
            self.ui.referenceFrameSpinBox.maximum = self.ui.endSystoleFrameSpinBox.maximum = last
        self.ui.applyButton.enabled = ready and not missingModel
        self.ui.registerFrameButton.enabled = ready and not missingModel
        self.ui.referenceFrameCurrentButton.enabled = self.ui.endSystoleFrameCurrentButton.enabled = ready
        self.ui.applyButton.toolTip = self._applyToolTips[missingModel]
        self.ui.cancelButton.enabled = self._running
        self.ui.exportButton.enabled = bool(node) and node.frameTable is not None and not self._running

    def onModelChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.model = self.ui.modelComboBox.itemData(index) or ""

    @contextlib.contextmanager
    def _busy(self):
        """Apply and "Register current frame" disabled (and a second click ignored) while installing
        PyTorch or registering: both process GUI events meanwhile."""
        self._running = True
        self._updateGui()
        try:
            yield
        finally:
            self._running = False
            self._updateGui()

    def _onProgress(self, done: int, total: int) -> None:
        self.ui.progressBar.maximum = total
        self.ui.progressBar.value = done
        slicer.app.processEvents()

    def _isCancelRequested(self) -> bool:
        slicer.app.processEvents()  # called between optimiser steps: keeps the GUI responsive
        return self._cancelRequested

    def onCancelButton(self) -> None:
        self._cancelRequested = True
        self.ui.statusLabel.text = _("Cancelling...")

    def _dependenciesReady(self) -> bool:
        """Install missing Python packages after asking; False when the user declines (an
        installation error is shown and raised)."""
        with slicer.util.tryWithErrorDisplay(_("The Python packages could not be installed.")):
            return self.logic.ensureDependencies()

    def onApplyButton(self) -> None:
        if self._running:
            return
        self._cancelRequested = False
        self.ui.progressBar.value = 0
        status = _("Registration failed.")
        start = time.perf_counter()
        try:
            with self._busy():
                if not self._dependenciesReady():
                    status = _("PyTorch is needed to register.")
                    return
                from EchoRegistrationLib.registration import RegistrationCancelled

                self.ui.statusLabel.text = _("Registering...")
                with slicer.util.tryWithErrorDisplay(_("Registration failed."), waitCursor=False):
                    try:
                        outputs = self.logic.run(self._parameterNode, progress=self._onProgress,
                                                 cancel=self._isCancelRequested)
                    except RegistrationCancelled as stopped:
                        status = _("Stopped ({reason}): no outputs were made.").format(reason=stopped)
                        return
                    self._showOutputs(outputs)
                    status = _("Done in {seconds:.1f} s: {registration}.").format(
                        seconds=time.perf_counter() - start, registration=self.logic.describe(outputs.transforms))
        finally:
            self.ui.statusLabel.text = status

    @staticmethod
    def _showOutputs(outputs) -> None:
        """Show the warped frames with the strain map over them and the deformation grid in the
        slice views, the browser in the toolbar, the curves in a plot view."""
        from EchoRegistrationLib.mrml import find_browser, output_layers

        browser = find_browser(outputs.warped.GetScene(), outputs.warped)
        layers = output_layers(outputs, browser)  # the decisions the web page and renderer share
        slicer.util.setSliceViewerLayers(background=layers.background, foreground=layers.foreground,
                                         foregroundOpacity=layers.foreground_opacity, fit=True)
        slicer.modules.sequences.setToolBarActiveBrowserNode(browser)
        if outputs.chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(outputs.chart)

    def onRegisterFrameButton(self) -> None:
        if self._running:
            return
        with self._busy():
            if not self._dependenciesReady():
                return
            with slicer.util.tryWithErrorDisplay(_("Registration of the current frame failed."),
                                                 waitCursor=True):
                warped, _transform = self.logic.registerCurrentFrame(self._parameterNode)
                slicer.util.setSliceViewerLayers(background=warped)
                self.ui.statusLabel.text = _("Frame registered to the reference: see '{name}' ({how}).").format(
                    name=warped.GetName(), how=self.logic.describe(warped))

    def onCurrentFrameButton(self, parameter: str) -> None:
        """Set the frame ``parameter`` ("referenceFrame" or "endSystoleFrame") to the frame the input's
        sequence browser shows."""
        node = self._parameterNode
        if node and node.inputSequence and not self._running:
            with slicer.util.tryWithErrorDisplay(_("Could not read the current frame.")):
                setattr(node, parameter, self.logic.currentFrame(node))

    def onExportButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, _("Export the tables as CSV into"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            try:
                paths = self.logic.exportCsv(self._parameterNode, folder)
            except FileExistsError as error:
                question = _("{error}\nReplace the files?").format(error=error)
                if not slicer.util.confirmOkCancelDisplay(question):
                    return
                paths = self.logic.exportCsv(self._parameterNode, folder, overwrite=True)
            self.ui.statusLabel.text = _("Wrote {files}.").format(files=", ".join(p.name for p in paths))


#
# Logic
#
class EchoRegistrationLogic(ScriptedLoadableModuleLogic):
    """Registration and strain of a sequence node, through EchoRegistrationLib. Takes nodes and
    settings as arguments; no widgets. Callbacks report progress and ask whether to cancel."""

    def __init__(self, modelsFolder: Optional[Path] = None) -> None:
        """modelsFolder: where the installed models are; None: the library's (Resources/Models)."""
        ScriptedLoadableModuleLogic.__init__(self)
        self.modelsFolder = modelsFolder

    def getParameterNode(self) -> EchoRegistrationParameterNode:
        return EchoRegistrationParameterNode(super().getParameterNode())

    # ---------------------------------------------------------------- dependencies
    @staticmethod
    def missingRequirements() -> list[str]:
        """pip requirements of the packages that cannot be imported."""
        return [requirement for name, requirement in REQUIREMENTS if importlib.util.find_spec(name) is None]

    def ensureDependencies(self, askConfirmation: bool = True) -> bool:
        """Install PyTorch (after asking) when it is missing; True when it is present."""
        reason = unsupportedReason()
        if reason:
            raise RuntimeError(reason)
        missing = self.missingRequirements()
        if not missing:
            return True
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("Echo Registration needs PyTorch, which will be downloaded and installed now "
                  "(it is large: this can take several minutes):\n\n{packages}")
                .format(packages="\n".join(missing))):
            return False
        self._installTorch(missing[0])
        importlib.invalidate_caches()
        return not self.missingRequirements()

    @staticmethod
    def _installTorch(requirement: str) -> None:
        """PyTorch through the PyTorch extension (it picks the CUDA build for the GPU) when
        installed, else from PyPI."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            slicer.util.pip_install(requirement)
            return
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, torchVersionRequirement=requirement.removeprefix("torch"))
        if torch is None:
            raise RuntimeError(_("PyTorch could not be installed by the PyTorch extension."))

    # ---------------------------------------------------------------- processing
    def enhancer(self) -> "Optional[ModelInfo]":
        """The :class:`EchoRegistrationLib.dlir.shipped.ModelInfo` of the enhancement model that
        "Enhance before registration" uses: the shipped one when installed, else the first installed
        by name; None when none is. Needs no PyTorch."""
        from EchoRegistrationLib.dlir.shipped import ENHANCER_KIND, MODELS_DIR, list_models

        installed = list_models(self.modelsFolder or MODELS_DIR, kind=ENHANCER_KIND)
        return installed[0] if installed else None

    def _enhanceSetting(self, enhance: bool) -> Optional[str]:
        """The settings' ``enhance``: the installed enhancer's checkpoint folder when ``enhance``,
        else None (off). Raises ValueError when it is on and no enhancement model is installed."""
        if not enhance:
            return None
        enhancer = self.enhancer()
        if enhancer is None:
            raise ValueError(_("Enhance before registration is on, but no enhancement model is "
                               "installed (Resources/Models)."))
        return str(enhancer.path)

    def settings(self, parameterNode: EchoRegistrationParameterNode):
        """The :class:`EchoRegistrationLib.mrml.RegistrationSettings` of the parameter node. An empty
        model with a DLIR method is the default model (:data:`EchoRegistrationLib.dlir.shipped.SHIPPED_MODEL`,
        resolved by the library's workflow: ``settings.describe_model()`` names it)."""
        from EchoRegistrationLib.mrml import RegistrationSettings

        method, refine = METHOD_CHOICES[parameterNode.method]
        return RegistrationSettings(
            method=method, model=parameterNode.model if method == "dlir" else "",
            refine=parameterNode.refineIterations if refine else 0,
            anchor=None if parameterNode.systoleAnchor or method != "dlir" else 0,
            float32=parameterNode.float32 and method == "dlir",
            reference=None if parameterNode.referenceFrame < 0 else parameterNode.referenceFrame,
            es_frame=None if parameterNode.endSystoleFrame < 0 else parameterNode.endSystoleFrame,
            device=DEVICE_CHOICES[parameterNode.device], enhance=self._enhanceSetting(parameterNode.enhance),
            options={"refine_start": parameterNode.refineStart} if refine else {})

    def process(self, inputSequence: vtkMRMLSequenceNode, settings,
                myocardiumSource: Optional[slicer.vtkMRMLNode] = None, wallWidth: float = 10.0,
                progress=None, cancel=None):
        """Register ``inputSequence`` (and compute the strain with a myocardium source) and make
        the output nodes, synchronised in the sequence's browser (made when there is none).

        Args:
            inputSequence: sequence of single-slice volumes.
            settings: :class:`EchoRegistrationLib.mrml.RegistrationSettings`.
            myocardiumSource: segmentation, labelmap or three-point list at the reference frame.
            wallWidth: mm, for a three-point myocardium.
            progress: ``progress(done, total)`` in frame pairs, as the work advances.
            cancel: returns True to stop (``RegistrationCancelled``; the scene is left unchanged).

        Returns:
            :class:`EchoRegistrationLib.mrml.EchoOutputs`.
        """
        from EchoRegistrationLib.mrml import add_outputs, analyse, browser_for

        start = time.perf_counter()
        analysis = analyse(inputSequence, settings, myocardiumSource, wall_width=wallWidth,
                           progress=progress, cancel=cancel)
        scene = inputSequence.GetScene()
        outputs = add_outputs(scene, browser_for(scene, inputSequence), inputSequence, analysis)
        logging.info(f"EchoRegistration: {inputSequence.GetName()} ({analysis.sequence.n_frames} frames, "
                     f"{self.describe(outputs.transforms)}) in {time.perf_counter() - start:.1f} s")
        for line in analysis.registration.warnings:  # frames without signal, lowered similarity
            logging.warning(f"EchoRegistration: {inputSequence.GetName()}: {line}")
        if analysis.strain is not None:
            logging.info(f"EchoRegistration: {analysis.strain.frames.describe()}")
            for warning in analysis.strain.warnings():
                logging.warning(f"EchoRegistration: {warning}")
        return outputs

    @staticmethod
    def describe(outputNode) -> str:
        """How a registration was made, as recorded on its output node (a run's deformation sequence, or the
        warped frame or frame deformation of "Register current frame";
        ``EchoRegistrationLib.mrml.tables.REGISTRATION_ATTRIBUTE``): the method; DLIR: the model, its
        licence, the networks' precision, the refinement and the systole anchor. "" when the node is
        None or records none (a scene saved before it was recorded). Needs no PyTorch."""
        from EchoRegistrationLib.mrml.tables import REGISTRATION_ATTRIBUTE

        if outputNode is None:
            return ""
        return outputNode.GetAttribute(REGISTRATION_ATTRIBUTE) or ""

    def run(self, parameterNode: EchoRegistrationParameterNode, progress=None, cancel=None):
        """:meth:`process` with the parameter node's inputs and settings; the new output nodes
        replace those of the previous run in the parameter node (the old ones are removed)."""
        from EchoRegistrationLib.mrml import remove_nodes

        outputs = self.process(parameterNode.inputSequence, self.settings(parameterNode),
                               parameterNode.myocardiumSource, parameterNode.wallWidth, progress, cancel)
        previous = [getattr(parameterNode, name) for name in OUTPUT_PARAMETERS.values()]
        remove_nodes([node for node in previous if node is not None])
        for field, name in OUTPUT_PARAMETERS.items():
            setattr(parameterNode, name, getattr(outputs, field))
        return outputs

    def registerCurrentFrame(self, parameterNode: EchoRegistrationParameterNode):
        """Register the frame the input's browser shows to the reference frame; the result goes in
        the parameter node's ``frameWarped`` and ``frameTransform`` (made on first use)."""
        from EchoRegistrationLib.mrml import register_frame, show_frame_registration

        sequence = parameterNode.inputSequence
        scene = sequence.GetScene()
        result = register_frame(sequence, self.currentFrame(parameterNode), self.settings(parameterNode))
        warped, transform = show_frame_registration(scene, sequence.GetName(), result,
                                                     parameterNode.frameWarped, parameterNode.frameTransform)
        parameterNode.frameWarped, parameterNode.frameTransform = warped, transform
        return warped, transform

    @staticmethod
    def currentFrame(parameterNode: EchoRegistrationParameterNode) -> int:
        """The frame (from 0) of the input sequence its browser shows now (a browser is made when it has
        none, showing frame 0; in a browser whose master is another sequence, the input's frame shown
        with it). Needs no PyTorch. Raises EchoDataError when the browser shows none of its frames."""
        from EchoRegistrationLib.mrml import browser_for, selected_frame

        sequence = parameterNode.inputSequence
        return selected_frame(browser_for(sequence.GetScene(), sequence), sequence)

    @staticmethod
    def exportCsv(parameterNode: EchoRegistrationParameterNode, folder,
                  overwrite: bool = False) -> list[Path]:
        """Write the last run's per-frame table and strain summary as ``{table name}.csv`` in
        ``folder`` (full precision), with ``{frame table name} registration.txt``: how the registration
        was made (model, licence, precision), as its deformation sequence records it
        (``EchoRegistrationLib.mrml.tables.export_tables``); FileExistsError unless ``overwrite``. Needs
        no PyTorch (a saved scene's tables export before it is installed)."""
        from EchoRegistrationLib.mrml.tables import export_tables

        tables = [t for t in (parameterNode.frameTable, parameterNode.summaryTable) if t is not None]
        if not tables:
            raise ValueError(_("Nothing to export: run the registration first."))
        return export_tables(tables, folder, overwrite,
                             EchoRegistrationLogic.describe(parameterNode.transformSequence) or None)


#
# Test
#
class EchoRegistrationTest(ScriptedLoadableModuleTest):
    """The scenario of Testing/test_mrml_scenario.py, inside Slicer, through the module's Logic."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_scenario()

    def test_scenario(self) -> None:
        self.delayDisplay("Starting the EchoRegistration scenario")
        logic = EchoRegistrationLogic()
        self.assertTrue(logic.ensureDependencies(askConfirmation=False), "missing Python packages")
        import numpy as np

        from EchoRegistrationLib.mrml import (browser_for, field_from_transform_node, read_table_csv,
                                              table_columns, volume_sequence_node)
        from EchoRegistrationLib.mrml.sequences import volume_node
        from EchoRegistrationLib.mrml.transforms import ras_vectors
        from EchoRegistrationLib.registration import RegistrationCancelled
        from EchoRegistrationLib.simulation import simulate_sequence

        sim = simulate_sequence(view="A4C", n_frames=6, image_size=(96, 80), seed=3)
        seq, scene = sim.sequence, slicer.mrmlScene
        sequence = volume_sequence_node(scene, "echo", seq)
        browser = browser_for(scene, sequence)
        labelmap = scene.AddNode(volume_node(seq.labels[0], seq, slicer.vtkMRMLLabelMapVolumeNode()))
        parameters = logic.getParameterNode()
        parameters.inputSequence = sequence
        parameters.myocardiumSource = labelmap
        from EchoRegistrationLib.dlir.shipped import SHIPPED_MODEL

        settings = logic.settings(parameters)
        self.assertIsNone(settings.enhance)  # enhancement is off by default
        # the default: DLIR + refine 24, the parameter node's empty model being the default model
        self.assertEqual((settings.method, settings.refine, settings.describe_model()), ("dlir", 24, SHIPPED_MODEL))

        self.delayDisplay("Cancel leaves the scene unchanged")
        count = scene.GetNumberOfNodes()
        with self.assertRaises(RegistrationCancelled):
            logic.run(parameters, cancel=lambda: True)
        self.assertEqual(scene.GetNumberOfNodes(), count)
        self.assertIsNone(parameters.warpedSequence)

        self.delayDisplay("Register, strain, outputs")
        steps = []
        outputs = logic.run(parameters, progress=lambda done, total: steps.append(done))
        self.assertEqual(steps[-1], 5)
        for node in (outputs.warped, outputs.transforms, outputs.strain_map):
            self.assertTrue(browser.IsSynchronizedSequenceNode(node.GetID()))
        browser.SetSelectedItemNumber(5)
        slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(browser)
        field = field_from_transform_node(outputs.transforms.GetNthDataNode(5), seq)
        myocardium = seq.labels[0] == 2
        error = np.linalg.norm(field - sim.displacement[5], axis=-1)[myocardium].mean()
        self.assertLess(error, 2.0)
        transform = browser.GetProxyNode(outputs.transforms)
        ijk_to_ras = seq.ijk_to_ras()
        for i, j in list(zip(*np.nonzero(myocardium)))[::50]:
            p = (ijk_to_ras @ [j, i, 0.0, 1.0])[:3]
            moved = np.array(transform.GetTransformFromParent().TransformPoint(p))
            np.testing.assert_allclose(moved, p + ras_vectors(field[i, j], seq), atol=1e-5)
        gls = table_columns(outputs.frame_table)["GLS endocardial (%)"]
        self.assertAlmostEqual(gls[-1], sim.gls_endo[-1], delta=4.0)
        self.assertEqual(outputs.chart.GetNumberOfPlotSeriesNodes(), 8)

        self.delayDisplay("Saved and read back")
        folder = Path(slicer.util.tempDirectory())
        self.assertTrue(slicer.util.saveNode(outputs.warped, str(folder / "warped.seq.nrrd")))
        loaded = slicer.util.loadSequence(str(folder / "warped.seq.nrrd"))
        for t in (0, 5):
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(loaded.GetNthDataNode(t)),
                                          slicer.util.arrayFromVolume(outputs.warped.GetNthDataNode(t)))
        tables = {t.GetName(): t for t in (outputs.frame_table, outputs.summary_table)}
        *csvs, note = logic.exportCsv(parameters, folder)
        self.assertEqual(note.read_text().strip(), logic.describe(outputs.transforms))
        for path in csvs:
            table, back = tables[path.stem], read_table_csv(path)
            for column, values in table_columns(table).items():
                np.testing.assert_array_equal(back[column], values)

        self.delayDisplay("A second run replaces the outputs; current frame")
        first = outputs.warped
        outputs = logic.run(parameters)
        self.assertIsNone(first.GetScene())
        self.assertEqual(parameters.warpedSequence.GetID(), outputs.warped.GetID())
        browser.SetSelectedItemNumber(3)
        warped, transform = logic.registerCurrentFrame(parameters)
        self.assertEqual(slicer.util.arrayFromVolume(warped).shape, (1, 96, 80))
        self.assertGreater(np.abs(slicer.util.arrayFromGridTransform(transform)).max(), 1.0)
        self.assertTrue(logic.describe(warped).startswith("DLIR ("))
        self.delayDisplay("Test passed")
