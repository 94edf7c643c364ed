"""Strain outputs a clinician opens (CSV, JSON, PNG) and the ``echoreg strain`` command (issue 5)."""

import argparse
import csv
import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk

from EchoRegistrationLib import save_sequence
from EchoRegistrationLib.dlir.inference import cpu_has_amx
from EchoRegistrationLib.sequence import EchoDataError
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.strain import result_from_displacement
from EchoRegistrationLib.cli.strain import add_strain_parser
from EchoRegistrationLib.strain.outputs import OUTPUT_NAMES, write_strain_outputs
from EchoRegistrationLib.strain.reference import LARGEST_VOLUME

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sim():
    return simulate_sequence(view="A4C", cycle="full", n_frames=6, image_size=(128, 128), seed=11)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_outputs_hold_the_result_and_are_never_silently_replaced(sim, tmp_path):
    seq = sim.sequence
    registration = result_from_displacement(seq, sim.displacement, 0)
    result, paths = write_strain_outputs(seq, registration, None, tmp_path)
    assert [p.name for p in paths] == list(OUTPUT_NAMES)
    frames = read_csv(tmp_path / "strain_frames.csv")
    assert frames[0][:5] == ["frame", "time (s)", "time from ED (s)", "GLS endocardial (%)",
                             "GLS mid-wall (%)"]
    assert frames[0][5] == "basal inferoseptal (%)" and frames[0][-1] == "LV volume (ml)"
    table = np.array(frames[1:], dtype=float)
    assert table.shape == (6, 13)
    assert table[:, 3] == pytest.approx(result.gls_endo, abs=1e-4)
    assert table[:, 5:11] == pytest.approx(result.segmental, abs=1e-4)
    assert table[:, 1] == pytest.approx(seq.frame_times, rel=1e-5)
    summary = {(row[0], row[1]): float(row[2]) for row in read_csv(tmp_path / "strain_summary.csv")[1:]}
    assert summary["EF", "LV"] == pytest.approx(sim.ef, abs=1.0)
    assert summary["peak systolic strain", "GLS endocardial"] == pytest.approx(result.gls_endo.min(), abs=1e-4)
    assert summary["time to peak", "basal inferoseptal"] == pytest.approx(
        seq.frame_times[np.argmin(result.segmental[:, 0])], rel=1e-5)
    assert summary["loop-closure drift", "myocardium"] < 1e-3
    assert ("quality score", "apical lateral") in summary
    report = json.loads((tmp_path / "strain_summary.json").read_text())
    assert report["volumes"]["ef_pct"] == pytest.approx(result.ef) and report["view"] == "A4C"
    assert [s["name"] for s in report["segments"]] == list(sim.segment_names)
    assert report["registration"] == {"method": "given", "mode": "given", "device": "cpu"}
    for name in ("strain_curves.png", "strain_map.png", "strain_segments.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    before = (tmp_path / "strain_frames.csv").read_bytes()
    with pytest.raises(FileExistsError, match="strain_frames.csv: already exists"):
        write_strain_outputs(seq, registration, None, tmp_path)
    assert (tmp_path / "strain_frames.csv").read_bytes() == before
    write_strain_outputs(seq, registration, None, tmp_path, overwrite=True)


def strain_parser():
    parser = argparse.ArgumentParser(prog="echoreg")
    add_strain_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_strain_command_registers_and_writes_everything(sim, tmp_path, capsys):
    seq = sim.sequence
    # a cine whose file records no ED or ES (as most files from elsewhere)
    clip = dataclasses.replace(seq.subsequence(slice(0, 4)), ed_index=None, es_index=None)
    cine = save_sequence(clip, tmp_path / "cine.seq.nrrd")
    labels = sitk.GetImageFromArray(seq.labels[0])
    labels.SetSpacing(seq.spacing)
    sitk.WriteImage(labels, str(tmp_path / "ed_gt.nii.gz"))
    out = tmp_path / "strain"
    args = strain_parser().parse_args(["strain", str(cine), "--labels", str(tmp_path / "ed_gt.nii.gz"),
                                       "-o", str(out), "--apical-view", "A4C"])
    assert args.run(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    report = json.loads((out / "strain_summary.json").read_text())
    assert report["segments"][0]["name"] == "basal inferoseptal" and report["myocardium_source"] == "labels"
    # the registration it rests on: the default method, named with its model's licence and refinement
    assert {key: report["registration"][key] for key in ("method", "model", "licence", "refine")} == \
        {"method": "dlir", "model": "echoreg-dlir-camus", "licence": "CC BY-NC-SA 4.0", "refine": 24}
    assert report["registration"]["refine_iterations"] == [12]  # small frames: full resolution alone
    assert report["registration"]["refine_learning_rates"] == [0.5]  # a lone level keeps the coarse step
    assert report["registration"]["refine_anatomy_weight"] == 0.1  # the default model's anatomy maps
    assert report["registration"]["network_precision"] == ("bfloat16" if cpu_has_amx() else "float32")
    # 4 frames of a full cycle: ED to mid-systole; registration recovers the shortening roughly
    assert report["gls_endocardial"]["peak_pct"] == pytest.approx(sim.gls_endo[3], abs=3.0)
    out = capsys.readouterr().out
    # the .seq.nrrd records no ED: the largest tracked volume (frame 0 of this ED -> systole clip) is it
    assert (report["ed_frame"], report["ed_frame_source"]) == (0, LARGEST_VOLUME)
    assert "ED frame 0 (detected: largest tracked LV cavity volume" in out
    assert f"peak systolic GLS {report['gls_endocardial']['peak_pct']:+.1f} % at " in out


def test_strain_command_input_errors(sim, tmp_path):
    cine = save_sequence(sim.sequence, tmp_path / "cine.seq.nrrd")
    parser = strain_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["strain", str(cine), "-o", str(tmp_path), "--landmarks", "1,2,3,4,5"])
    args = parser.parse_args(["strain", str(cine), "-o", str(tmp_path / "a")])
    with pytest.raises(EchoDataError, match="cine.seq.nrrd: no myocardium.*--labels FILE or --landmarks"):
        args.run(args)
    args = parser.parse_args(["strain", str(cine), "-o", str(tmp_path / "b"), "--landmarks", "1,2,3,4,5,6",
                              "--labels", "gt.nii"])
    with pytest.raises(EchoDataError, match="not both"):
        args.run(args)
    args = parser.parse_args(["strain", str(cine), "-o", str(tmp_path / "c"),
                              "--landmarks", "80,100,60,20,100,20"])
    with pytest.raises(EchoDataError, match="--landmarks: points must be annulus, apex, annulus"):
        args.run(args)


def test_segments_with_noisy_tracking_are_flagged_unreliable(sim, tmp_path):
    seq = sim.sequence
    exact, _ = write_strain_outputs(seq, result_from_displacement(seq, sim.displacement, 0), None, tmp_path / "exact")
    assert exact.unreliable_segments() == [] and exact.describe_reliability() == ""
    noise = np.random.default_rng(0).normal(0, 0.8, sim.displacement.shape).astype(np.float32)
    noise[0] = 0  # the reference frame's field stays exactly zero
    noisy, _ = write_strain_outputs(seq, result_from_displacement(seq, sim.displacement + noise, 0), None,
                                    tmp_path / "noisy")
    assert noisy.unreliable_segments() == list(range(6))  # jittered tracking scores near zero
    assert noisy.describe_reliability() == "; 6 of 6 segments unreliable (GLS and EF include them)"
    # ES on a frame that measures no motion: EF not measured, and not said to include the segments
    flagged = np.zeros(seq.n_frames, dtype=bool)
    flagged[seq.es_index] = True
    assert dataclasses.replace(noisy, unmeasured=flagged).describe_reliability() == \
        "; 6 of 6 segments unreliable (GLS includes them)"
    assert "mid inferoseptal (0.00)" in noisy.warnings()[-1]
    rows = read_csv(tmp_path / "noisy" / "strain_summary.csv")
    assert [row[2] for row in rows if row[0] == "reliable"] == ["0"] * 6
    assert (tmp_path / "noisy" / "strain_segments.png").read_bytes()[:8] == PNG_MAGIC


def test_unmeasured_frames_are_shaded_over_their_own_time_spans():
    """The curves shade each run of frames that measure no motion from half way to the frame before to half
    way to the frame after (half an interval at the ends), on uneven times too."""
    from EchoRegistrationLib.strain.figures import unmeasured_spans

    t = np.array([0.0, 0.02, 0.04, 0.08, 0.10])
    assert np.allclose(unmeasured_spans(t, np.array([False, False, True, True, False])), [(0.03, 0.09)])
    assert np.allclose(unmeasured_spans(t, np.array([True, False, False, False, True])), [(-0.01, 0.01), (0.09, 0.11)])
    assert unmeasured_spans(t, np.zeros(5, bool)) == []
    assert unmeasured_spans(np.array([0.0]), np.array([True])) == []
