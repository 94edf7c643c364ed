"""The one workflow behind every front end: `echoreg strain` takes every registration option
(DLIR, model, flip averaging), reuses a finished registration folder, and refuses one of another
input; the single-frame registration tracks as the whole sequence does."""

import dataclasses
import json

import numpy as np
import pytest

from EchoRegistrationLib import EchoSequence, load_sequence, save_sequence
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.workflow import (REFERENCE_FRAME_NOTE, Study, WorkflowSettings, describe_registration,
                                          load_registration, register_one_frame, run_strain)


@pytest.fixture(scope="module")
def sim():
    return simulate_sequence(view="A4C", cycle="half", n_frames=4, image_size=(64, 64), seed=3)


@pytest.fixture
def cine(sim, tmp_path):
    import SimpleITK as sitk

    path = save_sequence(sim.sequence, tmp_path / "cine.seq.nrrd")
    labels = sitk.GetImageFromArray(sim.sequence.labels[0])
    labels.SetSpacing(sim.sequence.spacing)
    sitk.WriteImage(labels, str(tmp_path / "ed_gt.nii.gz"))
    return path, tmp_path / "ed_gt.nii.gz"


def summary(folder):
    return json.loads((folder / "strain_summary.json").read_text())


def test_strain_with_dlir_model_and_flip_average(cine, tmp_path, capsys):
    """A constant 2 % / 1 % field (of the image size) is a translation: no strain; mirrored, the
    lateral part cancels, which the reused registration shows. The network alone (--refine 0: the
    default refinement would optimise the constant field away)."""
    from EchoRegistrationLib.dlir import save_model
    from test_dlir import constant_output, tiny_model

    path, labels = cine
    save_model(constant_output(tiny_model(), 2.0, 1.0), tmp_path / "model")
    out = tmp_path / "strain"
    assert main(["strain", str(path), "--labels", str(labels), "-o", str(out), "--method", "dlir",
                 "--model", str(tmp_path / "model"), "--refine", "0", "--flip-average"]) == 0
    assert f"model {tmp_path / 'model'} (licence: " in capsys.readouterr().out  # the model and its terms
    assert summary(out)["gls_endocardial"]["peak_pct"] == pytest.approx(0.0, abs=1e-3)
    for flip, lateral in ((False, 0.02), (True, 0.0)):
        settings = WorkflowSettings(method="dlir", model=str(tmp_path / "model"), refine=0, flip_average=flip,
                                    anchor=0)  # every frame directly (the cine keeps its ES: an anchor would compose)
        analysis = run_strain(Study(str(path), labels=str(labels)), settings, tmp_path / f"s{flip}")
        field = analysis.registration.displacement
        np.testing.assert_allclose(field[1:, ..., 0], lateral * 63 * analysis.sequence.spacing[1], atol=1e-3)
    assert main(["strain", str(path), "--labels", str(labels), "-o", str(tmp_path / "x"), "--method", "deformable",
                 "--refine", "3"]) == 2
    assert "--anchor and --float32 are DLIR options; the method is deformable" in capsys.readouterr().err


def test_strain_reuses_a_registration_folder_with_the_same_numbers(cine, tmp_path, capsys):
    path, labels = cine
    reg, direct, reused = tmp_path / "reg", tmp_path / "direct", tmp_path / "reused"
    options = ["--method", "rigid", "--iterations", "5"]
    assert main(["register", str(path), "-o", str(reg), *options]) == 0
    quality = [line for line in capsys.readouterr().out.splitlines() if line.startswith("NCC to the reference")]
    assert len(quality) == 1 and "after; max folding" in quality[0]
    assert main(["strain", str(path), "--labels", str(labels), "-o", str(direct), *options]) == 0
    assert main(["strain", str(path), "--labels", str(labels), "-o", str(reused), "--registration", str(reg)]) == 0
    out = capsys.readouterr().out
    assert f"reused {reg}" in out
    assert out.count(quality[0]) == 2  # strain says how well the frames matched, as register does
    a, b = summary(direct), summary(reused)
    assert b["gls_endocardial"]["peak_pct"] == pytest.approx(a["gls_endocardial"]["peak_pct"], abs=1e-4)
    assert b["volumes"]["ef_pct"] == pytest.approx(a["volumes"]["ef_pct"], abs=1e-4)
    assert b["quality"]["mean_score"] == pytest.approx(a["quality"]["mean_score"], abs=1e-4)


def test_strain_refuses_registration_options_the_reused_registration_was_not_made_with(cine, tmp_path, capsys):
    """--registration reuses a registration as it was made: options it was not made with are refused before any
    work, each named with what its report.json records; those it was made with are taken (without --method, the
    registration's own method judges them)."""
    path, labels = cine
    reg, out = tmp_path / "reg", tmp_path / "strain"
    assert main(["register", str(path), "-o", str(reg), "--method", "rigid", "--iterations", "5"]) == 0
    capsys.readouterr()
    strain = ["strain", str(path), "--labels", str(labels), "-o", str(out), "--registration", str(reg)]
    assert main([*strain, "--method", "deformable", "--loss", "mi", "--flip-average"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"echoreg: error: {reg}: --registration reuses this registration as it was made, not "
                          f"with --method deformable (its report.json: method rigid), --flip-average (its "
                          f"report.json: no flip_average) or --loss mi (its report.json: loss ncc): leave them out")
    assert not out.exists()
    assert main([*strain, "--iterations", "6"]) == 2
    assert "not with --iterations 6 (its report.json: iterations 5): leave it out" in capsys.readouterr().err
    assert main([*strain, "--iterations", "5", "--loss", "ncc", "--mode", "sequential"]) == 0
    assert main([*strain, "--overwrite", "--method", "rigid", "--iterations", "5"]) == 0
    assert "not used" not in capsys.readouterr().err  # nothing given goes unused


def test_a_device_the_reused_registration_did_not_run_on_is_a_warning(capsys):
    import argparse

    from EchoRegistrationLib.cli.common import add_registration_options
    from EchoRegistrationLib.cli.strain import refuse_options_not_in_registration

    parser = argparse.ArgumentParser()
    add_registration_options(parser)
    report = {"method": "dlir", "mode": "to_reference", "device": "cuda:0",
              "parameters": {"refine": 24, "network_precision": "bfloat16", "control_spacing": 6.0}}
    refuse_options_not_in_registration(parser.parse_args(["--device", "cpu", "--refine", "24",
                                                          "--control-spacing", "6"]), "reg", report)
    assert capsys.readouterr().err == ("echoreg: warning: --device cpu not used: --registration reuses reg as it "
                                       "was made (on cuda:0)\n")
    with pytest.raises(EchoDataError, match=r"^reg: .* not with --float32 \(its report.json: network_precision "
                                            r"bfloat16\): leave it out"):
        refuse_options_not_in_registration(parser.parse_args(["--float32"]), "reg", report)


def test_options_a_reused_registration_was_made_with_by_default_or_by_folder_are_taken():
    """A DLIR refinement records its loss and control points' spacing only when they were given: the defaults it
    used (MSE, 6 mm) are taken, another value is refused naming the default; the installed model given by its
    folder is the model the report names."""
    import argparse

    from EchoRegistrationLib.cli.common import add_registration_options
    from EchoRegistrationLib.cli.strain import refuse_options_not_in_registration
    from EchoRegistrationLib.dlir.shipped import shipped_model_path

    parser = argparse.ArgumentParser()
    add_registration_options(parser)
    report = {"method": "dlir", "mode": "to_reference", "device": "cpu",
              "parameters": {"model": "echoreg-dlir-camus", "refine": 24}}
    refuse_options_not_in_registration(parser.parse_args(["--loss", "mse", "--control-spacing", "6", "--model",
                                                          str(shipped_model_path())]), "reg", report)
    with pytest.raises(EchoDataError, match=r"not with --loss ncc \(the default it used, not in its report.json: "
                                            r"loss mse\) or --control-spacing 4 \(the default it used, not in its "
                                            r"report.json: control_spacing 6.0\)"):
        refuse_options_not_in_registration(parser.parse_args(["--loss", "ncc", "--control-spacing", "4"]), "reg",
                                           report)
    alone = {"method": "dlir", "mode": "to_reference", "device": "cpu", "parameters": {"refine": 0}}
    for flags in (["--loss", "mse"], ["--model", "/tmp/not/a/model"]):  # the network alone: no loss; no model named
        with pytest.raises(EchoDataError, match=r"its report.json: no (loss|model)\)"):
            refuse_options_not_in_registration(parser.parse_args(flags), "reg", alone)


def test_a_registration_to_another_frame_names_the_reference_as_given(cine, tmp_path, capsys):
    """A reused registration is reused as it was made: to another frame than --reference (given), or than the
    file's ED (not given); each message says which, and what to give."""
    path, labels = cine
    reg = tmp_path / "reg"
    assert main(["register", str(path), "-o", str(reg), "--method", "rigid", "--iterations", "2",
                 "--reference", "1"]) == 0
    capsys.readouterr()
    strain = ["strain", str(path), "--labels", str(labels), "-o", str(tmp_path / "s"), "--registration", str(reg)]
    assert main([*strain, "--reference", "2"]) == 2
    assert capsys.readouterr().err == (f"echoreg: error: {reg}: registered to frame 1, not to frame 2 (--reference): "
                                       f"the registration is reused as it was made; give --reference 1, or register "
                                       f"again with --reference 2\n")
    assert main(strain) == 2
    assert capsys.readouterr().err == (f"echoreg: error: {reg}: registered to frame 1, the strain tracks from frame 0 "
                                       f"(given by the file): the registration is reused as it was made; give "
                                       f"--reference 1 to track from its frame\n")
    assert not (tmp_path / "s").exists()


def test_strain_from_a_registration_folder_keeps_the_frames_it_flagged(cine, tmp_path, capsys):
    """The registration's own NCC (within its mask, of the frames it registered, enhanced or not) decides which
    frames measure no motion; strain from its folder reuses that record instead of measuring the NCC again on
    the raw frames. Here the record says frame 2 hardly resembles the reference (NCC 0.1)."""
    path, labels = cine
    reg = tmp_path / "reg"
    assert main(["register", str(path), "-o", str(reg), "--method", "rigid", "--iterations", "2"]) == 0
    report = json.loads((reg / "report.json").read_text())
    assert all(frame["motion_measured"] for frame in report["frames"])
    report["frames"][2]["ncc_after"] = 0.1
    (reg / "report.json").write_text(json.dumps(report))
    loaded = load_registration(reg, load_sequence(path))
    assert loaded.similarity_after[2] == 0.1 and loaded.unmeasured.tolist() == [False, False, True, False]
    assert loaded.similarity_before.tolist() == [frame["ncc_before"] for frame in report["frames"]]
    out = tmp_path / "strain"
    assert main(["strain", str(path), "--labels", str(labels), "-o", str(out), "--registration", str(reg)]) == 0
    assert summary(out)["unmeasured_frames"] == [2]
    assert "frame 2 left out of ED / ES detection and of peak strain" in capsys.readouterr().err


def test_a_registration_of_another_input_is_refused(cine, sim, tmp_path):
    path, _ = cine
    reg = tmp_path / "reg"
    assert main(["register", str(path), "-o", str(reg), "--method", "rigid", "--iterations", "2"]) == 0
    other = EchoSequence(frames=sim.sequence.frames[:, :60], spacing=sim.sequence.spacing,
                         frame_times=sim.sequence.frame_times)
    with pytest.raises(EchoDataError, match=r"reg: registered .*cine.seq.nrrd as read then: fields of shape"):
        load_registration(reg, other)
    timed = load_sequence(path)
    untimed = dataclasses.replace(timed, frame_times=np.arange(timed.n_frames, dtype=float),  # read without
                                  metadata={**timed.metadata, "frame_times_known": False})   # its frame rate
    with pytest.raises(EchoDataError, match=r"registered with known frame times, the input now has unknown ones"):
        load_registration(reg, untimed)
    with pytest.raises(EchoDataError, match="not a readable registration folder"):
        load_registration(tmp_path, sim.sequence)


def test_settings_refuse_dlir_options_for_other_methods_and_unknown_sources():
    with pytest.raises(ValueError, match="DLIR options"):
        WorkflowSettings(method="deformable", flip_average=True)
    with pytest.raises(ValueError, match="myocardium must be one of"):
        WorkflowSettings(myocardium="drawn")
    with pytest.raises(EchoDataError, match="not both"):
        Study("a.nii", labels="l.nii", landmarks=((0, 0), (1, 1), (2, 0)))
    arguments = WorkflowSettings(method="dlir", flip_average=True, mode="sequential").arguments()
    assert arguments == {"method": "dlir", "reference": None, "device": "auto", "chunk_size": 32,
                         "mode": "sequential", "model": None, "refine": 24, "flip_average": True}
    assert WorkflowSettings(method="dlir", refine=0).arguments()["refine"] == 0  # the network alone


def test_the_default_is_the_default_model_refined_by_24_steps():
    """Every front end's default (workflow.DEFAULT_METHOD / DEFAULT_REFINE): DLIR with the default
    model (model None: register_sequence loads dlir.shipped.SHIPPED_MODEL) refined by 40 steps."""
    from EchoRegistrationLib.dlir.shipped import SHIPPED_MODEL
    from EchoRegistrationLib.workflow import DEFAULT_METHOD, DEFAULT_REFINE

    assert (DEFAULT_METHOD, DEFAULT_REFINE, SHIPPED_MODEL) == ("dlir", 24, "echoreg-dlir-camus")
    settings = WorkflowSettings()
    assert settings.arguments() == {"method": "dlir", "reference": None, "device": "auto", "chunk_size": 32,
                                    "model": None, "refine": 24}
    assert settings.describe_model() == WorkflowSettings(model="").describe_model() == "echoreg-dlir-camus"
    assert WorkflowSettings(method="deformable").describe_model() == ""


def test_one_frame_tracks_like_the_sequence(sim):
    """Sequential tracking of frame 3 goes through frames 1 and 2: the same field as the whole run."""
    from EchoRegistrationLib.workflow import analyse

    settings = WorkflowSettings(method="deformable", options={"iterations": (5, 5, 5)})
    one = register_one_frame(sim.sequence, 3, settings)
    whole = analyse(sim.sequence, settings, None).registration
    assert (one.frame, one.reference) == (3, 0) and whole.mode == "sequential"
    np.testing.assert_allclose(one.displacement, whole.displacement[3], atol=0.02)
    assert one.description == "Deformable" and one.parameters["iterations"] == (5, 5, 5)


def test_quick_look_of_a_frame_more_than_10_s_from_the_reference():
    """A long cine with known frame times: the quick look of a frame 12 s from the reference registers a
    two-frame subsequence whose one interval (12 s) no file's frames may have; it was refused."""
    seq = dataclasses.replace(simulate_sequence(view="A4C", n_frames=13, image_size=(48, 40), seed=1).sequence,
                              frame_times=np.arange(13.0), ed_index=0, es_index=None)
    settings = WorkflowSettings(method="rigid", mode="to_reference", options={"iterations": (2, 2, 2)})
    one = register_one_frame(seq, 12, settings)
    assert one.reference == 0 and one.displacement.shape == (48, 40, 2) and np.isfinite(one.displacement).all()
    assert one.warped.shape == (48, 40)


def test_quick_look_gives_the_field_of_the_whole_run_with_the_default_method():
    """"Register current frame" (DLIR + refine 24, to the reference: the reference and the frame
    alone, or with the systole anchor frame for a frame beyond it) gives the field the whole run (all
    pairs in one batch) gives that frame: the refinement
    optimises each pair on its own, and the network sees the subsequence with the whole sequence's
    intensity window. Before, they differed by 0.3-0.4 mm on average. What remains comes from the
    network's batches rounding differently (0.001 mm in float32; 0.004 mm with the networks in bfloat16, on
    CPUs with AMX), which a pair's own stopping decisions can carry to a few tenths of a millimetre on a few
    pixels (regularising the residual only, the default): 0.015 mm mean in float32, 0.036-0.053 mm per
    frame in bfloat16 (frames 1-7; seed 3).
    The frame records how it was registered as the whole run does, the anchor numbered in the whole
    sequence (a frame before the anchor went directly)."""
    from EchoRegistrationLib.workflow import analyse

    sim = simulate_sequence(view="A4C", n_frames=8, image_size=(96, 80), seed=3)
    settings = WorkflowSettings(device="cpu")
    whole = analyse(sim.sequence, settings, None).registration
    assert (whole.method, whole.mode, whole.parameters["refine"]) == ("dlir", "to_reference", 24)
    assert whole.parameters["anchor_frame"] == 4  # ES is frame 7: frames 5-7 go through frame 4
    line = describe_registration(whole.method, whole.parameters)
    assert line.endswith(" (systole anchor: frame 4)")
    for frame, described in ((3, line.removesuffix(" (systole anchor: frame 4)")), (5, line)):
        one = register_one_frame(sim.sequence, frame, settings)
        difference = np.linalg.norm(one.displacement - whole.displacement[frame], axis=-1)
        assert one.reference == whole.reference
        assert difference.mean() < 0.08 and np.percentile(difference, 95) < 0.3, \
            (frame, difference.mean(), np.percentile(difference, 95))
        assert one.description == described
        assert {key: one.parameters[key] for key in ("anchor", "es_frame", "model", "network_precision")} == \
            {key: whole.parameters[key] for key in ("anchor", "es_frame", "model", "network_precision")}
    same = register_one_frame(sim.sequence, 0, settings)
    assert (same.method, same.parameters, same.description) == (None, {}, REFERENCE_FRAME_NOTE)
    assert not same.displacement.any()
    with pytest.raises(FileNotFoundError, match="no-such-model"):  # refused for the reference frame too
        register_one_frame(sim.sequence, 0, WorkflowSettings(model="no-such-model"))
    with pytest.raises(ValueError, match="refine_start must be one of"):  # and so are these
        register_one_frame(sim.sequence, 0, WorkflowSettings(options={"refine_start": "nearest"}))
    for option in ("bogus", "method", "progress", "mask", "amp"):  # none stands in for a setting of its own
        with pytest.raises(ValueError, match=f"register_sequence does not take {option}"):
            register_one_frame(sim.sequence, 0, WorkflowSettings(options={option: 1}))
    with pytest.raises(ValueError, match="register_sequence does not take method"):  # the whole run too
        analyse(sim.sequence, WorkflowSettings(options={"method": "deformable"}), None)
    with pytest.raises(ValueError, match="refine must be >= 0"):
        WorkflowSettings(refine=-3)


def test_quick_look_of_a_frame_without_signal_is_bridged_as_the_whole_run_bridges_it():
    """A frame without signal (constant) has its field interpolated in time between the nearest frames with
    signal (registration.tracking.interpolate_in_time); the quick look bridges it the same way from their
    quick looks. Before, it registered the frame alone with the reference, which left it a copy of the
    reference's zero field (1.7 mm from Apply's on the DLIR case below, against 6.3 mm of motion)."""
    from EchoRegistrationLib.workflow import analyse

    sim = simulate_sequence(view="A4C", n_frames=8, image_size=(96, 80), seed=3)
    seq = dataclasses.replace(sim.sequence, frames=sim.sequence.frames.copy())
    seq.frames[6] = seq.frames[6].mean()
    for settings, bound in ((WorkflowSettings(method="deformable", options={"iterations": (5, 5, 5)}), 1e-5),
                            (WorkflowSettings(device="cpu"), 0.08)):  # the default: as in the test above
        whole = analyse(seq, settings, None).registration
        one = register_one_frame(seq, 6, settings)
        difference = np.linalg.norm(one.displacement - whole.displacement[6], axis=-1)
        assert np.linalg.norm(whole.displacement[6], axis=-1).mean() > 5  # mm of motion to bridge
        assert difference.mean() < bound, (settings.method, difference.mean())
        np.testing.assert_allclose(one.warped, whole.warped[6], atol=1e-3)
        assert one.description == describe_registration(whole.method, whole.parameters)


def test_run_strain_needs_a_myocardium(cine, tmp_path):
    path, _ = cine
    with pytest.raises(EchoDataError, match="strain needs a myocardium"):
        run_strain(Study(str(path)), WorkflowSettings(myocardium="none"), tmp_path / "s")


def test_a_registration_is_described_with_its_networks_precision_when_recorded():
    """One line says how a registration was made (the demo's summary, the web page's status, the Slicer
    panel's status and the deformation sequence's attribute); the precision is named whenever it was
    recorded, never guessed for a report written before it was."""
    run = {"model": "m", "licence": "L", "refine": 24, "refine_anatomy_weight": 0.1, "anchor_frame": 11}
    assert describe_registration("dlir", {**run, "network_precision": "bfloat16"}) == (
        "DLIR (m, licence L, networks in bfloat16) + refine 24 on the images and anatomy maps (weight 0.1) "
        "(systole anchor: frame 11)")
    assert describe_registration("dlir", {**run, "network_precision": "float32"}) == (
        "DLIR (m, licence L, networks in float32) + refine 24 on the images and anatomy maps (weight 0.1) "
        "(systole anchor: frame 11)")
    assert describe_registration("dlir", run) == (  # a report written before the precision was recorded
        "DLIR (m, licence L) + refine 24 on the images and anatomy maps (weight 0.1) (systole anchor: frame 11)")
    assert describe_registration("dlir", {"model": "m", "refine": 0, "network_precision": "float16"}) == \
        "DLIR (m, licence unknown, networks in float16)"
    assert describe_registration("deformable", {"network_precision": "bfloat16"}) == "Deformable"
