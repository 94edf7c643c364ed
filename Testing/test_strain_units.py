"""Never a silent wrong number (issue 13, items 1-2): unknown pixel size or frame times are blank or
marked in every strain output, and strain is relative to ED, detected when the file does not give it."""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from input_files import played, started_at, write_mjpg

from EchoRegistrationLib import load_sequence, save_sequence
from EchoRegistrationLib.cli import main
from EchoRegistrationLib.registration import register_sequence, save_registration
from EchoRegistrationLib.sequence import EchoDataWarning, EchoSequence
from EchoRegistrationLib.simulation import simulate_sequence
from EchoRegistrationLib.simulation.result import pixel_positions
from EchoRegistrationLib.strain import (biplane_ef, compute_strain, myocardium_from_labels,
                                        myocardium_from_landmarks, result_from_displacement,
                                        write_strain_outputs)
from EchoRegistrationLib.workflow import landmarks_in_mm
from EchoRegistrationLib.strain.reference import (FIRST_FRAME, FROM_FILE, FROM_USER, FROM_USER_REFERENCE,
                                                  LARGEST_VOLUME,
                                                  SMALLEST_VOLUME, CardiacFrames, cardiac_frames,
                                                  tracking_reference, tracking_reference_source)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def summary_rows(folder):
    return {(row[0], row[1]): (row[2], row[3]) for row in read_csv(folder / "strain_summary.csv")[1:]}


# ---------------------------------------------------------------------- simulated cines, known ED / ES
@pytest.fixture(scope="module")
def full_cycle():
    """A full simulated beat, 21 frames at 50 /s: ED at frame 0 (and 20), ES known."""
    return simulate_sequence(view="A4C", cycle="full", n_frames=21, image_size=(112, 112),
                             frame_rate=50.0, seed=7)


@pytest.mark.parametrize("where", ["ES", "mid-diastole"])
def test_ed_and_es_are_detected_and_strain_is_relative_to_ed(full_cycle, where):
    es = full_cycle.sequence.es_index
    start = es if where == "ES" else (es + full_cycle.sequence.n_frames) // 2
    cine, registration, order, myocardium = started_at(full_cycle, start)
    result = compute_strain(cine, registration, myocardium)
    ed_at, es_at = int(np.flatnonzero(order == 0)[0]), int(np.flatnonzero(order == es)[0])
    assert (result.ed_index, result.es_index, result.reference) == (ed_at, es_at, ed_at)
    assert (result.frames.ed_source, result.frames.es_source) == (LARGEST_VOLUME, SMALLEST_VOLUME)
    assert result.tracked_from == 0
    truth = full_cycle.gls_endo[order]  # % from ED, in the order played
    assert np.abs(result.gls_endo - truth).max() < 0.5
    peak = result.peaks()["GLS endocardial"]
    assert peak["peak_pct"] == pytest.approx(full_cycle.gls_endo.min(), abs=0.5) and peak["peak_pct"] < -15
    assert peak["peak_frame"] == es_at
    assert result.ef == pytest.approx(full_cycle.ef, abs=1.0)
    if where == "ES":  # the peak is the ES of the beat before ED: no time from ED without the period
        assert np.isnan(peak["time_to_peak_s"]) and "(in the beat before ED)" in result.describe_peak()
        untimed = dataclasses.replace(result, frame_times_known=False)  # both reasons, not only the times'
        assert f"at frame {es_at} (in the beat before ED; frame times unknown" in untimed.describe_peak()
    else:
        assert peak["time_to_peak_s"] == pytest.approx(full_cycle.sequence.frame_times[es], abs=1e-9)
    assert f"ED not given by the file: frame {ed_at} was detected as ED" in " ".join(result.warnings())
    assert not any("lengthening" in w for w in result.warnings())


def test_the_old_frame_0_reference_would_have_reported_lengthening(full_cycle):
    """The issue's kind: a cine starting at ES taken relative to frame 0 gives positive 'GLS'; the
    user can still ask for that reference, and is then warned."""
    cine, registration, _, myocardium = started_at(full_cycle, full_cycle.sequence.es_index)
    result = compute_strain(cine, registration, myocardium, reference=0)
    assert result.frames.reference_source == FROM_USER
    peak = result.peaks()["GLS endocardial"]["peak_pct"]
    # relative to ES the ED contour is longer by 1 / (1 + GLS) - 1
    assert peak == pytest.approx(100 * (1 / (1 + full_cycle.gls_endo.min() / 100) - 1), abs=0.6)
    assert peak > 20
    mid_wall = result.peaks()["GLS mid-wall"]["peak_pct"]
    assert mid_wall > 0  # both layers named: a positive mid-wall GLS alone is warned too
    assert f"peak GLS is positive (lengthening: endocardial {peak:+.1f} %, mid-wall {mid_wall:+.1f} %)" \
        in " ".join(result.warnings())
    # the file gives no ED: the user's reference is ED too (here ES, so systole has no ejection: warned)
    assert (result.frames.ed, result.frames.ed_source) == (0, FROM_USER_REFERENCE)
    assert "ED and ES are the same frame (0: ED set by the user as the strain reference" in " ".join(result.warnings())


def test_a_reference_set_by_the_user_is_ed_when_the_file_gives_none(full_cycle):
    """The cine starts at mid-diastole; the user sets the reference at the true ED: EDV, EF and the
    time to peak are measured from it, not from a detected ED, and no detection is warned of."""
    es = full_cycle.sequence.es_index
    cine, registration, order, myocardium = started_at(full_cycle, (es + full_cycle.sequence.n_frames) // 2)
    ed_at = int(np.flatnonzero(order == 0)[0])
    result = compute_strain(cine, registration, myocardium, reference=ed_at)
    assert (result.ed_index, result.frames.ed_source, result.reference) == (ed_at, FROM_USER_REFERENCE, ed_at)
    assert result.ef == pytest.approx(full_cycle.ef, abs=1.0)
    assert not any(w.startswith("ED not given") or "is not the frame of largest" in w for w in result.warnings())
    # a reference that is not ED (mid-systole, a few frames after it) underestimates EDV and EF: warned
    late = compute_strain(cine, registration, myocardium, reference=(ed_at + 3) % cine.n_frames)
    assert late.ed_index == (ed_at + 3) % cine.n_frames and late.ef < full_cycle.ef - 10
    assert [w for w in late.warnings() if "is not the frame of largest" in w] == [
        f"frame {late.ed_index}, set as the reference and so taken as ED, is not the frame of largest tracked LV "
        f"cavity: frame {ed_at}'s is {late.lv_volume[ed_at] / late.lv_volume[late.ed_index]:.2f}x as large; if "
        f"frame {late.ed_index} is not ED, EDV, EF and peak strain are underestimated (set the reference at ED)"]
    seq = dataclasses.replace(full_cycle.sequence, es_index=None)  # ED in the file: it stays ED
    other = compute_strain(seq, result_from_displacement(seq, full_cycle.displacement, 0), reference=3)
    assert (other.ed_index, other.frames.ed_source, other.reference) == (0, FROM_FILE, 3)


def test_tracking_reference_and_frames_from_the_file_or_the_user(full_cycle):
    seq = full_cycle.sequence  # ED 0 and ES given
    assert (tracking_reference(seq), tracking_reference_source(seq)) == (0, FROM_FILE)
    assert (tracking_reference(seq, 3), tracking_reference_source(seq, 3)) == (3, FROM_USER)
    bare = dataclasses.replace(seq, ed_index=None, es_index=None)
    assert (tracking_reference(bare), tracking_reference_source(bare)) == (0, FIRST_FRAME)
    with pytest.raises(ValueError, match="reference frame 21 is outside 0..20"):
        tracking_reference(seq, 21)
    volume = np.array([5.0, 4.0, 3.0, 6.0, 7.0, 5.0] + [5.0] * 15)
    frames = cardiac_frames(seq, volume)
    assert (frames.ed, frames.es, frames.ed_source) == (0, seq.es_index, FROM_FILE)
    detected = cardiac_frames(bare, volume)
    assert (detected.ed, detected.es, detected.reference) == (4, 2, 4)
    assert detected.systolic_frames().tolist() == [0, 1, 2, *range(4, 21)]
    assert CardiacFrames(1, 3, 1, "", "", "", 5).systolic_frames().tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="non-finite"):
        cardiac_frames(bare, np.full(21, np.nan))


# ---------------------------------------------------------------------- full cycle: the drift at the next ED
@pytest.mark.parametrize("start, why", [
    (13, "the cine ends at ES (frame 19): no end-of-cycle frame after the cycle from ED (frame 7)"),
    (12, "ES (frame 0) comes before ED (frame 8): the cine ends before the ES of the cycle from ED, with no "
         "end-of-cycle frame")])
def test_full_cycle_reports_no_drift_when_the_cine_ends_before_the_next_ed(full_cycle, start, why, tmp_path):
    """The issue: --full-cycle on the real A4C cine found ED at frame 13 and ES at 19, the last frame, and reported
    'drift at end of cycle, GLS endocardial, -14.46 %' (the peak itself) and a loop-closure drift of 2.56 mm,
    without a warning. The last frame of a cine cannot be the next ED when ES is not between ED and it: the
    drift is left blank and the warning says why."""
    cine, registration, order, myocardium = started_at(full_cycle, start)  # ES is frame 12 of the beat
    result = compute_strain(cine, registration, myocardium, full_cycle=True)
    assert result.full_cycle is False and np.isnan(result.drift_mm)
    assert f"--full-cycle: end-of-cycle drift left blank: {why}" in result.warnings()
    assert all("drift_pct" not in entry for entry in result.peaks().values())
    result.to_csv(tmp_path)
    assert not any("drift" in measure for measure, _ in summary_rows(tmp_path))
    summary = result.summary()
    assert summary["full_cycle"] is False and summary["quality"]["drift_mm"] is None
    assert compute_strain(cine, registration, myocardium).drift_note is None  # not asked for: nothing to warn of


def test_full_cycle_drift_is_measured_from_ed_when_tracked_from_another_frame(full_cycle):
    """A beat from late diastole (two frames before ED) to the next ED, tracked from its first frame: with the
    true motion the myocardium comes back to where it was at ED, so the drift is zero; measured from the
    tracked-from frame instead, it was the motion between that frame and ED."""
    n = full_cycle.sequence.n_frames  # frame n - 1 is the next ED
    cine, registration, myocardium = played(full_cycle, np.r_[n - 3, n - 2, 0:n])
    result = compute_strain(cine, registration, myocardium, full_cycle=True)
    assert (result.ed_index, result.es_index, result.tracked_from) == (2, 2 + full_cycle.sequence.es_index, 0)
    assert result.full_cycle
    assert result.drift_mm < 1e-3 and abs(result.peaks()["GLS endocardial"]["drift_pct"]) < 1e-3
    assert result.drift_note is None
    moved = np.linalg.norm(registration.displacement[2][myocardium.mask], axis=-1).mean()
    assert moved > 1.0  # 2.64 mm: what the drift read when it was |u| at the last frame
    # a full cycle from the file (ED 0, ES inside) with strain relative to another frame: no drift, and why
    seq = full_cycle.sequence
    other = compute_strain(seq, result_from_displacement(seq, full_cycle.displacement, 0), reference=3)
    assert not other.full_cycle and ("end-of-cycle drift left blank: strain is relative to frame 3, not to ED "
                                     "(frame 0)") in other.warnings()


# ---------------------------------------------------------------------- frames that measure no motion
def with_a_frame_of_noise(sim, frame, scale):
    """The beat of ``sim`` played from mid-diastole (ED at frame 4, ES at frame 16 of 20) with frame ``frame``
    replaced by uniform noise and its field by a uniform scaling of ``scale`` about the cavity's centre (30 %
    larger or smaller than ED's, far beyond the beat's): (cine, registration of the true fields, order,
    myocardium)."""
    cine, registration, order, myocardium = started_at(sim, (sim.sequence.es_index + sim.sequence.n_frames) // 2)
    frames = cine.frames.copy()
    frames[frame] = np.random.default_rng(0).uniform(0, 255, cine.frame_shape)
    cine = dataclasses.replace(cine, frames=frames)
    fields = registration.displacement.copy()
    fields[frame] = scale * (pixel_positions(cine.frame_shape, cine.spacing) - myocardium.endo.mean(axis=0))
    return cine, result_from_displacement(cine, fields, 0), order, myocardium


@pytest.mark.parametrize("phase, frame, scale", [("diastole", 2, 0.3), ("systole", 10, -0.3)])
def test_a_frame_that_measures_no_motion_is_never_ed_es_or_the_peak(full_cycle, phase, frame, scale):
    """The issue: frame 6 of the real A4C cine replaced by noise, which the registration names (NCC 0.000 with
    the reference: 'their fields are not measurements of motion'), was taken as ED (its tracked cavity the
    largest), and peak GLS read +15.9 %. The noise frame's field here makes the largest cavity (in diastole) or
    the smallest with the largest shortening (in systole); ED, ES, the peak and EF are the true beat's."""
    cine, registration, order, myocardium = with_a_frame_of_noise(full_cycle, frame, scale)
    ed_at, es_at = int(np.flatnonzero(order == 0)[0]), int(np.flatnonzero(order == full_cycle.sequence.es_index)[0])
    assert (ed_at, es_at) == (4, 16)
    result = compute_strain(cine, registration, myocardium)
    # the noise frame would have won: the largest / smallest tracked cavity, the largest strain
    volume, gls = result.lv_volume, result.gls_endo
    assert (int(np.argmax(volume)) if scale > 0 else int(np.argmin(volume))) == frame
    assert abs(gls[frame]) > abs(full_cycle.gls_endo.min())
    assert (result.ed_index, result.es_index, result.reference) == (ed_at, es_at, ed_at)
    assert (result.frames.ed_source, result.frames.es_source) == (LARGEST_VOLUME, SMALLEST_VOLUME)
    peak = result.peaks()["GLS endocardial"]
    assert peak["peak_frame"] == es_at and peak["peak_pct"] == pytest.approx(full_cycle.gls_endo.min(), abs=0.5)
    assert result.ef == pytest.approx(full_cycle.ef, abs=1.0)
    assert (f"frame {frame} left out of ED / ES detection and of peak strain: its field is not a measurement "
            "of motion (no signal, an NCC with the reference under 0.3 after registration, or a field fitted to noise; "
            "the registration's warnings name them)") in result.warnings()
    assert result.summary()["unmeasured_frames"] == [frame]
    assert not any("lengthening" in w for w in result.warnings())
    # the registration's flag (NCC with the reference after warping under 0.3), which the strain reuses
    assert registration.similarity_after[frame] < 0.05
    assert registration.unmeasured.tolist() == [k == frame for k in range(cine.n_frames)]


@pytest.mark.parametrize("reference", ["ED", "diastole"])
def test_a_peak_with_no_measured_systolic_frame_is_blank_not_zero(full_cycle, reference, tmp_path):
    """Every frame but the strain reference flagged (here: the registration's NCC after warping under 0.3
    everywhere else), the reference at ED or in diastole (outside ED..ES): the peaks are NaN with no frame and
    no time, and said to be not measured, not the reference's own 0 %; the outputs are written so."""
    from EchoRegistrationLib.strain.outputs import save_strain_outputs

    es, n_frames = full_cycle.sequence.es_index, full_cycle.sequence.n_frames
    cine, registration, order, myocardium = started_at(full_cycle, 0 if reference == "ED" else (es + n_frames) // 2)
    # ED and ES as a file gives them (in diastole, tracked from: on frames the registration flags below)
    cine = dataclasses.replace(cine, ed_index=int(np.flatnonzero(order == 0)[0]),
                               es_index=int(np.flatnonzero(order == es)[0]))
    measured = compute_strain(cine, registration, myocardium)
    assert measured.peaks()["GLS endocardial"]["peak_pct"] < -15  # the beat measured: a real peak
    unlike = np.full(cine.n_frames, 0.1)  # every frame but the one tracked from (frame 0) unlike it
    unlike[0] = 1.0
    result = compute_strain(cine, dataclasses.replace(registration, similarity_after=unlike), myocardium,
                            reference=0)
    assert result.reference == 0 and (result.ed_index == 0) == (reference == "ED")  # systole all flagged
    for entry in result.peaks().values():
        assert np.isnan(entry["peak_pct"]) and entry["peak_frame"] is None and np.isnan(entry["time_to_peak_s"])
    assert result.describe_peak() == "not measured (no systolic frame but the strain reference has measured motion)"
    save_strain_outputs(result, cine, tmp_path)
    rows = {(row[0], row[1]): row[2] for row in csv.reader((tmp_path / "strain_summary.csv").open())}
    assert rows[("peak systolic strain", "GLS endocardial")] == rows[("peak frame", "GLS endocardial")] == ""


def test_es_given_on_a_frame_that_measures_no_motion_leaves_esv_and_ef_blank(full_cycle, tmp_path):
    """ES set by the user on the noise frame: ESV, EF and end-systolic strain are not read there (blank, with
    the reason), in the console line, the tables, the JSON and biplane EF."""
    cine, registration, _, myocardium = with_a_frame_of_noise(full_cycle, 10, -0.3)
    result = compute_strain(cine.with_end_systole(10), registration, myocardium)
    assert (result.ed_index, result.es_index) == (4, 10)
    assert np.isnan(result.esv) and np.isnan(result.ef) and np.isfinite(result.edv)
    assert np.isnan(result.peaks()["GLS endocardial"]["end_systolic_pct"])
    assert result.peaks()["GLS endocardial"]["peak_frame"] == 9  # the last measured frame of systole 4..10
    assert result.describe_volumes() == f"EDV {result.edv:.0f} ml, EF not measured (ES frame 10 has no measured motion)"
    assert ("ES frame 10 (set by the user) has no measured motion: ESV, EF and end-systolic strain are left blank; "
            "set ES on a frame with measured motion (--es-frame)") in result.warnings()
    result.to_csv(tmp_path)
    rows = summary_rows(tmp_path)
    assert rows["EF", "LV"][0] == "" and rows["ESV", "LV"][0] == "" and rows["EDV", "LV"][0] != ""
    assert result.summary()["volumes"]["ef_pct"] is None
    biplane = biplane_ef(result, dataclasses.replace(result, view="A2C"))
    assert np.isnan(biplane["esv_ml"]) and np.isnan(biplane["ef_pct"]) and np.isfinite(biplane["edv_ml"])


def test_a_strain_reference_that_measures_no_motion_is_refused(full_cycle):
    cine, registration, _, myocardium = with_a_frame_of_noise(full_cycle, 10, -0.3)
    with pytest.raises(ValueError, match="strain reference frame 10 .* has no measured motion"):
        compute_strain(cine, registration, myocardium, reference=10)


def test_the_real_cine_with_a_frame_of_noise_is_measured_on_its_other_frames(shared_data, tmp_path, capsys):
    """The issue as the user ran it: the real A4C cine with frame 6 replaced by uniform noise, the network
    alone. Frame 6 (NCC with the reference 0.000) was detected as ED and peak GLS read +15.9 %."""
    image = sitk.ReadImage(str(shared_data / "echo_a4c" / "a4c_sequence.nii.gz"))
    frames = sitk.GetArrayFromImage(image)
    frames[6] = np.random.default_rng(0).uniform(frames.min(), frames.max(), frames[6].shape)
    weird = sitk.GetImageFromArray(frames)
    weird.CopyInformation(image)
    sitk.WriteImage(weird, str(tmp_path / "a4c_weird.nii.gz"))
    out = tmp_path / "strain"
    assert main(["strain", str(tmp_path / "a4c_weird.nii.gz"), "-o", str(out), "--refine", "0",
                 "--landmarks", "108,120,118,30,146,106"]) == 0
    err = capsys.readouterr().err
    assert "1 of 19 frames (frame 6) keep an NCC with the reference under 0.3" in err
    assert "frame 6 left out of ED / ES detection and of peak strain" in err
    report = json.loads((out / "strain_summary.json").read_text())
    assert report["unmeasured_frames"] == [6] and 6 not in (report["ed_frame"], report["es_frame"])
    assert report["gls_endocardial"]["peak_frame"] != 6 and report["gls_endocardial"]["peak_pct"] < -5
    assert not any("lengthening" in w for w in report["warnings"])


# ---------------------------------------------------------------------- no pixel size
def test_video_without_pixel_size_gives_ef_and_gls_but_no_volumes(tmp_path, capsys):
    """The issue's 112 x 112 MJPG A4C at 1.334 mm pixels: EDV / ESV were printed as 31 / 15 ml
    (truth 79 / 37); now they are blank, while EF and GLS (ratios) stay right."""
    sim = simulate_sequence(view="A4C", cycle="half", n_frames=6, image_size=(112, 112),
                            spacing=(1.334, 1.334), frame_rate=25.0, seed=2)
    video = write_mjpg(tmp_path / "a4c.avi", sim.sequence.frames)
    pixels = sim.landmarks_ed / 1.334
    out = tmp_path / "out"
    assert main(["strain", str(video), "-o", str(out), "--apical-view", "A4C",
                 "--landmarks", ",".join(f"{v:.3f}" for v in pixels.ravel())]) == 0
    console = capsys.readouterr()
    assert "echoreg: warning: --landmarks read in pixels (column, row)" in console.err
    assert "EDV, ESV not measured: pixel size unknown" in console.out and " ml" not in console.out
    assert "warning: pixel size unknown: areas, volumes and distances" in console.err
    report = json.loads((out / "strain_summary.json").read_text())
    assert report["spacing_known"] is False and report["frame_times_known"] is True
    assert report["volumes"]["edv_ml"] is None and report["volumes"]["esv_ml"] is None
    assert report["volumes"]["ef_pct"] == pytest.approx(sim.ef, abs=10.0)
    assert report["gls_endocardial"]["peak_pct"] == pytest.approx(sim.gls_endo.min(), abs=4.0)
    frames = read_csv(out / "strain_frames.csv")
    assert frames[0][-2:] == ["LV area (mm2, pixel size unknown)", "LV volume (ml, pixel size unknown)"]
    assert all(row[-1] == "" and row[-2] == "" for row in frames[1:])
    rows = summary_rows(out)
    assert rows["EDV", "LV"] == ("", "ml, pixel size unknown") and rows["EF", "LV"][0] != ""


@pytest.mark.parametrize("spacing, known, expected", [((1.0, 1.0), False, [[10, 20], [30, 5]]),
                                                      ((0.5, 0.25), False, [[5, 5], [15, 1.25]]),
                                                      ((0.5, 0.25), True, [[10, 20], [30, 5]])])
def test_landmarks_are_pixels_when_the_pixel_size_is_unknown(spacing, known, expected):
    seq = EchoSequence(frames=np.zeros((2, 8, 8)), spacing=spacing, metadata={"spacing_known": known})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert landmarks_in_mm(np.array([[10.0, 20.0], [30.0, 5.0]]), seq) == pytest.approx(np.array(expected))
    said = [str(w.message) for w in caught if issubclass(w.category, EchoDataWarning)]
    # the user is told the landmarks were read in pixels exactly when the pixel size is unknown
    told = "--landmarks read in pixels (column, row): <in-memory sequence> gives no pixel size"
    assert said == ([] if known else [told])


def test_palette_dicom_without_regions_reports_no_volume(shared_data, tmp_path):
    """The shared palette DICOM has no ultrasound regions: 2305 ml was printed as its EDV."""
    pytest.importorskip("pylibjpeg", reason="needs a JPEG-LS decoder")
    seq = load_sequence(shared_data / "dicom_us" / "palette-multiframe-jpeg-ls.dcm")
    assert not seq.spacing_known and seq.frame_times_known
    myocardium = myocardium_from_landmarks([[250, 300], [300, 100], [350, 300]], seq.frame_shape,
                                           seq.spacing)
    scale = np.linspace(1.0, 0.9, seq.n_frames)[:, None, None, None]  # 10 % shortening about the apex
    fields = ((scale - 1) * (pixel_positions(seq.frame_shape, seq.spacing) - [300, 100])).astype(np.float32)
    result, _ = write_strain_outputs(seq, result_from_displacement(seq, fields, 0), myocardium, tmp_path)
    assert np.isnan(result.edv) and np.isnan(result.esv)
    assert result.ef == pytest.approx(100 * (1 - 0.9 ** 3), abs=0.01)
    assert result.peaks()["GLS endocardial"]["peak_pct"] == pytest.approx(-10.0, abs=1e-3)
    report = json.loads((tmp_path / "strain_summary.json").read_text())
    assert report["volumes"]["edv_ml"] is None and report["spacing_known"] is False
    assert "ml" not in result.describe_volumes().split("(")[0]


# ---------------------------------------------------------------------- no frame times
def test_nifti_without_frame_times_reports_frames_not_seconds(tmp_path, capsys):
    """A NIfTI stores no frame times: 'peak GLS -18.6 % at 9000 ms' (frame 9 taken as 9 s; truth
    0.18 s at 50 /s). Now: at frame 9, times blank; with --frame-rate 50: 180 ms."""
    sim = simulate_sequence(view="A4C", cycle="half", n_frames=10, image_size=(112, 112),
                            frame_rate=50.0, seed=4)
    cine = save_sequence(sim.sequence, tmp_path / "cine.nii.gz")
    labels = sitk.GetImageFromArray(sim.sequence.labels[0])
    labels.SetSpacing(sim.sequence.spacing)
    sitk.WriteImage(labels, str(tmp_path / "ed_gt.nii.gz"))
    seq = load_sequence(cine)
    assert not seq.frame_times_known and seq.spacing_known
    result = compute_strain(seq, result_from_displacement(seq, sim.displacement, 0),
                            myocardium_from_labels(sim.sequence.labels[0], seq.spacing))
    peak = result.peaks()["GLS endocardial"]
    assert peak["peak_frame"] == 9 and np.isnan(peak["time_to_peak_s"])
    assert peak["peak_pct"] == pytest.approx(sim.gls_endo[9], abs=0.3)
    assert result.describe_peak() == f"{peak['peak_pct']:+.1f} % at frame 9 (frame times unknown)"
    assert np.isnan(result.time_from_ed).all()
    x, title = result.timeline()
    assert x.tolist() == list(range(10)) and title == "frames from ED (frame times unknown)"

    out = tmp_path / "out"
    assert main(["strain", str(cine), "--labels", str(tmp_path / "ed_gt.nii.gz"), "-o", str(out)]) == 0
    console = capsys.readouterr()
    rows = summary_rows(out)
    peak_frame, unit = rows["peak frame", "GLS endocardial"]
    assert unit == "index" and int(peak_frame) in (8, 9)  # the registration's peak: within a frame of the truth's 9
    assert f"% at frame {peak_frame} (frame times unknown)" in console.out and " ms" not in console.out
    frames = read_csv(out / "strain_frames.csv")
    assert frames[0][1:3] == ["time (s, frame times unknown)", "time from ED (s, frame times unknown)"]
    assert all(row[1] == "" and row[2] == "" for row in frames[1:])
    assert rows["time to peak", "GLS endocardial"] == ("", "s, frame times unknown")
    report = json.loads((out / "strain_summary.json").read_text())
    assert report["frame_times_known"] is False and report["gls_endocardial"]["time_to_peak_s"] is None
    assert report["gls_endocardial"]["peak_pct"] == pytest.approx(sim.gls_endo[9], abs=3.0)

    timed = load_sequence(cine, frame_rate=50.0)  # what --frame-rate 50 loads
    result = compute_strain(timed, result_from_displacement(timed, sim.displacement, 0),
                            myocardium_from_labels(sim.sequence.labels[0], timed.spacing))
    assert result.peaks()["GLS endocardial"]["time_to_peak_s"] == pytest.approx(0.18)
    assert result.describe_peak().endswith("% at 180 ms from ED") and result.timeline()[1] == "time from ED (s)"


def test_in_memory_sequence_without_times_or_spacing_is_marked_everywhere(full_cycle, tmp_path):
    """An input of our own: a sequence with neither pixel size nor frame times (as a video without
    a frame rate gives): registration report, fields file and strain files all say so."""
    sim = full_cycle
    bare = dataclasses.replace(sim.sequence, frame_times=None, ed_index=None, es_index=None,
                               metadata={**sim.sequence.metadata, "spacing_known": False})
    registration = result_from_displacement(bare, sim.displacement, 0)
    save_registration(registration, bare, tmp_path / "registration")
    report = json.loads((tmp_path / "registration" / "report.json").read_text())
    assert (report["spacing_known"], report["frame_times_known"]) == (False, False)
    assert report["frame_times_s"] is None  # not the frame indices as seconds
    with np.load(tmp_path / "registration" / "displacement.npz") as npz:
        assert (bool(npz["spacing_known"]), bool(npz["frame_times_known"])) == (False, False)
        assert "not mm (pixel size unknown" in str(npz["convention"])  # its text does not say mm either
        assert np.isnan(npz["frame_times"]).all()  # not the frame indices, which read as seconds
    write_strain_outputs(bare, registration, None, tmp_path / "strain")
    summary = json.loads((tmp_path / "strain" / "strain_summary.json").read_text())
    assert (summary["spacing_known"], summary["frame_times_known"]) == (False, False)
    assert summary["ed_frame_source"] == LARGEST_VOLUME and summary["ed_frame"] in (0, 20)
    assert summary["es_frame"] == sim.sequence.es_index
    assert summary["gls_endocardial"]["peak_pct"] == pytest.approx(sim.gls_endo.min(), abs=0.7)
    assert summary["volumes"]["ef_pct"] == pytest.approx(sim.ef, abs=1.0)
    assert summary["volumes"]["edv_ml"] is None
    assert report["spacing_mm"] is None  # the placeholder is not given as mm, but named so
    assert report["placeholder_spacing"] == list(sim.sequence.spacing)


# ---------------------------------------------------------------------- the shared real A4C
def test_real_a4c_starting_near_es_is_measured_from_detected_ed(shared_data):
    """The shared real A4C starts near end-systole: relative to frame 0 it gave 'peak GLS 19.0 %'
    (really +19), EF 1 %, time to peak 12000 ms. ED is detected late in the clip (frame 14 at full
    resolution), ES near the start (frame 2); GLS then shortens (about -14 %), EF about 27 % with
    these landmarks; the clip has no frame times, so time to peak is blank. Tracked at half
    resolution (0.8 mm) to keep the suite quick."""
    full = load_sequence(shared_data / "echo_a4c" / "a4c_sequence.nii.gz")
    seq = dataclasses.replace(full, frames=full.frames[:, ::2, ::2],
                              spacing=(2 * full.spacing[0], 2 * full.spacing[1]))
    reference = tracking_reference(seq)
    myocardium = myocardium_from_landmarks([[106, 120], [122, 32], [150, 112]], seq.frame_shape, seq.spacing)
    result = compute_strain(seq, register_sequence(seq, "deformable", reference=reference), myocardium,
                            view="A4C")
    print(result.frames.describe(), result.describe_peak(), result.describe_volumes())
    assert reference == 0 and result.frames.ed_source == LARGEST_VOLUME
    assert 13 <= result.ed_index <= 15 and result.es_index <= 3 and result.reference == result.ed_index
    peak = result.peaks()["GLS endocardial"]
    assert -20.0 < peak["peak_pct"] < -9.0 and np.isnan(peak["time_to_peak_s"])
    assert result.describe_peak().startswith(f"{peak['peak_pct']:+.1f} % at frame ")
    assert 15.0 < result.ef < 45.0


def test_biplane_volumes_are_blank_without_pixel_size(full_cycle):
    known = compute_strain(full_cycle.sequence, result_from_displacement(full_cycle.sequence,
                                                                         full_cycle.displacement, 0))
    measured = biplane_ef(dataclasses.replace(known, view=None), dataclasses.replace(known, view=None))
    assert measured["edv_ml"] == pytest.approx(known.edv, rel=1e-9)  # the same cavity in both planes
    unknown = dataclasses.replace(known, view=None, spacing_known=False)
    blank = biplane_ef(unknown, unknown)
    assert np.isnan(blank["edv_ml"]) and np.isnan(blank["esv_ml"])
    assert blank["ef_pct"] == pytest.approx(measured["ef_pct"], rel=1e-12)


def test_a_segment_with_near_zero_quality_is_named_in_a_warning(full_cycle):
    result = compute_strain(full_cycle.sequence, result_from_displacement(full_cycle.sequence,
                                                                          full_cycle.displacement, 0))
    assert not any("quality near zero" in w for w in result.warnings())  # exact motion: good quality
    score = result.quality.score.copy()
    score[[1, 4]] = [0.05, 0.0]
    poor = dataclasses.replace(result, quality=dataclasses.replace(result.quality, score=score))
    assert ("tracking quality near zero in mid inferoseptal (0.05), mid anterolateral (0.00): their "
            "strain is unreliable") in poor.warnings()
    assert poor.summary()["warnings"] == poor.warnings()


def test_strain_tracked_by_a_network_warns_about_its_segments(full_cycle):
    from EchoRegistrationLib.strain.result import NETWORK_SEGMENTS, NETWORK_SEGMENTS_NO_ANCHOR

    result = compute_strain(full_cycle.sequence, result_from_displacement(full_cycle.sequence,
                                                                          full_cycle.displacement, 0))
    assert not {NETWORK_SEGMENTS, NETWORK_SEGMENTS_NO_ANCHOR} & set(result.warnings())  # truth: no method
    # the chained start (registration.tracking.REFINE_STARTS) goes through every frame, no anchor frame: not
    # "every frame directly"
    cases = (("dlir", "to_reference", 4, "direct", NETWORK_SEGMENTS),
             ("dlir", "to_reference", None, "direct", NETWORK_SEGMENTS_NO_ANCHOR),
             ("dlir", "to_reference", None, None, NETWORK_SEGMENTS_NO_ANCHOR),
             ("dlir", "to_reference", None, "chained", NETWORK_SEGMENTS),
             ("dlir", "sequential", None, None, NETWORK_SEGMENTS),
             ("deformable", "to_reference", None, None, None))
    for method, mode, anchor_frame, start, warning in cases:
        tracked = dataclasses.replace(result, registration={"method": method, "mode": mode,
                                                            "anchor_frame": anchor_frame, "refine_start_used": start})
        shown = {NETWORK_SEGMENTS, NETWORK_SEGMENTS_NO_ANCHOR} & set(tracked.warnings())
        assert shown == ({warning} if warning else set()), (method, mode, anchor_frame, start)
        assert tracked.summary()["warnings"] == tracked.warnings()
    assert "--method deformable" in NETWORK_SEGMENTS and "3.6 points off on average" in NETWORK_SEGMENTS
    assert "the default (refined by 24 steps from the better of two starts) 2.1" in NETWORK_SEGMENTS
    assert "--method deformable" in NETWORK_SEGMENTS_NO_ANCHOR and "about 10 points off" in NETWORK_SEGMENTS_NO_ANCHOR
