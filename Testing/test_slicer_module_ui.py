"""The Slicer module's panel without Slicer: the .ui parses, every widget the Widget uses exists,
every parameter binding fits Slicer's GUI connectors, and the module's lists agree with the
library and pyproject.toml (issue 6); what made the panel fail to start in every Slicer, and the
supported Slicer versions (issue 17). The module file imports Qt, so it is read as source (ast), and
run under the Python of the oldest Slicer with stand-ins for Slicer's Qt modules."""

from __future__ import annotations

import ast
import dataclasses
import glob
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from EchoRegistrationLib.mrml import EchoOutputs
from EchoRegistrationLib.mrml.pipeline import DEVICES, METHODS
from EchoRegistrationLib.workflow import DEFAULT_METHOD, DEFAULT_REFINE, FLOAT32_HINT, FLOAT32_LABEL

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "EchoRegistration" / "EchoRegistration.py"
UI = REPO / "Resources" / "UI" / "EchoRegistration.ui"
QT_CLASSES = {"QWidget", "QLabel", "QSpinBox", "QDoubleSpinBox", "QComboBox", "QPushButton",
              "QProgressBar", "QLineEdit", "QCheckBox"}
# Widget classes Slicer's parameterNodeWrapper connectors accept for each parameter type
# (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py).
CONNECTORS = {"int": {"QSpinBox", "QSlider"}, "float": {"QDoubleSpinBox", "ctkSliderWidget"},
              "bool": {"QCheckBox", "QPushButton"}, "str": {"QLineEdit", "QTextEdit"},
              "choice": {"QComboBox"}, "node": {"qMRMLNodeComboBox"}}


@pytest.fixture(scope="module")
def source():
    return MODULE.read_text()


@pytest.fixture(scope="module")
def tree(source):
    return ast.parse(source)


@pytest.fixture(scope="module")
def ui():
    return ET.parse(UI).getroot()


def widgets(ui):
    return {w.get("name"): w for w in ui.iter("widget")}


def constant(tree, name):
    """The literal value of a module-level assignment ``name = ...``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def class_def(tree, name):
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def parameters(tree):
    """{name: annotation source} of the parameterNodeWrapper class."""
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    assert any(getattr(d, "id", None) == "parameterNodeWrapper" for d in wrapper.decorator_list)
    return {n.target.id: ast.unparse(n.annotation) for n in wrapper.body if isinstance(n, ast.AnnAssign)}


def test_ui_parses_and_declares_its_custom_widgets(ui):
    assert ui.tag == "ui" and ui.find("class").text == "EchoRegistration"
    root = ui.find("widget")
    assert (root.get("class"), root.get("name")) == ("qMRMLWidget", "EchoRegistration")
    custom = {c.find("class").text for c in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    assert used - QT_CLASSES <= custom, f"undeclared custom widgets: {used - QT_CLASSES - custom}"
    names = [w.get("name") for w in ui.iter("widget")]
    assert len(names) == len(set(names)), "duplicate widget names"
    for connection in ui.iter("connection"):
        assert connection.find("receiver").text in names


def test_every_widget_the_module_uses_exists_in_the_ui(source, ui):
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert {"applyButton", "cancelButton", "progressBar", "registerFrameButton", "exportButton",
            "modelComboBox"} <= used
    missing = used - set(widgets(ui))
    assert not missing, f"the module uses widgets the .ui lacks: {sorted(missing)}"


def test_parameter_bindings_fit_slicer_gui_connectors(tree, ui):
    params = parameters(tree)
    bound = {}
    for name, widget in widgets(ui).items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = widget
    assert set(bound) <= set(params), f"unknown parameters in the .ui: {set(bound) - set(params)}"
    outputs = set(constant(tree, "OUTPUT_PARAMETERS").values()) | {"frameWarped", "frameTransform"}
    # every setting is bound, except the model list that the Widget fills from Resources/Models
    assert set(bound) == set(params) - outputs - {"model"}
    for name, widget in bound.items():
        annotation = params[name]
        if "Choice(" in annotation:
            kind = "choice"
        elif re.fullmatch(r"Union\[(vtkMRML\w+, )+None\]|vtkMRML\w+", annotation):
            kind = "node"
            ui_types = [s.text for s in widget.find("property[@name='nodeTypes']").iter("string")]
            assert ui_types == re.findall(r"vtkMRML\w+", annotation), name
        else:
            kind = re.match(r"(?:Annotated\[)?(\w+)", annotation).group(1)
        assert widget.get("class") in CONNECTORS[kind], (name, annotation, widget.get("class"))


def test_choices_and_defaults_match_the_library(tree):
    methods, devices = constant(tree, "METHOD_CHOICES"), constant(tree, "DEVICE_CHOICES")
    assert {m for m, _ in methods.values()} == set(METHODS)
    assert set(devices.values()) == set(DEVICES)
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    defaults = {n.target.id: ast.literal_eval(n.value) for n in wrapper.body
                if isinstance(n, ast.AnnAssign) and n.value is not None}
    assert defaults["method"] in methods and defaults["device"] in devices
    # the library's default: the default DLIR model (the empty model) refined by DEFAULT_REFINE steps
    assert methods[defaults["method"]] == (DEFAULT_METHOD, True)
    assert (defaults["refineIterations"], defaults["model"]) == (DEFAULT_REFINE, "")
    assert defaults["referenceFrame"] == -1
    assert set(constant(tree, "OUTPUT_PARAMETERS")) == {f.name for f in dataclasses.fields(EchoOutputs)}


def test_the_enhance_checkbox_is_bound_and_off_by_default(tree, ui):
    """Issue 16: "Enhance before registration" is a checkbox bound to the bool parameter ``enhance``,
    False unless the user ticks it (enhancement did not make registration more accurate)."""
    box = widgets(ui)["enhanceCheckBox"]
    assert box.get("class") == "QCheckBox"
    assert box.find("property[@name='SlicerParameterName']/string").text == "enhance"
    assert box.find("property[@name='text']/string").text == "Enhance before registration"
    assert parameters(tree)["enhance"] == "bool"
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    default = next(n.value for n in wrapper.body if isinstance(n, ast.AnnAssign) and n.target.id == "enhance")
    assert ast.literal_eval(default) is False


def test_the_systole_anchor_checkbox_is_bound_and_on_by_default(tree, ui):
    """The panel carries the library's default (the systole anchor, WorkflowSettings.anchor None) and lets
    the user register every frame directly instead."""
    box = widgets(ui)["systoleAnchorCheckBox"]
    assert box.get("class") == "QCheckBox"
    assert box.find("property[@name='SlicerParameterName']/string").text == "systoleAnchor"
    assert parameters(tree)["systoleAnchor"] == "bool"
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    default = next(n.value for n in wrapper.body if isinstance(n, ast.AnnAssign) and n.target.id == "systoleAnchor")
    assert ast.literal_eval(default) is True


def test_the_float32_checkbox_is_bound_off_by_default_and_worded_as_the_web_page(tree, ui):
    """'Networks in float32': a checkbox bound to the bool parameter ``float32``, off (the hardware's reduced
    precision where it has one), with the label and tooltip the web page shows (workflow.FLOAT32_LABEL,
    FLOAT32_HINT: one text with the measured costs)."""
    box = widgets(ui)["float32CheckBox"]
    assert box.get("class") == "QCheckBox"
    assert box.find("property[@name='SlicerParameterName']/string").text == "float32"
    assert (box.find("property[@name='text']/string").text,
            box.find("property[@name='toolTip']/string").text) == (FLOAT32_LABEL, FLOAT32_HINT)
    assert parameters(tree)["float32"] == "bool"
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    default = next(n.value for n in wrapper.body if isinstance(n, ast.AnnAssign) and n.target.id == "float32")
    assert ast.literal_eval(default) is False


def test_logic_methods_called_by_widget_and_test_exist(tree):
    logic = class_def(tree, "EchoRegistrationLogic")
    defined = {n.name for n in logic.body if isinstance(n, ast.FunctionDef)} | {"getParameterNode"}
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Attribute, ast.Name)):
            owner = node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id
            if owner == "logic" and node.attr[0].islower():
                called.add(node.attr)
    assert called and called <= defined, f"undefined Logic methods: {called - defined}"


def test_the_module_installs_torch_only_as_the_project_pins_it(tree):
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = constant(tree, "REQUIREMENTS")
    assert [name for name, _ in requirements] == ["torch"]
    assert {r for _, r in requirements} <= set(declared)


def test_resources_exist_where_the_module_and_the_build_look(source):
    for path in ("Icons/EchoRegistration.png", "UI/EchoRegistration.ui"):
        assert (REPO / "Resources" / path).is_file()
        assert path.split("/")[0] in source
    cmake = (REPO / "EchoRegistration" / "CMakeLists.txt").read_text()
    for needed in ("slicerMacroBuildScriptedModule", "slicer_add_python_unittest",
                   "EchoRegistrationLib/*.py", "Resources/UI/*.ui", "Resources/Icons/*.png"):
        assert needed in cmake


def node_unions(tree):
    """{parameter: [member names]} of the parameters annotated with a Union."""
    unions = {}
    for name, annotation in parameters(tree).items():
        node = ast.parse(annotation, mode="eval").body
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Union":
            members = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            unions[name] = [ast.unparse(m) for m in members]
    return unions


def test_node_unions_end_with_none(tree):
    """Slicer writes the default (None) to a fresh parameter node, and a Union serializer can only
    write a value one of its members accepts: without None, setup() and every enter() fail
    ("Unable to write value 'None'"). The stored value names the member's index, so None goes last
    and the members keep their order (Slicer Base/Python/slicer/parameterNodeWrapper/serializers.py)."""
    unions = node_unions(tree)
    assert "myocardiumSource" in unions
    for name, members in unions.items():
        nodes = [m for m in members if m.startswith("vtkMRML")]
        if nodes:
            assert members == [*nodes, "None"], (name, members)
    assert unions["myocardiumSource"][:3] == ["vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode",
                                              "vtkMRMLMarkupsFiducialNode"]


def method(tree, cls, name):
    return next(n for n in class_def(tree, cls).body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_widget_connects_through_the_version_independent_connection(tree, source):
    """connectGui returns its tag only from Slicer 5.10: the Widget goes through
    ParameterGuiConnection (tested in test_slicer_gui_connection.py) and never calls the wrapper's
    connect / disconnect itself."""
    widget = ast.get_source_segment(source, class_def(tree, "EchoRegistrationWidget"))
    assert "ParameterGuiConnection(self.ui)" in widget
    assert "connectGui" not in widget and "disconnectGui" not in widget


@pytest.mark.parametrize("handler", ["onApplyButton", "onRegisterFrameButton"])
def test_a_second_click_cannot_start_a_second_install_or_run(tree, handler):
    """The PyTorch install processes GUI events for every pip line: the buttons are disabled (busy)
    before it starts, and a click that still arrives is ignored."""
    function = method(tree, "EchoRegistrationWidget", handler)
    assert ast.unparse(function.body[0]) == "if self._running:\n    return"
    busy = [n for n in ast.walk(function)
            if isinstance(n, ast.With) and ast.unparse(n.items[0].context_expr) == "self._busy()"]
    assert len(busy) == 1

    def installs(node):
        return ast.unparse(node).count("self._dependenciesReady()")

    assert installs(busy[0]) == installs(function) == 1


def test_gui_updates_translate_nothing(tree):
    """Translated text is made once in setup: slicer.i18n.tr walks the stack on Slicer 5.6 (about
    100 ms a call), and _updateGui runs on every parameter change."""
    update = ast.unparse(method(tree, "EchoRegistrationWidget", "_updateGui"))
    assert "_(" not in update and "translate(" not in update


def test_the_table_export_needs_no_torch(tree):
    """Export CSV runs without PyTorch (a saved scene reopened before it is installed): the Logic
    imports only torch-free modules there (Testing/test_slicer_dependencies.py runs them without
    torch)."""
    export = method(tree, "EchoRegistrationLogic", "exportCsv")
    imported = {n.module for n in ast.walk(export) if isinstance(n, ast.ImportFrom)}
    assert imported == {"EchoRegistrationLib.mrml.tables"}


def test_supported_slicer_and_python_agree_everywhere(tree):
    """The module's minimum Python is pyproject's requires-python; the README and the extension's
    description name the minimum Slicer, and the README the Python each supported Slicer ships."""
    minimum = constant(tree, "MINIMUM_PYTHON")
    slicer_version = constant(tree, "MINIMUM_SLICER")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=" + ".".join(map(str, minimum))
    readme = (REPO / "README.md").read_text()
    assert f"Slicer {slicer_version} or later" in readme
    for shipped in ("| 5.6 | 3.9 |", "| 5.8 | 3.9 |", "| 5.10 | 3.12 |"):
        assert shipped in readme
    description = re.search(r'set\(EXTENSION_DESCRIPTION "([^"]*)"', (REPO / "CMakeLists.txt").read_text())
    assert f"Slicer {slicer_version} or later" in description.group(1)


def oldest_slicer_python() -> str | None:
    """A Python 3.9 interpreter (the Python of Slicer 5.6 and 5.8), from PATH or pyenv."""
    found = shutil.which("python3.9")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(root, "versions", "3.9*", "bin", "python3.9")))
    return candidates[-1] if candidates else None


def test_on_an_older_slicer_the_module_loads_and_says_why_it_cannot_run():
    """Under Python 3.9 (Slicer 5.6 / 5.8) the module file imports, with stand-ins for Slicer's
    Qt-side modules, and its panel shows the reason instead of the library failing at import."""
    python = oldest_slicer_python()
    if python is None:
        pytest.skip("no Python 3.9 interpreter (pyenv) on this machine")
    run = subprocess.run([python, str(REPO / "Testing" / "slicer_stand_in.py"), str(MODULE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    label = run.stdout.strip()
    assert label.startswith("Echo Registration needs 3D Slicer 5.10 or later (Python 3.11 or later)"), label
    assert "this Slicer runs Python 3.9." in label


def test_the_frame_spin_boxes_are_bound_and_do_not_clamp_a_saved_frame(tree, ui):
    """Reference and ES frame: -1 is the default (ED / the sequence's ES, shown as text), and the maximum
    the .ui gives is far above any cine's length, so that a scene's saved frame is not clamped (Qt's default
    maximum is 99) when the parameter node is connected, before the Widget sets the input's last frame."""
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    defaults = {n.target.id: ast.literal_eval(n.value) for n in wrapper.body
                if isinstance(n, ast.AnnAssign) and n.value is not None}
    for box_name, parameter in (("referenceFrameSpinBox", "referenceFrame"), ("endSystoleFrameSpinBox",
                                                                             "endSystoleFrame")):
        box = widgets(ui)[box_name]
        assert box.find("property[@name='SlicerParameterName']/string").text == parameter
        assert box.find("property[@name='minimum']/number").text == str(defaults[parameter]) == "-1"
        assert int(box.find("property[@name='maximum']/number").text) >= 99999
        assert box.find("property[@name='specialValueText']/string").text
        button = widgets(ui)[f"{parameter}CurrentButton"]  # sets it to the browser's frame
        assert (button.get("class"), button.find("property[@name='text']/string").text) == \
            ("QPushButton", "Current frame")


def test_the_refinement_start_is_bound_to_the_library_s_choices_and_default(tree, ui):
    """'Refinement start': a combo box bound to ``refineStart``, whose choices and default are the library's
    (registration.tracking.REFINE_STARTS, DEFAULT_REFINE_START), with the label and hint the web page shows
    (workflow.REFINE_START_LABEL, REFINE_START_HINT)."""
    from EchoRegistrationLib.registration.tracking import DEFAULT_REFINE_START, REFINE_STARTS
    from EchoRegistrationLib.workflow import REFINE_START_HINT, REFINE_START_LABEL

    box = widgets(ui)["refineStartComboBox"]
    assert box.get("class") == "QComboBox"
    assert box.find("property[@name='SlicerParameterName']/string").text == "refineStart"
    assert box.find("property[@name='toolTip']/string").text == REFINE_START_HINT
    assert widgets(ui)["refineStartLabel"].find("property[@name='text']/string").text == f"{REFINE_START_LABEL}:"
    annotation = ast.parse(parameters(tree)["refineStart"]).body[0].value
    choice = annotation.slice.elts[1]
    assert ast.unparse(choice.func) == "Choice" and ast.literal_eval(choice.args[0]) == list(REFINE_STARTS)
    wrapper = class_def(tree, "EchoRegistrationParameterNode")
    default = next(n.value for n in wrapper.body if isinstance(n, ast.AnnAssign) and n.target.id == "refineStart")
    assert ast.literal_eval(default) == DEFAULT_REFINE_START
