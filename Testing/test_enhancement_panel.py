"""Issue 16, "Enhance before registration" in the Slicer panel: the model catalog lists enhancement
generators apart from DLIR models; the module's Logic puts the installed enhancer in the settings only
when the checkbox's parameter is on, and the Widget disables the checkbox when none is installed (the
module file run on slicer-core's real MRML, stand-ins for Slicer's Qt-side modules only); the MRML
pipeline registers the enhanced frames."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from EchoRegistrationLib.dlir.checkpoints import save_model
from EchoRegistrationLib.dlir.shipped import (ENHANCER_KIND, MODELS_DIR, SHIPPED_ENHANCER, SHIPPED_MODEL,
                                              ModelKindError, list_models, resolve_model)
from EchoRegistrationLib.enhancement.inference import enhance_sequence, resolve_enhancer
from EchoRegistrationLib.enhancement.networks import ResnetGenerator, initialise
from EchoRegistrationLib.enhancement.training import PIXEL_MM
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "EchoRegistration" / "EchoRegistration.py"
ENHANCER = "my-enhancer"
LICENCE = "CC0-1.0 (test weights)"
DOMAINS = {"low": {"source": "simulator (degraded)"}, "high": {"source": "simulator"}}


def save_enhancer(folder: Path) -> Path:
    """A tiny enhancement generator saved as ``train_enhancer`` saves its "model", its output layer
    drawn at random (seeded) so that it is not the identity a residual generator starts as."""
    torch.manual_seed(0)
    generator = initialise(ResnetGenerator(width=4, blocks=1))
    torch.nn.init.normal_(generator.head.weight, 0.0, 0.05)
    save_model(generator, folder, data=DOMAINS, pixel_mm=PIXEL_MM, licence=LICENCE)
    return folder


@pytest.fixture
def models(tmp_path) -> Path:
    """A models folder holding the shipped DLIR model and one enhancer."""
    folder = tmp_path / "Models"
    shutil.copytree(MODELS_DIR / SHIPPED_MODEL, folder / SHIPPED_MODEL)
    save_enhancer(folder / ENHANCER)
    return folder


def test_the_catalog_lists_each_kind_apart(models):
    assert [m.name for m in list_models(models)] == [SHIPPED_MODEL]  # DLIR, the default kind
    (enhancer,) = list_models(models, kind=ENHANCER_KIND)
    assert (enhancer.name, enhancer.path, enhancer.kind) == (ENHANCER, models / ENHANCER, ENHANCER_KIND)
    assert (enhancer.licence, enhancer.mode) == (LICENCE, "")
    assert enhancer.training_data == ("simulator (degraded)", "simulator")
    for name in (SHIPPED_ENHANCER, "a-enhancer"):
        shutil.copytree(models / ENHANCER, models / name)
    names = [m.name for m in list_models(models, kind=ENHANCER_KIND)]
    assert names == [SHIPPED_ENHANCER, "a-enhancer", ENHANCER]  # the default first, then by name
    with pytest.raises(ValueError, match="kind must be one of"):
        list_models(models, kind="vae")


def test_a_name_resolves_only_to_a_model_of_its_kind(models):
    assert resolve_enhancer(ENHANCER, models) == models / ENHANCER
    assert resolve_model(SHIPPED_MODEL, models) == models / SHIPPED_MODEL
    with pytest.raises(ModelKindError, match=rf"{SHIPPED_MODEL}: an installed registration \(DLIR\) model, "
                                             rf"not an enhancement model \(installed: {ENHANCER};"):
        resolve_enhancer(SHIPPED_MODEL, models)
    with pytest.raises(ModelKindError, match=rf"{ENHANCER}: an installed enhancement model, not a "
                                             rf"registration \(DLIR\) model \(installed: {SHIPPED_MODEL};"):
        resolve_model(ENHANCER, models)
    with pytest.raises(FileNotFoundError, match="none in .*absent; train one: echoreg train enhancer"):
        resolve_enhancer(SHIPPED_ENHANCER, models.parent / "absent")


def test_a_model_of_the_other_kind_is_bad_input_and_a_missing_name_is_not_found(models):
    """Another kind's name is a ValueError (the project's EchoDataError: the CLI's one-line errors),
    never FileNotFoundError; a name of no kind at all still is FileNotFoundError, not the kind error."""
    with pytest.raises(ModelKindError) as other:
        resolve_enhancer(SHIPPED_MODEL, models)
    assert isinstance(other.value, EchoDataError) and isinstance(other.value, ValueError)
    assert not isinstance(other.value, OSError)
    assert other.value.source == SHIPPED_MODEL
    assert other.value.problem.startswith("an installed registration (DLIR) model, not an enhancement model")
    for name, resolve in (("no-such-model", resolve_enhancer), ("no-such-model", resolve_model)):
        with pytest.raises(FileNotFoundError, match="no such checkpoint and no installed model") as missing:
            resolve(name, models)
        assert not isinstance(missing.value, ValueError)


def test_the_command_line_reports_a_model_of_the_other_kind_in_one_line(tmp_path, capsys):
    """The installed catalog (Resources/Models) holds both kinds: each asked for as the other, by name
    or by checkpoint path, ends the command with status 2 and one line naming the model."""
    from EchoRegistrationLib.cli import main
    from EchoRegistrationLib.io.dispatch import save_sequence

    cine = save_sequence(simulate_sequence(view="A4C", n_frames=2, image_size=(48, 40), seed=1).sequence,
                         tmp_path / "cine.seq.nrrd")
    enhance = ["enhance", str(cine), "-o", str(tmp_path / "e.seq.nrrd"), "--model"]
    register = ["register", str(cine), "--device", "cpu"]
    runs = {"enhance by DLIR name": ([*enhance, SHIPPED_MODEL],
                                     f"{SHIPPED_MODEL}: an installed registration (DLIR) model, not an enhancement"),
            "enhance by DLIR path": ([*enhance, str(MODELS_DIR / SHIPPED_MODEL)],
                                     "a DLIRModel checkpoint, not an enhancement model"),
            "register --enhance DLIR": ([*register, "-o", str(tmp_path / "r"), "--enhance", SHIPPED_MODEL],
                                        "not an enhancement model"),
            "register --model enhancer": ([*register, "-o", str(tmp_path / "d"), "--method", "dlir", "--model",
                                           SHIPPED_ENHANCER],
                                          f"{SHIPPED_ENHANCER}: an installed enhancement model, not a registration")}
    for what, (argv, expected) in runs.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("echoreg: error: ") and expected in err, (what, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
    assert not any((tmp_path / name).exists() for name in ("e.seq.nrrd", "r", "d"))


def test_the_enhancer_catalog_needs_no_torch(models):
    script = ("import sys; sys.modules['torch'] = None\n"
              "from EchoRegistrationLib.dlir.shipped import ENHANCER_KIND, list_models\n"
              f"print([(m.name, m.licence) for m in list_models({str(models)!r}, kind=ENHANCER_KIND)])")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == str([(ENHANCER, LICENCE)])


@pytest.fixture
def module(monkeypatch):
    """The module file, on slicer-core's MRML, with stand-ins for the modules only Slicer's
    application has (Testing/slicer_stand_in.py)."""
    pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
    from slicer_stand_in import load_module_file, stand_in_modules

    stand_ins = stand_in_modules()
    for name in ("qt", "slicer.i18n", "slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule"):
        monkeypatch.setitem(sys.modules, name, stand_ins[name])
    return load_module_file(MODULE, "EchoRegistration_under_test")


def test_the_logic_enhances_only_when_the_checkbox_is_on(module, models, tmp_path):
    parameters = module.EchoRegistrationParameterNode()
    assert parameters.enhance is False  # off by default
    logic = module.EchoRegistrationLogic(models)
    assert logic.enhancer().name == ENHANCER
    off = logic.settings(parameters)
    assert off.enhance is None and "enhance" not in off.arguments()
    parameters.enhance = True
    on = logic.settings(parameters)
    assert on.enhance == str(models / ENHANCER) and on.arguments()["enhance"] == on.enhance
    assert on.arguments() == {**off.arguments(), "enhance": on.enhance}  # nothing else changes
    # the panel's default: DLIR + refine 24, the empty model being the default model
    assert (on.method, on.model, on.refine, on.describe_model()) == ("dlir", "", 24, SHIPPED_MODEL)
    parameters.method, parameters.model, parameters.refineIterations = "DLIR + refine", SHIPPED_MODEL, 20
    dlir = logic.settings(parameters)
    assert (dlir.method, dlir.model, dlir.refine, dlir.enhance) == ("dlir", SHIPPED_MODEL, 20, on.enhance)
    assert (parameters.systoleAnchor, dlir.anchor) == (True, None)  # the library's default: the systole anchor
    parameters.systoleAnchor = False
    assert logic.settings(parameters).arguments()["anchor"] == 0  # every frame directly
    assert (parameters.float32, dlir.float32) == (False, False)  # bfloat16 where the CPU has AMX
    parameters.float32 = True
    assert logic.settings(parameters).arguments()["amp"] is False  # float32 on every CPU
    assert (parameters.refineStart, dlir.arguments()["refine_start"]) == ("best", "best")  # the library's default
    parameters.refineStart = "chained"
    assert logic.settings(parameters).arguments()["refine_start"] == "chained"
    parameters.method = "DLIR"  # the network alone: no refinement to start
    assert "refine_start" not in logic.settings(parameters).arguments()
    parameters.method, parameters.refineStart = "DLIR + refine", "best"
    assert (parameters.endSystoleFrame, dlir.es_frame) == (-1, None)  # the sequence's ES, else detected
    parameters.endSystoleFrame = 8
    assert logic.settings(parameters).es_frame == 8
    parameters.endSystoleFrame = -1
    parameters.method = "Deformable"
    optimiser = logic.settings(parameters)
    assert (optimiser.method, optimiser.model, optimiser.refine, optimiser.enhance, optimiser.anchor,
            optimiser.float32) == ("deformable", "", 0, on.enhance, None, False)  # a DLIR option: left out
    assert "refine_start" not in optimiser.arguments()
    parameters.systoleAnchor, parameters.float32 = True, False
    parameters.method = "DLIR + refine"

    bare = module.EchoRegistrationLogic(tmp_path / "no models")
    assert bare.enhancer() is None
    with pytest.raises(ValueError, match="no enhancement model is installed"):
        bare.settings(parameters)
    parameters.enhance = False
    assert bare.settings(parameters).enhance is None


@pytest.mark.parametrize("installed", [True, False])
def test_the_checkbox_is_offered_only_with_an_installed_enhancer(module, models, tmp_path, installed):
    widget = module.EchoRegistrationWidget()
    widget.logic = module.EchoRegistrationLogic(models if installed else tmp_path / "no models")
    widget.ui = SimpleNamespace(enhanceCheckBox=SimpleNamespace(enabled=None, toolTip=None))
    widget._setupEnhancement()
    box = widget.ui.enhanceCheckBox
    assert box.enabled is installed
    if installed:
        assert f"'{ENHANCER}' (licence: {LICENCE})" in box.toolTip
        assert "Experimental, off by default" in box.toolTip and "not that of degraded real" in box.toolTip
    else:
        assert box.toolTip == ("No enhancement model installed (Resources/Models); train one with "
                               "scripts/train_enhancer.sh")


def test_the_mrml_pipeline_registers_the_enhanced_frames(models):
    pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
    from EchoRegistrationLib.mrml import RegistrationSettings, analyse, volume_sequence_node
    from EchoRegistrationLib.mrml.headless import standalone_scene

    sim = simulate_sequence(view="A4C", n_frames=3, image_size=(64, 56), seed=4)
    env = standalone_scene()  # held: the scene lives as long as its nodes are used
    node = volume_sequence_node(env.scene, "echo", sim.sequence)
    enhancer = str(models / ENHANCER)
    fast = {"method": "deformable", "options": {"iterations": (5, 5, 5)}}  # the optimiser, few steps
    plain = analyse(node, RegistrationSettings(device="cpu", **fast)).registration
    enhanced = analyse(node, RegistrationSettings(device="cpu", enhance=enhancer, **fast)).registration
    assert enhanced.parameters["enhance"] == enhancer and "enhance" not in plain.parameters
    # the reference frame, warped by the identity, is the enhanced frame, not the frame as read
    expected = enhance_sequence(sim.sequence, enhancer, device="cpu").frames[0]
    np.testing.assert_allclose(enhanced.warped[0], expected, atol=0.01)  # grey levels 0..255
    assert np.abs(expected - plain.warped[0]).mean() > 1.0  # grey levels: the generator changed it
    difference = np.linalg.norm(enhanced.displacement - plain.displacement, axis=-1).max()
    print(f"enhanced - plain displacement: up to {difference:.3f} mm")
    assert difference > 0.01  # mm


class FakeComboBox:
    """The part of QComboBox the Widget uses: items with data, the current index."""

    def __init__(self):
        self.items, self.currentIndex, self.enabled, self.tooltips = [], -1, None, {}

    @property
    def count(self):
        return len(self.items)

    def addItem(self, text, data):
        self.items.append((text, data))

    def setItemData(self, index, value, role):
        self.tooltips[index] = value  # the only role the Widget sets

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    def itemData(self, index):
        return self.items[index][1]


class FakeWidgets(SimpleNamespace):
    """The panel's widgets: the model box above, any other a namespace that takes any attribute."""

    def __getattr__(self, name):
        widget = SimpleNamespace()
        setattr(self, name, widget)
        return widget


def test_the_chosen_models_licence_and_training_data_show_under_the_model_box(module, monkeypatch):
    """The label under the model box follows the parameter node's model (the Widget's _updateGui,
    which runs on every parameter change): the installed model's licence and training data, a
    non-commercial licence said so; shown only with a DLIR method."""
    models = {m.name: m for m in list_models()}
    camus, sim = models[SHIPPED_MODEL], models["echoreg-dlir-sim"]
    assert (camus.licence, sim.licence) == ("CC BY-NC-SA 4.0", "BSD-3-Clause")  # the texts below
    monkeypatch.setattr(module.qt, "Qt", SimpleNamespace(ToolTipRole=3), raising=False)
    widget = module.EchoRegistrationWidget()
    widget.ui = FakeWidgets(modelComboBox=FakeComboBox())
    widget._setupModels(list(models.values()))
    box = widget.ui.modelComboBox
    tooltips = {name: box.tooltips[box.findData(name)] for name in models}
    assert tooltips[SHIPPED_MODEL] == ("Licence: CC BY-NC-SA 4.0. Trained on: camus, simulator. Non-commercial use "
                                       "only. Tracking: to_reference. The refinement also compares its anatomy maps "
                                       "(LV, myocardium, left atrium).")
    assert tooltips["echoreg-dlir-sim"] == "Licence: BSD-3-Clause. Trained on: simulator. Tracking: to_reference."
    parameters = module.EchoRegistrationParameterNode()
    parameters.inputSequence = parameters.myocardiumSource = parameters.frameTable = None
    widget._connection = SimpleNamespace(wrapper=parameters)
    widget._applyToolTips = {True: "", False: ""}  # made in setup
    label = widget.ui.modelTermsLabel

    for model in ("", SHIPPED_MODEL):  # the panel's default (empty: the default model), then by name
        parameters.model = model  # the default method, DLIR + refine
        widget._updateGui()
        assert label.visible is True
        assert label.text == "Licence: CC BY-NC-SA 4.0. Trained on: camus, simulator. Non-commercial use only."
    widget.onModelChanged(widget.ui.modelComboBox.findData("echoreg-dlir-sim"))  # the user picks another
    assert parameters.model == "echoreg-dlir-sim"
    widget._updateGui()
    assert label.text == "Licence: BSD-3-Clause. Trained on: simulator."
    parameters.method = "DLIR"
    widget._updateGui()
    assert label.visible is True and label.text == "Licence: BSD-3-Clause. Trained on: simulator."
    parameters.model = "/somewhere/my-model"  # a checkpoint path, not an installed model
    widget._updateGui()
    assert "not an installed model" in label.text
    for method in ("Deformable", "Affine", "Rigid"):
        parameters.method = method
        widget._updateGui()
        assert label.visible is False, method


def test_frames_chosen_on_one_cine_are_cleared_when_another_is_chosen(module):
    """The reference and ES frames are frame numbers of the input cine: picking another input clears
    them (to ED / the sequence's ES) instead of carrying them over, clamped to the new cine's length; the
    frames of a first input, and a scene's saved frames, are kept."""
    widget = module.EchoRegistrationWidget()
    widget.ui = FakeWidgets(modelComboBox=FakeComboBox())
    widget._applyToolTips = {True: "", False: ""}

    def node(**values):
        parameters = module.EchoRegistrationParameterNode()
        parameters.myocardiumSource = parameters.frameTable = parameters.inputSequence = None
        for name, value in values.items():
            setattr(parameters, name, value)
        return parameters

    def connect(parameters):  # as the Widget is connected to a (new) parameter node
        widget._connection = SimpleNamespace(wrapper=parameters, connect=lambda node: False)
        widget.setParameterNode(parameters)

    first, second, third = (SimpleNamespace(GetNumberOfDataNodes=lambda n=n: n) for n in (30, 12, 20))
    parameters = node()
    connect(parameters)  # no input yet
    parameters.inputSequence, parameters.referenceFrame, parameters.endSystoleFrame = first, 2, 25
    widget._updateGui()  # the first input: its frames are kept
    assert (parameters.referenceFrame, parameters.endSystoleFrame) == (2, 25)
    assert widget.ui.endSystoleFrameSpinBox.maximum == 29
    parameters.inputSequence = second
    widget._updateGui()
    assert (parameters.referenceFrame, parameters.endSystoleFrame) == (-1, -1)
    assert widget.ui.endSystoleFrameSpinBox.maximum == widget.ui.referenceFrameSpinBox.maximum == 11
    parameters.endSystoleFrame = 7  # chosen on this cine: kept
    widget._updateGui()
    assert parameters.endSystoleFrame == 7
    saved = node(inputSequence=third, referenceFrame=3, endSystoleFrame=9)  # a scene loaded with its settings
    connect(saved)
    assert (saved.referenceFrame, saved.endSystoleFrame) == (3, 9)
    assert widget.ui.endSystoleFrameSpinBox.maximum == 19


def test_current_frame_buttons_take_the_frame_the_browser_shows(module, tmp_path):
    """"Current frame" beside the reference and ES frames sets them to the frame the input's sequence browser
    shows (the Logic's currentFrame, which "Register current frame" also uses), on real MRML."""
    from EchoRegistrationLib.mrml import browser_for, volume_sequence_node
    from EchoRegistrationLib.mrml.headless import standalone_scene

    seq = simulate_sequence(view="A4C", n_frames=6, image_size=(32, 32), seed=2).sequence
    scene = standalone_scene().scene
    parameters = module.EchoRegistrationParameterNode()
    parameters.inputSequence = volume_sequence_node(scene, "cine", seq)
    logic = module.EchoRegistrationLogic(tmp_path)
    assert logic.currentFrame(parameters) == 0  # a browser made for it shows the first frame
    browser_for(scene, parameters.inputSequence).SetSelectedItemNumber(4)
    widget = module.EchoRegistrationWidget()
    widget.logic = logic
    widget._connection = SimpleNamespace(wrapper=parameters)
    widget.onCurrentFrameButton("endSystoleFrame")
    assert (parameters.endSystoleFrame, parameters.referenceFrame) == (4, -1)
    browser_for(scene, parameters.inputSequence).SetSelectedItemNumber(1)
    widget.onCurrentFrameButton("referenceFrame")
    assert (parameters.endSystoleFrame, parameters.referenceFrame) == (4, 1)
    # a browser whose master is another sequence, twice as fast: the input's frame shown with it
    master_seq = dataclasses.replace(simulate_sequence(view="A4C", n_frames=11, image_size=(32, 32), seed=3).sequence,
                                     frame_times=seq.frame_times[0] + np.arange(11) * (seq.frame_times[1]
                                                                                       - seq.frame_times[0]) / 2)
    master = volume_sequence_node(scene, "faster", master_seq)
    browser = browser_for(scene, master)
    browser.AddSynchronizedSequenceNode(parameters.inputSequence)
    other = module.EchoRegistrationParameterNode()
    other.inputSequence = volume_sequence_node(scene, "cine again", seq)
    browser.AddSynchronizedSequenceNode(other.inputSequence)
    browser.SetSelectedItemNumber(6)  # master frame 6: the input's frame 3
    assert logic.currentFrame(other) == 3
