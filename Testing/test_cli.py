"""The echoreg command line: info, convert, register, and clean errors for bad input."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from EchoRegistrationLib import EchoSequence, load_sequence, save_sequence
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.dlir.inference import cpu_has_amx
from EchoRegistrationLib.strain.result import NETWORK_SEGMENTS


@pytest.fixture
def cine(tmp_path):
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 255, (40, 36)).astype(np.float32)
    frames = np.stack([np.roll(texture, shift, axis=1) for shift in (0, 1, 2)])
    seq = EchoSequence(frames=frames, spacing=(0.5, 0.4), frame_times=[0.0, 0.02, 0.04])
    return save_sequence(seq, tmp_path / "cine.seq.nrrd")


def test_info_prints_geometry_and_timing(cine, capsys):
    assert main(["info", str(cine)]) == 0
    out = capsys.readouterr().out
    assert "3 x 40 rows x 36 columns" in out and "x 0.5 mm, y 0.4 mm" in out and "50 frames/s" in out


def test_frame_rate_over_recorded_times_is_one_line_error(cine, capsys):
    """--frame-rate is for files that record no time: over the 50 frames/s a .seq.nrrd records, 60 was
    shown as measured; it is exit 2 with one line naming the file and its rate."""
    assert main(["info", str(cine), "--frame-rate", "60"]) == 2
    captured = capsys.readouterr()
    assert "60 frames/s" not in captured.out
    assert captured.err.strip() == (f"echoreg: error: {cine}: frame rate 60 frames/s given (--frame-rate, frame_rate), "
                                    "but the file records its frame times (sequence index time (s)): 50 frames/s; "
                                    "a frame rate is only for files that record no time: leave it out")


def test_convert_writes_and_refuses_to_overwrite(cine, tmp_path, capsys):
    target = tmp_path / "cine.mha"
    assert main(["convert", str(cine), str(target)]) == 0
    assert np.array_equal(load_sequence(target).frames, load_sequence(cine).frames)
    assert main(["convert", str(cine), str(target)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_convert_names_what_the_output_does_not_hold_and_refuses_what_an_option_attached(cine, tmp_path, capsys):
    """A .seq.nrrd holds times, ED, ES and the view; MetaImage the times; NIfTI the frames: what is left out is one
    warning line each. Labels and a mask are held by no output format, and --frame-rate not by NIfTI: given,
    they are refused before anything is written."""
    import dataclasses

    import SimpleITK as sitk

    full = dataclasses.replace(load_sequence(cine), ed_index=0, es_index=2, metadata={"view": "A4C"})
    source = save_sequence(full, tmp_path / "full.seq.nrrd")
    assert main(["convert", str(source), str(tmp_path / "same.seq.nrrd")]) == 0
    assert capsys.readouterr().err == ""
    kept = load_sequence(tmp_path / "same.seq.nrrd")
    assert (kept.ed_index, kept.es_index, kept.metadata["view"], kept.frame_times_known) == (0, 2, "A4C", True)
    assert main(["convert", str(source), str(tmp_path / "x.mha")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"echoreg: warning: {tmp_path / 'x.mha'} does not hold ED (frame 0): not written",
        f"echoreg: warning: {tmp_path / 'x.mha'} does not hold ES (frame 2): not written",
        f"echoreg: warning: {tmp_path / 'x.mha'} does not hold the view (A4C): not written"]
    assert main(["convert", str(source), str(tmp_path / "x.nii.gz")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and err[0] == (f"echoreg: warning: {tmp_path / 'x.nii.gz'} does not hold the frame times "
                                        f"(0 .. 0.04 s; only their mean interval, which is not read back as time): "
                                        f"not written")
    assert not load_sequence(tmp_path / "x.nii.gz").frame_times_known  # as the warning said
    ones = sitk.GetImageFromArray(np.ones((40, 36), np.uint8))
    ones.SetSpacing((0.5, 0.4))
    sitk.WriteImage(ones, str(tmp_path / "ones.nii.gz"))
    for flags, option in ((["--labels", "ones.nii.gz"], "--labels"), (["--mask", "ones.nii.gz"], "--mask")):
        target = tmp_path / "attached.seq.nrrd"
        assert main(["convert", str(cine), str(target), *[str(tmp_path / f) if f.endswith("gz") else f
                                                          for f in flags]]) == 2
        assert capsys.readouterr().err.startswith(f"echoreg: error: {option}: {target} does not hold the ")
        assert not target.exists()
    untimed = tmp_path / "untimed.nii.gz"
    assert main(["convert", str(tmp_path / "x.nii.gz"), str(untimed), "--frame-rate", "50"]) == 2
    assert capsys.readouterr().err.startswith(f"echoreg: error: --frame-rate: {untimed} does not hold the frame "
                                              f"times (0 .. 0.04 s; only their mean interval")
    assert not untimed.exists()
    assert main(["convert", str(tmp_path / "x.nii.gz"), str(tmp_path / "timed.mha"), "--frame-rate", "50"]) == 0
    assert load_sequence(tmp_path / "timed.mha").frame_rate == pytest.approx(50)


def test_unwritten_names_an_unknown_pixel_size_labels_and_a_mask():
    from EchoRegistrationLib.io.dispatch import unwritten

    seq = EchoSequence(frames=np.zeros((2, 4, 5), np.float32), spacing=(1.0, 1.0), labels=np.ones((4, 5), np.uint8),
                       mask=np.ones((4, 5), bool), metadata={"spacing_known": False})
    assert unwritten(seq, "a.seq.nrrd") == {"labels": "a.seq.nrrd does not hold the labels (1 labelled frame)",
                                            "mask": "a.seq.nrrd does not hold the field-of-view mask"}
    assert unwritten(seq, "a.nrrd")["spacing"] == ("a.nrrd does not hold that the pixel size is unknown (the "
                                                   "placeholder 1 x 1 mm is written as the pixel size)")
    assert set(unwritten(seq, "a.nii")) == {"labels", "mask", "spacing"}  # unknown times: nothing to lose


def test_register_writes_outputs_with_known_shift(cine, tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["register", str(cine), "-o", str(out), "--method", "rigid", "--loss", "ncc"]) == 0
    fields = np.load(out / "displacement.npz")["displacement"]
    # frame t is the texture rolled by t columns: the reference point is t * 0.5 mm to the right
    assert fields[2, 8:-8, 8:-8, 0].mean() == pytest.approx(1.0, abs=0.05)
    assert np.abs(fields[2, 8:-8, 8:-8, 1]).mean() < 0.05
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "rigid" and report["reference_frame"] == 0
    assert "registered 3 frames" in capsys.readouterr().out


def test_register_dlir_with_a_model_and_flip_averaging(cine, tmp_path):
    from EchoRegistrationLib.dlir import save_model
    from test_dlir import constant_output, tiny_model

    save_model(constant_output(tiny_model(), 2.0, 1.0), tmp_path / "model")  # "right and down"
    for flip, lateral in ((False, 0.02), (True, 0.0)):  # mirrored, "right" is "left": it cancels
        out = tmp_path / f"reg_{flip}"
        flags = ["--flip-average"] if flip else []
        assert main(["register", str(cine), "-o", str(out), "--method", "dlir", "--model",
                     str(tmp_path / "model"), "--refine", "0", *flags]) == 0  # the network alone
        fields = np.load(out / "displacement.npz")["displacement"]
        depth = 39 * 0.4  # mm
        np.testing.assert_allclose(fields[1:, ..., 0], lateral * depth, atol=1e-4)
        np.testing.assert_allclose(fields[1:, ..., 1], 0.01 * depth, atol=1e-4)


def test_a_dlir_report_names_the_model_its_licence_passes_and_refinement(cine, tmp_path, capsys):
    # 20 frames/s: frame 2 chains through frame 1 (at 50 frames/s both are within the chain's key time of frame 0,
    # registration.tracking.CHAIN_KEY_SECONDS, and the direct start would be the only one)
    cine = save_sequence(EchoSequence(frames=load_sequence(cine).frames, spacing=(0.5, 0.4),
                                      frame_times=[0.0, 0.06, 0.12]), tmp_path / "cine20.seq.nrrd")
    for model, licence, passes, refine in ((None, "CC BY-NC-SA 4.0", 2, 24),
                                           ("echoreg-dlir-sim", "BSD-3-Clause", 1, 0)):
        out = tmp_path / f"reg_{model}"
        flags = ["--model", model, "--refine", "0"] if model else []
        assert main(["register", str(cine), "-o", str(out), "--method", "dlir", *flags]) == 0
        parameters = json.loads((out / "report.json").read_text())["parameters"]
        name = model or "echoreg-dlir-camus"  # the default by its name, which --model takes back
        assert (parameters["model"], parameters["licence"], parameters["passes"]) == (name, licence, passes)
        correction_rows = 192 if model is None else None  # the default model's correction stage
        assert parameters["correction_rows"] == correction_rows
        stage = f"; then its correction stage on {correction_rows} rows" if correction_rows else ""
        plural = "es" if passes > 1 else ""
        # the networks run in bfloat16 on CPUs with AMX (dlir.inference.mixed_precision), and the line says so
        precision = "bfloat16" if cpu_has_amx() else "float32"
        assert parameters["network_precision"] == precision
        amp = f" in {precision}"
        # 40-row frames: the half level would be coarser than the network's grid, so one level
        refined = f"refine {refine}: up to {refine // 2} optimisation steps, at full resolution, on the images and " \
            f"the model's anatomy maps (weight 0.1)" if refine else "not refined"
        # the cine gives no ES: the default systole anchor has none to go through, and the console says so, unless
        # the refinement kept the chained start (registration.tracking.REFINE_STARTS), which it names instead
        assert (parameters["anchor"], parameters["anchor_frame"]) == (0.6, None)
        assert (parameters.get("refine_start"), parameters.get("refine_start_used") in ("direct", "chained")) == \
            (("best", True) if refine else (None, False))
        anchor = ("systole anchor 0.6 not used (it needs ES after the reference, from the file or --es-frame, and an "
                  "anchor frame with signal between them): every frame registered directly")
        used, mismatch = parameters.get("refine_start_used"), parameters.get("refine_start_mismatch")
        assert (mismatch is None) == (not refine)  # both starts refined: the 4-frame cine has a frame to chain
        if refine:
            other = "direct" if used == "chained" else "chained"
            # where the refinement has two levels the starts are compared after the first
            first = len(parameters["refine_iterations"]) > 1
            after = " after the refinement's first level" if first else ""
            compared = (f", its frames matching the reference better than the {other} start's{after} (mean squared "
                        f"difference {mismatch[used]:.4g} against {mismatch[other]:.4g})")
            assert mismatch[used] <= mismatch[other]
            if used == "chained":
                anchor = (f"the refinement kept the chained start (each frame from the refined field"
                          f"{' at that level' if first else ''} of the last key frame before it, key frames at least "
                          f"0.05 s apart, and the network's step between them; the systole "
                          f"anchor not used){compared}")
            else:
                refined += f"; the refinement kept the direct start{compared}"
        assert (f"model {name} (licence: {licence}; {passes} pass{plural} of the network per pair{amp}{stage}; "
                f"{anchor}; {refined})") in capsys.readouterr().out


def test_float32_keeps_the_networks_in_float32_and_is_a_dlir_option(cine, tmp_path, capsys):
    """--float32: amp=False (float32 where the networks would run in bfloat16), recorded in report.json and
    named in the model line; refused with another method."""
    out = tmp_path / "reg"
    assert main(["register", str(cine), "-o", str(out), "--refine", "0", "--float32"]) == 0
    assert json.loads((out / "report.json").read_text())["parameters"]["network_precision"] == "float32"
    assert "of the network per pair in float32; then its correction stage" in capsys.readouterr().out
    assert main(["register", str(cine), "-o", str(tmp_path / "bad"), "--method", "deformable", "--float32"]) == 2
    assert "--float32 are DLIR options; the method is deformable" in capsys.readouterr().err


def test_register_defaults_to_the_default_model_refined_by_24_steps(cine, tmp_path, capsys):
    """No --method: DLIR with the default model refined by 40 steps (workflow.DEFAULT_METHOD /
    DEFAULT_REFINE). --iterations (the optimiser's steps per level) is refused with DLIR, whose
    refinement steps are --refine; --loss / --control-spacing set the refinement, so they are
    refused without one (--refine 0)."""
    out = tmp_path / "reg"
    assert main(["register", str(cine), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    parameters = report["parameters"]
    assert report["method"] == "dlir"
    assert (parameters["model"], parameters["refine"], parameters["licence"]) == \
        ("echoreg-dlir-camus", 24, "CC BY-NC-SA 4.0")
    assert "model echoreg-dlir-camus (licence: CC BY-NC-SA 4.0" in capsys.readouterr().out
    for flags, line in ((["--iterations", "5"], "--iterations: sets the optimiser's steps per pyramid level"),
                        (["--refine", "0", "--loss", "ncc"], "--refine: 0: the network alone"),
                        (["--refine", "0", "--control-spacing", "4"], "--refine: 0: the network alone")):
        assert main(["register", str(cine), "-o", str(tmp_path / "refused"), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert line in err and len(err.strip().splitlines()) == 1, flags
        assert not (tmp_path / "refused").exists()
    assert "--refine N (default 24" in main_error(cine, tmp_path, capsys, "--iterations", "5")
    out = tmp_path / "ncc"
    assert main(["register", str(cine), "-o", str(out), "--refine", "2", "--loss", "ncc"]) == 0
    parameters = json.loads((out / "report.json").read_text())["parameters"]
    assert (parameters["refine"], parameters["loss"]) == (2, "ncc")  # the refinement's similarity


def main_error(cine, tmp_path, capsys, *flags) -> str:
    """The error line of ``echoreg register`` with ``flags``, which must fail with status 2."""
    assert main(["register", str(cine), "-o", str(tmp_path / "refused"), *flags]) == 2
    return capsys.readouterr().err


def test_bad_input_is_one_clear_line_and_status_2(tmp_path, capsys):
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("echoreg: error: ") and "scan.dcm" in err and len(err.splitlines()) == 1


def test_demo_writes_its_files_and_beats_identity(tmp_path, capsys):
    from EchoRegistrationLib.demo import run_demo

    numbers = run_demo(tmp_path / "demo", n_frames=6)
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"simulated_a4c.seq.nrrd", "simulated_a4c_labels.nii.gz", "frames.png", "registration.png",
            "summary.txt", "registration"} <= names
    # the console names where the labels come from: the .seq.nrrd holds none (the issue: "labels: codes
    # [0, 1, 2, 3]" under the .seq.nrrd, which 'echoreg info' showed without labels, and no label file)
    labels = tmp_path / "demo" / "simulated_a4c_labels.nii.gz"
    assert f"labels:       codes [0, 1, 2, 3] on frames [0, 1, 2, 3, 4, 5], from {labels}\n" in capsys.readouterr().out
    views = sorted(p.name for p in (tmp_path / "demo" / "slicer_views").iterdir())
    assert views == ["slicer_view_frame000.png", "slicer_view_frame005.png"]  # ED and ES, rendered
    assert numbers["epe_es_mm"] < 0.25 * numbers["identity_epe_es_mm"]
    # the default method, named with its model, licence and refinement
    summary = (tmp_path / "demo" / "summary.txt").read_text()
    # and the networks' precision where it is not float32 (bfloat16 on CPUs with AMX)
    precision = ", networks in bfloat16" if cpu_has_amx() else ""
    assert (f"DLIR (echoreg-dlir-camus, licence CC BY-NC-SA 4.0{precision}) + refine 24 on the images and anatomy "
            "maps (weight 0.1) (systole anchor: frame 3) registration to frame 0") in summary  # 6 frames: A = 3
    assert f"warning: {NETWORK_SEGMENTS}" in summary  # the strain's warnings, on the console and in the file
    assert numbers["ncc_after"] > numbers["ncc_before"]
    with pytest.raises(FileExistsError):
        run_demo(tmp_path / "demo", n_frames=6)
    assert main(["info", str(tmp_path / "demo" / "simulated_a4c.seq.nrrd")]) == 0
    assert "labels:       none\n" in capsys.readouterr().out

    # the README's commands that take the demo's output on work as written
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("echoreg ") and "demo_output/" in line]
    assert [line.split()[1] for line in commands] == ["info", "strain"]
    for line in commands:
        words = [word.replace("demo_output/", f"{tmp_path / 'demo'}/").replace("strain/", f"{tmp_path / 'strain'}/")
                 for word in shlex.split(line)[1:]]
        assert main(words) == 0, line
    assert f"codes [0, 1, 2, 3] on frames [0, 1, 2, 3, 4, 5], from {labels}" in capsys.readouterr().out
    strain = json.loads((tmp_path / "strain" / "strain_summary.json").read_text())
    assert strain["myocardium_source"] == "labels"
    assert strain["gls_endocardial"]["peak_pct"] == pytest.approx(numbers["gls_peak_pct"], abs=0.05)
    assert strain["volumes"]["ef_pct"] == pytest.approx(numbers["ef_pct"], abs=0.05)


def test_demo_checks_its_outputs_before_any_work_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch, capsys):
    """A demo folder holding a file of the set is refused before the simulation; a failure during the work leaves
    the folder as it was (the set is moved in at the end), naming the output, not a temporary file."""
    import errno

    import EchoRegistrationLib.demo as demo
    import EchoRegistrationLib.simulation as simulation

    out = tmp_path / "demo"
    out.mkdir()
    (out / "summary.txt").write_text("mine")
    simulated = []
    monkeypatch.setattr(simulation, "simulate_sequence", lambda *args, **kw: simulated.append(1))
    assert main(["demo", "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"echoreg: error: {out / 'summary.txt'}: already exists")
    assert not simulated
    monkeypatch.undo()

    def full(seq, path, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(demo, "save_frame_montage", full)
    assert main(["demo", "-o", str(out), "--overwrite"]) == 2
    assert capsys.readouterr().err == f"echoreg: error: {out / 'frames.png'}: no space left on the device\n"
    assert [p.name for p in tmp_path.iterdir()] == ["demo"] and [p.name for p in out.iterdir()] == ["summary.txt"]
    assert (out / "summary.txt").read_text() == "mine"


# --------------------------------------------------------------------------- inputs (issue 13)
def test_register_mask_restricts_the_comparison(tmp_path):
    """The left half moves 1 column (0.5 mm) per frame, the right half stands still: with a mask on
    the left half, rigid registration finds the left half's motion."""
    rng = np.random.default_rng(1)
    left, right = rng.uniform(0, 255, (40, 18)), rng.uniform(0, 255, (40, 18))
    frames = np.stack([np.hstack([np.roll(left, t, axis=1), right]) for t in range(3)])
    cine = save_sequence(EchoSequence(frames=frames, spacing=(0.5, 0.4), frame_times=[0, 0.02, 0.04]),
                         tmp_path / "halves.seq.nrrd")
    mask = np.zeros((40, 36), np.uint8)
    mask[:, 3:15] = 1
    save_sequence(EchoSequence(frames=mask[None], spacing=(0.5, 0.4)), tmp_path / "mask.nii.gz")
    shifts = {}
    for name, extra in (("masked", ["--mask", str(tmp_path / "mask.nii.gz")]), ("whole", [])):
        out = tmp_path / name
        assert main(["register", str(cine), "-o", str(out), "--method", "rigid", "--loss", "ncc", *extra]) == 0
        shifts[name] = np.load(out / "displacement.npz")["displacement"][2, 8:-8, 8:-8, 0].mean()
        fraction = json.loads((out / "report.json").read_text())["mask_inside_fraction"]
        assert fraction == (pytest.approx(12 / 36) if extra else None)  # the mask used is on record
    assert shifts["masked"] == pytest.approx(1.0, abs=0.1)  # 2 columns of 0.5 mm
    assert shifts["whole"] < 0.8  # the still half holds the unmasked estimate back


def test_strain_passes_the_mask_to_registration(cine, tmp_path, monkeypatch, capsys):
    import EchoRegistrationLib.registration as registration

    seen = {}

    def stop(seq, *args, **kwargs):
        seen["mask"] = seq.mask
        raise KeyboardInterrupt  # stop before the work: only the input matters here

    monkeypatch.setattr(registration, "register_sequence", stop)
    mask = np.zeros((40, 36), np.uint8)
    mask[5:30, 4:20] = 1
    save_sequence(EchoSequence(frames=mask[None], spacing=(0.5, 0.4)), tmp_path / "mask.mha")
    assert main(["strain", str(cine), "--landmarks", "5,15,9,3,13,15", "--mask", str(tmp_path / "mask.mha"),
                 "-o", str(tmp_path / "strain")]) == 130  # Ctrl-C: exit 130
    assert np.array_equal(seen["mask"], mask > 0)


def test_input_warnings_are_one_line_each(tmp_path, capsys):
    import pydicom
    from input_files import write_us

    cine = np.random.default_rng(2).integers(0, 256, size=(3, 6, 8), dtype=np.uint8)
    ds = pydicom.dcmread(write_us(tmp_path / "short.dcm", cine))
    ds.NumberOfFrames = 5
    ds.save_as(tmp_path / "short.dcm")
    assert main(["info", str(tmp_path / "short.dcm")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"echoreg: warning: {tmp_path / 'short.dcm'}: NumberOfFrames is 5 but the "
                                    "pixel data (144 bytes, 48 per frame) hold 3 frames: the 3 frames that "
                                    "exist were read")
    assert "frames:       3 x 6 rows x 8 columns" in captured.out


def test_frame_rate_times_an_untimed_dicom(tmp_path, capsys):
    """`echoreg info` tells to pass --frame-rate for a DICOM without timing: it is taken (it was
    refused as an option that does not apply to DICOM), and the metadata say where the times came from."""
    from input_files import write_us

    path = write_us(tmp_path / "untimed.dcm", np.random.default_rng(3).integers(0, 256, (3, 6, 8), np.uint8))
    assert main(["info", str(path)]) == 0
    assert "frame times:  UNKNOWN (not in the file; pass --frame-rate)" in capsys.readouterr().out
    assert main(["info", str(path), "--frame-rate", "30"]) == 0
    out = capsys.readouterr().out
    assert "frame times:  0 .. 0.06667 s, 30 frames/s" in out
    assert "frame_times_source: frame_rate argument (30 frames/s)" in out


def test_huge_dicom_header_is_exit_2_and_one_line(tmp_path, capsys):
    import pydicom
    from input_files import write_us

    ds = pydicom.dcmread(write_us(tmp_path / "huge.dcm", np.zeros((1, 4, 4), np.uint8)))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 100000
    ds.save_as(tmp_path / "huge.dcm")
    assert main(["info", str(tmp_path / "huge.dcm")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"echoreg: error: {tmp_path / 'huge.dcm'}: the pixel data (16 bytes, 4294836225 per frame) "
                   "hold no whole frame of 65535 x 65535 pixels (NumberOfFrames 100000)")


def test_web_serves_this_machine_only_unless_told():
    from EchoRegistrationLib.cli import build_parser

    args = build_parser().parse_args(["web"])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 8080, 200.0)
    assert build_parser().parse_args(["web", "--host", "0.0.0.0", "--port", "0"]).host == "0.0.0.0"


def test_web_refuses_a_bad_port_upload_size_or_cine_before_the_server_starts(cine, tmp_path, monkeypatch, capsys):
    """No server is started here: serve is replaced by a recorder."""
    pytest.importorskip("trame", reason="needs the [web] extra")
    import EchoRegistrationLib.web.app as app

    served = []
    monkeypatch.setattr(app, "serve", lambda **kw: served.append(kw))
    for flags, says in ((["--port", "99999"], "argument --port: expected a TCP port 0..65535 (0: any free port), "
                                              "got 99999"),
                        (["--port", "-1"], "argument --port: expected a whole number >= 0, got -1"),
                        (["--max-upload-mb", "-1"], "argument --max-upload-mb: expected a positive number, got '-1'"),
                        (["--max-upload-mb", "0"], "argument --max-upload-mb: expected a positive number, got '0'")):
        with pytest.raises(SystemExit) as stop:
            main(["web", *flags])
        assert stop.value.code == 2 and capsys.readouterr().err.startswith(f"echoreg web: error: {says} (see ")
    missing = tmp_path / "nonexistent.nii.gz"
    assert main(["web", "--cine", str(missing)]) == 2
    assert capsys.readouterr().err == f"echoreg: error: {missing}: no such file or folder\n"
    (tmp_path / "notes.txt").write_text("not a cine")
    assert main(["web", "--cine", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: unrecognised content" in capsys.readouterr().err
    save_sequence(EchoSequence(frames=load_sequence(cine).frames[:1], spacing=(0.5, 0.4)), tmp_path / "one.nii.gz")
    assert main(["web", "--cine", str(tmp_path / "one.nii.gz")]) == 2  # one frame: nothing the page registers
    assert "one.nii.gz" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a folder reads as CAMUS, and holds none of its images
    assert main(["web", "--cine", str(tmp_path / "empty")]) == 2
    assert "holds no CAMUS images" in capsys.readouterr().err
    assert not served
    monkeypatch.setenv("HOME", str(cine.parent))
    assert main(["web", "--cine", "~/cine.seq.nrrd", "--port", "0", "--max-upload-mb", "0.5"]) == 0
    assert served == [{"host": "127.0.0.1", "port": 0, "max_upload_mb": 0.5, "cine": str(cine)}]


def test_register_writes_slicer_views_of_the_reference_and_last_frame(cine, tmp_path, capsys):
    pytest.importorskip("slicer", reason="needs the slicer-core wheels (real MRML)")
    from PIL import Image

    out = tmp_path / "reg"
    assert main(["register", str(cine), "-o", str(out), "--method", "rigid", "--loss", "ncc",
                 "--slicer-views"]) == 0
    assert "slicer_view_frame000.png, slicer_view_frame002.png" in capsys.readouterr().out
    for name in ("slicer_view_frame000.png", "slicer_view_frame002.png"):
        rgb = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        assert rgb.shape == (400, 400, 3) and rgb.max() > 100  # the frame is drawn
    first, last = (np.asarray(Image.open(out / f"slicer_view_frame00{t}.png").convert("RGB")).astype(int)
                   for t in (0, 2))
    moved = (np.abs(last - first).sum(-1) > 60).mean()
    print(f"pixels that differ between the reference and the last frame: {moved:.3f}")
    assert moved > 0.01  # the grid of the 1 mm shift is drawn (the warped frames match)
    assert main(["register", str(cine), "-o", str(out), "--method", "rigid", "--slicer-views"]) == 2
    # a folder holding an earlier run's picture alone: refused before any work, nothing written beside it
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "slicer_view_frame002.png").write_bytes(b"an earlier run's picture")
    capsys.readouterr()
    for command in ("register", "strain"):
        assert main([command, str(cine), "-o", str(alone), "--method", "rigid", "--slicer-views"]) == 2
        assert "slicer_view_frame002.png: already exists" in capsys.readouterr().err
        assert [p.name for p in alone.iterdir()] == ["slicer_view_frame002.png"]
    assert (alone / "slicer_view_frame002.png").read_bytes() == b"an earlier run's picture"
    # with --overwrite the run's pictures replace it, and an earlier run's picture of another frame goes
    (alone / "slicer_view_frame001.png").write_bytes(b"an earlier run's picture")
    assert main(["register", str(cine), "-o", str(alone), "--method", "rigid", "--slicer-views", "--overwrite"]) == 0
    assert sorted(p.name for p in alone.glob("slicer_view_*")) == ["slicer_view_frame000.png",
                                                                    "slicer_view_frame002.png"]


def test_models_lists_the_installed_models_with_their_terms(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| echoreg")}
    assert rows["echoreg-dlir-sim"] == ["registration (DLIR)", "U-Net, displacement", "to_reference", "1", "-", "-",
                                        "BSD-3-Clause", "simulator"]
    assert rows["echoreg-dlir-sim-sequential"][2:7] == ["sequential", "1", "-", "-", "BSD-3-Clause"]
    # the network, passes, the correction stage's rows, the anatomy network's rows (its maps guide the refinement)
    assert rows["echoreg-dlir-camus (default)"][1:7] == ["U-Net, velocity", "to_reference", "2", "192 rows",
                                                         "160 rows", "CC BY-NC-SA 4.0"]
    assert "echoreg-enhancer-sim" in rows  # an enhancer is never "the default": enhancement is off unless asked
    assert "CC BY-NC-SA 4.0: non-commercial use only" in out
    # the anatomy network learnt A4C frames only, and the listing says so for that model alone
    assert [line.split(":")[0] for line in out.splitlines() if "apical four-chamber (A4C) frames only" in line] == \
        ["echoreg-dlir-camus", "echoreg-dlir-camus-cv"]
    # the candidate default: a cost-volume network in front of the default's correction stage and anatomy network
    assert rows["echoreg-dlir-camus-cv"][1:7] == ["cost volume, velocity", "to_reference", "1", "192 rows", "160 rows",
                                                  "CC BY-NC-SA 4.0"]


def test_a_barely_trained_anatomy_network_is_one_warning_line(tmp_path, capsys):
    """Two steps on a simulated sequence, validated on two others: the network cannot segment yet (LV Dice
    0.000), and the command says so as one line, not as a Python warning with its source."""
    argv = ["train", "anatomy", "--data", "sim:0-1", "--validation", "sim:2-3", "--base", "echoreg-dlir-sim",
            "--iterations", "2", "--iterations-per-epoch", "2", "--batch-size", "1", "--size", "32",
            "-o", str(tmp_path / "anatomy")]
    assert main(argv) == 0
    err = capsys.readouterr().err  # the progress bar's lines, and the warning
    told = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(told) == 1 and "UserWarning" not in err
    assert told[0].startswith(f"echoreg: warning: {tmp_path / 'anatomy'}: the anatomy network segments the "
                              "validation frames' LV at Dice 0.000, under 0.85")
