"""Issue 16, "the enhanced sequence can be shown and saved": a registration that enhanced its frames
keeps them (enhanced once), the Slicer module shows them as "<input> enhanced" in the input's browser
(replaced by the next run, absent without enhancement), and ``echoreg register --enhance`` writes
them as enhanced.seq.nrrd. Real numbers, slicer-core's real MRML, a tiny enhancer with seeded
non-identity weights (test_enhancement_panel.save_enhancer)."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from test_enhancement_panel import ENHANCER, MODULE, save_enhancer

from EchoRegistrationLib import load_sequence, save_sequence
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.enhancement import inference
from EchoRegistrationLib.enhancement.inference import enhance_sequence
from EchoRegistrationLib.io.seqnrrd import read_seq_nrrd
from EchoRegistrationLib.registration import register_sequence
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence

FAST = {"method": "deformable", "iterations": (5, 5, 5)}  # the optimiser, few steps


@pytest.fixture
def enhancer(tmp_path):
    """An installed-models folder holding one tiny enhancer; returns the enhancer's folder."""
    return save_enhancer(tmp_path / "Models" / ENHANCER)


@pytest.fixture(scope="module")
def sim():
    return simulate_sequence(view="A4C", n_frames=3, image_size=(64, 56), seed=4)


def test_the_registration_keeps_the_frames_it_enhanced_once(sim, enhancer, monkeypatch):
    calls = []
    monkeypatch.setattr(inference, "enhance_sequence",
                        lambda *args, **kwargs: calls.append(1) or enhance_sequence(*args, **kwargs))
    seq = sim.sequence
    result = register_sequence(seq, device="cpu", enhance=str(enhancer), **FAST)
    assert len(calls) == 1
    expected = enhance_sequence(seq, str(enhancer), device="cpu").frames
    assert result.enhanced.shape == seq.frames.shape and result.enhanced.dtype == np.float32
    np.testing.assert_allclose(result.enhanced, expected, atol=1e-3)  # grey levels 0..255
    assert np.abs(expected - seq.frames).mean() > 1.0  # the generator is not the identity
    assert register_sequence(seq, device="cpu", **FAST).enhanced is None


@pytest.fixture
def module(monkeypatch):
    """The module file on slicer-core's MRML, stand-ins for Slicer's Qt-side modules only."""
    pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
    from slicer_stand_in import load_module_file, stand_in_modules

    stand_ins = stand_in_modules()
    for name in ("qt", "slicer.i18n", "slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule"):
        monkeypatch.setitem(sys.modules, name, stand_ins[name])
    return load_module_file(MODULE, "EchoRegistration_under_test")


def test_the_module_shows_the_enhanced_frames_until_a_run_without(module, sim, enhancer, tmp_path):
    import slicer

    from EchoRegistrationLib.mrml import browser_for, echo_sequence_from_node, volume_sequence_node
    from EchoRegistrationLib.mrml.headless import standalone_scene

    env = standalone_scene()  # held: the scene lives as long as its nodes are used
    node = volume_sequence_node(env.scene, "echo", sim.sequence)
    browser = browser_for(env.scene, node)
    logic = module.EchoRegistrationLogic(enhancer.parent)
    parameters = module.EchoRegistrationParameterNode()
    parameters.inputSequence, parameters.myocardiumSource, parameters.device = node, None, "CPU"
    for name in module.OUTPUT_PARAMETERS.values():  # a fresh parameter node: no outputs yet
        setattr(parameters, name, None)
    parameters.enhance = True

    outputs = logic.run(parameters)
    shown = outputs.enhanced
    assert shown.GetName() == "echo enhanced" and parameters.enhancedSequence is shown
    assert browser.IsSynchronizedSequenceNode(shown.GetID())
    assert [shown.GetNthIndexValue(t) for t in range(3)] == [node.GetNthIndexValue(t) for t in range(3)]
    assert shown.GetNthDataNode(0).GetSpacing()[:2] == node.GetNthDataNode(0).GetSpacing()[:2]
    read = echo_sequence_from_node(node)
    expected = enhance_sequence(read, str(enhancer), device="cpu").frames
    np.testing.assert_allclose(echo_sequence_from_node(shown).frames, expected, atol=1e-3)
    storage = env.scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")  # saved with the scene
    storage.SetFileName(str(tmp_path / "echo enhanced.seq.nrrd"))
    assert storage.WriteData(shown) == 1
    back = read_seq_nrrd(tmp_path / "echo enhanced.seq.nrrd")
    np.testing.assert_allclose(back.frames, expected, atol=1e-3)
    np.testing.assert_allclose(back.frame_times, read.frame_times, atol=1e-6)
    assert back.spacing == pytest.approx(read.spacing)

    parameters.enhance = False
    outputs = logic.run(parameters)
    assert outputs.enhanced is None and parameters.enhancedSequence is None
    assert shown.GetScene() is None  # the previous run's enhanced sequence was removed
    assert env.scene.GetFirstNodeByName("echo enhanced") is None
    assert isinstance(parameters.warpedSequence, slicer.vtkMRMLSequenceNode)
    # Export CSV: the frame table, and how the registration was made as the deformation sequence records it
    exported = logic.exportCsv(parameters, tmp_path / "export")
    assert [p.name for p in exported] == ["echo frames.csv", "echo frames registration.txt"]
    assert exported[1].read_text() == logic.describe(parameters.transformSequence) + "\n"
    assert exported[1].read_text().startswith("DLIR (") and logic.describe(None) == ""


def test_register_writes_the_enhanced_sequence_only_with_enhance(sim, enhancer, tmp_path, capsys):
    cine = save_sequence(sim.sequence, tmp_path / "cine.seq.nrrd")
    common = ["register", str(cine), "--method", "deformable", "--iterations", "5", "--device", "cpu"]
    assert main([*common, "-o", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "enhanced.seq.nrrd").exists()
    assert "enhance" not in json.loads((tmp_path / "plain" / "report.json").read_text())["parameters"]

    out = tmp_path / "enhanced"
    assert main([*common, "-o", str(out), "--enhance", str(enhancer)]) == 0
    assert "warped.seq.nrrd, enhanced.seq.nrrd, displacement.npz" in capsys.readouterr().out
    read = load_sequence(cine)
    back = load_sequence(out / "enhanced.seq.nrrd")
    np.testing.assert_allclose(back.frames, enhance_sequence(read, str(enhancer), device="cpu").frames, atol=1e-3)
    np.testing.assert_allclose(back.frame_times, read.frame_times, atol=1e-6)
    assert back.spacing == pytest.approx(read.spacing)
    assert json.loads((out / "report.json").read_text())["parameters"]["enhance"] == str(enhancer)
    # the output set is checked before the work: an existing enhanced.seq.nrrd is not replaced
    (out / "warped.seq.nrrd").unlink()
    assert main([*common, "-o", str(out), "--enhance", str(enhancer)]) == 2
    assert "enhanced.seq.nrrd: already exists" in capsys.readouterr().err


@pytest.fixture
def unknown_spacing(sim):
    """The simulated cine as a file that does not give its pixel size (a 1 mm placeholder)."""
    return dataclasses.replace(sim.sequence, spacing=(1.0, 1.0),
                               metadata={**sim.sequence.metadata, "spacing_known": False})


def test_enhancement_refuses_a_sequence_without_pixel_size(unknown_spacing, enhancer, tmp_path):
    """The enhancer works on its own mm grid: a placeholder spacing would show it the image at an
    arbitrary scale, so the sequence is refused, naming its file, before the model is read."""
    cine = save_sequence(unknown_spacing, tmp_path / "video.seq.nrrd")
    seq = load_sequence(cine)
    assert not seq.spacing_known
    for model in (str(enhancer), str(tmp_path / "no such model")):  # checked before the model
        with pytest.raises(EchoDataError, match="pixel size unknown: enhancement needs the pixel size in mm") as err:
            enhance_sequence(seq, model, device="cpu")
        assert err.value.source == str(cine)
    with pytest.raises(EchoDataError, match="pixel size unknown"):
        register_sequence(seq, device="cpu", enhance=str(enhancer), **FAST)
    assert register_sequence(seq, device="cpu", **FAST).enhanced is None  # off (the default): registered


def test_the_command_line_refuses_to_enhance_without_pixel_size_in_one_line(unknown_spacing, enhancer,
                                                                           tmp_path, capsys):
    cine = save_sequence(unknown_spacing, tmp_path / "video.seq.nrrd")
    runs = {"enhance": ["enhance", str(cine), "-o", str(tmp_path / "enhanced.seq.nrrd"), "--model", str(enhancer)],
            "register": ["register", str(cine), "-o", str(tmp_path / "out"), "--method", "deformable",
                         "--iterations", "5", "--device", "cpu", "--enhance", str(enhancer)]}
    for what, argv in runs.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.startswith(f"echoreg: error: {cine}: pixel size unknown: enhancement needs the pixel size "
                              "in mm"), (what, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
    assert not (tmp_path / "enhanced.seq.nrrd").exists() and not (tmp_path / "out").exists()
    assert main(runs["register"][:-2]) == 0  # without --enhance (the default) it registers
    assert (tmp_path / "out" / "warped.seq.nrrd").is_file()


def test_echoreg_enhance_refuses_labels_before_the_work_and_names_what_its_output_leaves_out(sim, enhancer, tmp_path,
                                                                                             capsys, monkeypatch):
    """--labels of echoreg enhance attached labels that no output holds: refused before the model runs; what the
    output's format leaves out of the input (here NIfTI: the times, ED, ES, the view) is one warning line each."""
    import SimpleITK as sitk

    cine = save_sequence(sim.sequence, tmp_path / "cine.seq.nrrd")
    labels = sitk.GetImageFromArray(sim.sequence.labels[0])
    labels.SetSpacing(sim.sequence.spacing)
    sitk.WriteImage(labels, str(tmp_path / "ed_gt.nii.gz"))
    calls = []
    monkeypatch.setattr(inference, "enhance_frames", lambda *args, **kw: calls.append(1) or args[0])
    out = tmp_path / "enhanced.nii.gz"
    enhance = ["enhance", str(cine), "-o", str(out), "--model", str(enhancer)]
    assert main([*enhance, "--labels", str(tmp_path / "ed_gt.nii.gz")]) == 2
    assert capsys.readouterr().err.startswith(f"echoreg: error: --labels: {out} does not hold the labels")
    assert not calls and not out.exists()
    mask = sitk.GetImageFromArray(np.ones_like(sim.sequence.labels[0]))
    mask.SetSpacing(sim.sequence.spacing)
    sitk.WriteImage(mask, str(tmp_path / "sector.nii.gz"))
    assert main([*enhance, "--mask", str(tmp_path / "sector.nii.gz")]) == 0 and calls
    seq = sim.sequence
    assert capsys.readouterr().err.splitlines() == [  # the mask, used, is not said to be dropped unused
        f"echoreg: warning: {out} does not hold the field-of-view mask: the enhancement used it (0 outside), but it "
        f"is not written",
        f"echoreg: warning: {out} does not hold the frame times ({seq.frame_times[0]:.4g} .. "
        f"{seq.frame_times[-1]:.4g} s; only their mean interval, which is not read back as time): not written",
        f"echoreg: warning: {out} does not hold ED (frame {seq.ed_index}): not written",
        f"echoreg: warning: {out} does not hold ES (frame {seq.es_index}): not written",
        f"echoreg: warning: {out} does not hold the view (A4C): not written"]


def test_the_module_reports_enhancement_without_pixel_size(module, unknown_spacing, enhancer):
    """The Slicer Logic raises the same EchoDataError (the panel shows its message) and makes no outputs."""
    from EchoRegistrationLib.mrml import volume_sequence_node
    from EchoRegistrationLib.mrml.headless import standalone_scene

    env = standalone_scene()  # held: the scene lives as long as its nodes are used
    node = volume_sequence_node(env.scene, "video", unknown_spacing)
    logic = module.EchoRegistrationLogic(enhancer.parent)
    parameters = module.EchoRegistrationParameterNode()
    parameters.inputSequence, parameters.myocardiumSource, parameters.device = node, None, "CPU"
    for name in module.OUTPUT_PARAMETERS.values():
        setattr(parameters, name, None)
    parameters.enhance = True
    count = env.scene.GetNumberOfNodes()
    with pytest.raises(EchoDataError, match="video.*: pixel size unknown: enhancement needs the pixel size in mm"):
        logic.run(parameters)
    assert env.scene.GetNumberOfNodes() == count and parameters.warpedSequence is None


def test_a_run_without_enhancement_removes_an_earlier_enhanced_sequence_when_overwriting(sim, enhancer,
                                                                                      tmp_path, capsys):
    cine = save_sequence(sim.sequence, tmp_path / "cine.seq.nrrd")
    common = ["register", str(cine), "--method", "deformable", "--iterations", "5", "--device", "cpu"]
    out = tmp_path / "out"
    assert main([*common, "-o", str(out), "--enhance", str(enhancer)]) == 0
    assert (out / "enhanced.seq.nrrd").is_file() and "enhanced.seq.nrrd" in capsys.readouterr().out
    (out / "notes.txt").write_text("mine")  # the user's own files stay
    (out / "enhanced").mkdir()
    assert main([*common, "-o", str(out), "--overwrite"]) == 0
    assert "enhanced.seq.nrrd" not in capsys.readouterr().out
    assert not (out / "enhanced.seq.nrrd").exists()  # it would have passed for this run's
    assert "enhance" not in json.loads((out / "report.json").read_text())["parameters"]
    assert sorted(p.name for p in out.iterdir()) == ["displacement.npz", "enhanced", "notes.txt", "report.json",
                                                     "warped.seq.nrrd"]
    assert (out / "notes.txt").read_text() == "mine"

    # an enhancing run keeps (writes) it; without --overwrite nothing is removed
    assert main([*common, "-o", str(out), "--overwrite", "--enhance", str(enhancer)]) == 0
    assert (out / "enhanced.seq.nrrd").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "enhanced.seq.nrrd").write_bytes(b"the user's")
    assert main([*common, "-o", str(other)]) == 0
    assert (other / "enhanced.seq.nrrd").read_bytes() == b"the user's"


def test_a_failed_overwrite_keeps_the_earlier_enhanced_sequence(sim, tmp_path):
    """The stale file goes with the new set's commit: a run that fails leaves the folder as it was."""
    from EchoRegistrationLib.io.atomic import atomic_output_set
    from EchoRegistrationLib.registration.export import ENHANCED

    out = tmp_path / "out"
    out.mkdir()
    (out / ENHANCED).write_bytes(b"earlier")
    (out / "report.json").write_text("{}")
    with pytest.raises(RuntimeError), atomic_output_set(out, ["report.json"], True, stale=[ENHANCED]) as tmp:
        (tmp / "report.json").write_text("{\"new\": 1}")
        raise RuntimeError("the work failed")
    assert (out / ENHANCED).read_bytes() == b"earlier" and (out / "report.json").read_text() == "{}"
