"""The echoreg command line: info, convert, register, and clean errors for bad input."""

import json

import numpy as np
import pytest

from EchoRegistrationLib import EchoSequence, load_sequence, save_sequence
from EchoRegistrationLib.cli import main


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


def test_convert_writes_and_refuses_to_overwrite(cine, tmp_path, capsys):
    target = tmp_path / "cine.mha"
    assert main(["convert", str(cine), str(target)]) == 0
    assert np.array_equal(load_sequence(target).frames, load_sequence(cine).frames)
    assert main(["convert", str(cine), str(target)]) == 2
    assert "already exists" in capsys.readouterr().err


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
                     str(tmp_path / "model"), *flags]) == 0
        fields = np.load(out / "displacement.npz")["displacement"]
        depth = 39 * 0.4  # mm
        np.testing.assert_allclose(fields[1:, ..., 0], lateral * depth, atol=1e-4)
        np.testing.assert_allclose(fields[1:, ..., 1], 0.01 * depth, atol=1e-4)


def test_bad_input_is_one_clear_line_and_status_2(tmp_path, capsys):
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("echoreg: error: ") and "scan.dcm" in err and len(err.splitlines()) == 1


def test_demo_writes_its_files_and_beats_identity(tmp_path):
    from EchoRegistrationLib.demo import run_demo

    numbers = run_demo(tmp_path / "demo", n_frames=6)
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"simulated_a4c.seq.nrrd", "frames.png", "registration.png", "summary.txt", "registration"} <= names
    views = sorted(p.name for p in (tmp_path / "demo" / "slicer_views").iterdir())
    assert views == ["slicer_view_frame000.png", "slicer_view_frame005.png"]  # ED and ES, rendered
    assert numbers["epe_es_mm"] < 0.25 * numbers["identity_epe_es_mm"]
    assert numbers["ncc_after"] > numbers["ncc_before"]
    with pytest.raises(FileExistsError):
        run_demo(tmp_path / "demo", n_frames=6)


def test_web_serves_this_machine_only_unless_told():
    from EchoRegistrationLib.cli import build_parser

    args = build_parser().parse_args(["web"])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 8080, 200.0)
    assert build_parser().parse_args(["web", "--host", "0.0.0.0", "--port", "0"]).host == "0.0.0.0"


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
