"""The Slicer module's panel without Slicer: the .ui parses, every widget the Widget uses exists,
every parameter binding fits Slicer's GUI connectors, and the module's lists agree with the
library and pyproject.toml (issue 6). The module file imports Qt, so it is read as source (ast)."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from EchoRegistrationLib.mrml import EchoOutputs
from EchoRegistrationLib.mrml.pipeline import DEVICES, METHODS

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
        elif re.fullmatch(r"Union\[(vtkMRML\w+(, )?)+\]|vtkMRML\w+", annotation):
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
    assert defaults["referenceFrame"] == -1
    assert set(constant(tree, "OUTPUT_PARAMETERS")) == {f.name for f in dataclasses.fields(EchoOutputs)}


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


def test_model_list_holds_only_dlir_registration_checkpoints(source, tree, tmp_path):
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "modelFiles")
    namespace = {"Path": Path, "json": json, "MODELS": tmp_path}
    exec(ast.get_source_segment(source, function), namespace)  # stdlib only: runs without Slicer
    for name, kind in (("run1/model", "dlir"), ("run1/discriminator", "discriminator"),
                       ("shape/model", "vae"), ("a4c", "dlir")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
        (tmp_path / f"{name}.json").write_text(json.dumps({"kind": kind}))
    (tmp_path / "orphan.safetensors").write_bytes(b"")
    assert namespace["modelFiles"]() == [tmp_path / "a4c.safetensors", tmp_path / "run1/model.safetensors"]
    assert namespace["modelFiles"](tmp_path / "absent") == []
