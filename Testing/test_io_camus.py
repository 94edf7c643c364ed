"""The CAMUS layout: a fixture folder written by the test the way the dataset ships, and our writer."""

import numpy as np
import pytest
import SimpleITK as sitk

from EchoRegistrationLib import EchoDataError, EchoSequence
from EchoRegistrationLib.io import load_sequence
from EchoRegistrationLib.io.camus import (CamusDataset, load_camus_patient, read_camus_info,
                                          write_camus_patient)

N, H, W = 6, 12, 10


def write_nifti(path, array, spacing=(0.308, 0.154)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing + ((1.0,) if array.ndim == 3 else ()))
    sitk.WriteImage(image, str(path))


def label_frames():
    labels = np.zeros((N, H, W), np.uint8)
    for t in range(N):
        labels[t, 2:9 - t // 2, 3:7] = 1  # the cavity shrinks towards ES
        labels[t, 9 - t // 2:10, 3:7] = 2
        labels[t, 10:, 3:7] = 3
    return labels


@pytest.fixture
def camus_root(tmp_path):
    """Two patients as the CAMUS NIfTI release lays them out (patient0002 has no per-frame gt)."""
    rng = np.random.default_rng(0)
    labels = label_frames()
    for pid, with_sequence_gt in (("patient0001", True), ("patient0002", False)):
        folder = tmp_path / pid
        folder.mkdir()
        for view in ("2CH", "4CH"):
            frames = rng.uniform(0, 255, (N, H, W)).astype(np.float32)
            stem = folder / f"{pid}_{view}"
            write_nifti(f"{stem}_half_sequence.nii.gz", frames)
            if with_sequence_gt:
                write_nifti(f"{stem}_half_sequence_gt.nii.gz", labels)
            write_nifti(f"{stem}_ED.nii.gz", frames[0])
            write_nifti(f"{stem}_ES.nii.gz", frames[-1])
            write_nifti(f"{stem}_ED_gt.nii.gz", labels[0])
            write_nifti(f"{stem}_ES_gt.nii.gz", labels[-1])
            (folder / f"Info_{view}.cfg").write_text(
                f"ED: 1\nES: {N}\nNbFrame: {N}\nSex: F\nAge: 61\nImageQuality: Good\nEF: 52.5\nFrameRate: 25.0\n")
    return tmp_path


def test_info_file_parsing(camus_root):
    info = read_camus_info(camus_root / "patient0001" / "Info_2CH.cfg")
    assert info == {"ED": 1.0, "ES": 6.0, "NbFrame": 6.0, "Sex": "F", "Age": 61.0,
                    "ImageQuality": "Good", "EF": 52.5, "FrameRate": 25.0}


def test_load_patient_with_per_frame_labels(camus_root):
    seq = load_camus_patient(camus_root / "patient0001", "A4C")
    assert seq.frames.shape == (N, H, W) and seq.spacing == pytest.approx((0.308, 0.154))
    assert (seq.ed_index, seq.es_index) == (0, N - 1)
    assert seq.frame_times == pytest.approx(np.arange(N) / 25.0)
    assert seq.label_frames == tuple(range(N))
    assert np.array_equal(seq.labels, label_frames())
    assert seq.metadata["ef"] == 52.5 and seq.metadata["view"] == "4CH"
    assert seq.metadata["camus_ImageQuality"] == "Good"


def test_load_patient_with_ed_es_labels_only(camus_root):
    seq = load_camus_patient(camus_root / "patient0002", "2CH")
    assert seq.label_frames == (0, N - 1)
    assert np.array_equal(seq.label_map(N - 1), label_frames()[-1])
    with pytest.raises(EchoDataError, match="frame 2 has no label map"):
        seq.label_map(2)


def test_dataset_iterates_views_and_patient_subsets(camus_root):
    everything = CamusDataset(camus_root)
    assert len(everything) == 4
    assert [s.metadata["patient"] for s in everything] == ["patient0001"] * 2 + ["patient0002"] * 2
    subset = CamusDataset(camus_root, views=["4CH"], patients=["patient0002"])
    assert len(subset) == 1 and subset[0].metadata["view"] == "4CH"


def test_info_that_contradicts_images_is_an_error(camus_root):
    cfg = camus_root / "patient0001" / "Info_2CH.cfg"
    cfg.write_text("ED: 1\nES: 9\nNbFrame: 6\n")
    with pytest.raises(EchoDataError, match=r"Info_2CH.cfg: ES=9.0 is not a frame number in 1..6"):
        load_camus_patient(camus_root / "patient0001", "2CH")
    with pytest.raises(EchoDataError, match=r"holds views \['2CH', '4CH'\]: choose one \(--view 2CH or --view 4CH"):
        load_camus_patient(camus_root / "patient0001")


def test_writer_round_trip(tmp_path):
    frames = np.random.default_rng(1).uniform(0, 255, (N + 2, H, W)).astype(np.float32)
    labels = np.concatenate([label_frames(), label_frames()[:2]])
    seq = EchoSequence(frames=frames, spacing=(0.3, 0.3), frame_times=np.arange(N + 2) / 40.0,
                       labels=labels, ed_index=1, es_index=N, metadata={"ef": 55.0})
    folder = write_camus_patient(tmp_path, "patient0007", "A2C", seq)
    back = load_camus_patient(folder)
    assert np.array_equal(back.frames, frames[1:N + 1])
    assert np.array_equal(back.labels, labels[1:N + 1])
    assert (back.ed_index, back.es_index) == (0, N - 1)
    assert back.frame_rate == pytest.approx(40.0) and back.metadata["ef"] == 55.0
    with pytest.raises(FileExistsError):
        write_camus_patient(tmp_path, "patient0007", "A2C", seq)


def _pair_only(camus_root, info):
    """patient0001's 2CH view as an ED + ES pair (no half sequence), with ``info`` as its Info file (None: none)."""
    folder = camus_root / "patient0001"
    for suffix in ("half_sequence", "half_sequence_gt"):
        (folder / f"patient0001_2CH_{suffix}.nii.gz").unlink()
    cfg = folder / "Info_2CH.cfg"
    cfg.unlink()
    if info is not None:
        cfg.write_text(info)
    return folder


def test_ed_es_pair_is_timed_by_its_frame_numbers(camus_root):
    folder = _pair_only(camus_root, f"ED: 1\nES: {N}\nNbFrame: {N}\nFrameRate: 25.0\n")
    seq = load_camus_patient(folder, "2CH")
    assert seq.n_frames == 2 and (seq.ed_index, seq.es_index) == (0, 1)
    # ES lies N - 1 frames after ED, not one frame (the times were [0, 1 / FrameRate] before)
    assert seq.frame_times == pytest.approx([0.0, (N - 1) / 25.0])
    assert seq.metadata["frame_times_source"] == f"Info FrameRate (25 frames/s), at 1 (ED) and {N} (ES) of the " \
                                                 "half sequence (Info file)"
    # the file's numbers are kept, and the summary gives the frames' places, not a rate of two frames
    assert (seq.metadata["camus_ED"], seq.metadata["camus_ES"], seq.metadata["camus_NbFrame"]) == (1, N, N)
    assert f"frame times:  0 .. 0.2 s, frames 1 (ED) and {N} (ES) of the half sequence (Info file)" in seq.describe()


def test_a_pair_of_neighbouring_frames_says_where_they_lie_like_any_pair(camus_root):
    """ED 1 and ES 2: one frame apart, and still an ED + ES pair, whose times' source names the frames (as the
    metadata does): the source used to name them only for frames not next to each other."""
    seq = load_camus_patient(_pair_only(camus_root, "ED: 1\nES: 2\nNbFrame: 2\nFrameRate: 25.0\n"), "2CH")
    assert seq.frame_times == pytest.approx([0.0, 0.04])
    assert seq.metadata["frame_positions"] == "1 (ED) and 2 (ES) of the half sequence (Info file)"
    assert seq.metadata["frame_times_source"].endswith(", at " + seq.metadata["frame_positions"])


@pytest.mark.parametrize("info, why", [
    (None, "there is no Info_2CH.cfg"),
    (f"ES: {N}\nFrameRate: 25\n", "Info_2CH.cfg does not give both ED and ES")])
def test_ed_es_pair_without_frame_numbers_has_unknown_times(camus_root, info, why):
    folder = _pair_only(camus_root, info)
    seq = load_camus_patient(folder, "2CH")
    assert not seq.frame_times_known
    assert seq.metadata["frame_times_source"] == f"unknown: an ED + ES pair without their frame numbers ({why})"
    # what echoreg info suggests is what the reader takes: not --frame-rate, which cannot time the pair
    assert ("frame times:  UNKNOWN (not in the file; an ED + ES pair without their frame numbers "
            f"({why}): a frame rate cannot give their times)") in seq.describe()
    with pytest.raises(EchoDataError, match=rf"patient0001: holds only the ED and ES frames, without their frame "
                                            rf"numbers \({why}\): a frame rate cannot give their times"):
        load_camus_patient(folder, "2CH", frame_rate=25.0)


@pytest.mark.parametrize("info, problem", [
    (f"ED: {N}\nES: 1\nNbFrame: {N}\n", f"ES=1 is not after ED={N}"),
    (f"ED: 1\nES: {N + 5}\nNbFrame: {N}\n", rf"ES={N + 5}.0 is not a frame number in 1..{N}"),
    ("ED: 1.5\nES: 4\n", r"ED=1.5 is not a frame number in 1, 2, \.\.\."),
    (f"ED: 1\nES: {N}\nFrameRate: fast\n", "FrameRate='fast' is not a positive, finite number of frames/s"),
    (f"ED: 1\nES: {N}\nFrameRate: 0\n", "FrameRate=0.0 is not a positive, finite number of frames/s"),
    (f"ED: 1\nES: {N}\nFrameRate: inf\n", "FrameRate=inf is not a positive, finite number of frames/s")])
def test_an_info_file_that_cannot_time_a_pair_is_refused(camus_root, info, problem):
    """The pair's numbers and rate give its times: numbers outside the frames, ES before ED or a rate that is
    no rate would time it wrongly (they were not checked for a pair, and a bad FrameRate read as none)."""
    folder = _pair_only(camus_root, info)
    with pytest.raises(EchoDataError, match=rf"Info_2CH.cfg: {problem}"):
        load_camus_patient(folder, "2CH")


def test_a_shared_info_file_of_a_flat_folder_is_not_read(camus_root):
    """In a flat folder of several patients' pairs one Info file cannot be each patient's: it would give them
    all one ED -> ES interval."""
    flat = camus_root / "flat"
    flat.mkdir()
    for pid in ("patient0001", "patient0002"):
        for phase in ("ED", "ES"):
            (camus_root / pid / f"{pid}_4CH_{phase}.nii.gz").rename(flat / f"{pid}_4CH_{phase}.nii.gz")
    (flat / "Info_4CH.cfg").write_text(f"ED: 1\nES: {N}\nFrameRate: 25\n")
    seq = load_camus_patient(flat, "4CH", patient="patient0002")
    assert not seq.frame_times_known and "camus_FrameRate" not in seq.metadata
    assert "Info_4CH.cfg is shared by the patients of this folder and not read" in seq.metadata["frame_times_source"]


def test_frame_rate_times_a_camus_folder_without_one(camus_root):
    cfg = camus_root / "patient0001" / "Info_2CH.cfg"
    cfg.write_text(f"ED: 1\nES: {N}\nNbFrame: {N}\n")
    seq = load_sequence(camus_root / "patient0001", view="2CH", frame_rate=40.0)  # --frame-rate reaches the reader
    assert seq.frame_times == pytest.approx(np.arange(N) / 40.0)
    assert seq.metadata["frame_times_source"] == "frame_rate argument (40 frames/s)"
    pair = _pair_only(camus_root, f"ED: 2\nES: {N}\nNbFrame: {N}\n")
    seq = load_camus_patient(pair, "2CH", frame_rate=40.0)
    assert seq.frame_times == pytest.approx([0.0, (N - 2) / 40.0])
    assert seq.metadata["frame_times_source"] == f"frame_rate argument (40 frames/s), at 2 (ED) and {N} (ES) of " \
                                                 "the half sequence (Info file)"


def test_frame_rate_that_contradicts_the_info_file_is_refused(camus_root):
    assert load_camus_patient(camus_root / "patient0001", "2CH", frame_rate=25.0).frame_times == \
        pytest.approx(np.arange(N) / 25.0)
    with pytest.raises(EchoDataError, match=r"Info_2CH.cfg: frame rate 40 frames/s given .*, but the file records "
                                            r"its frame times: Info FrameRate \(25 frames/s\); a frame rate"):
        load_camus_patient(camus_root / "patient0001", "2CH", frame_rate=40.0)


def test_a_folder_of_other_patients_files_says_what_it_holds(camus_root):
    """A flat folder of many patients' pairs (the shared camus_ed_es layout), or one patient's files in a folder
    of another name, was 'no CAMUS images (..._half_sequence.nii.gz)'."""
    flat = camus_root / "flat"
    flat.mkdir()
    for pid in ("patient0001", "patient0002"):
        for phase in ("ED", "ES"):
            (camus_root / pid / f"{pid}_4CH_{phase}.nii.gz").rename(flat / f"{pid}_4CH_{phase}.nii.gz")
    with pytest.raises(EchoDataError, match=r"flat: holds the ED / ES files of 2 patients \(patient0001, \.\.\.\), "
                                            r"not one patient's folder: .* EchoRegistrationLib\.io\.CamusPairFolder"):
        load_sequence(flat)
    (flat / "patient0002_4CH_ED.nii.gz").unlink()
    with pytest.raises(EchoDataError, match=r"flat: holds patient0001's files in a folder of another name: CAMUS names "
                                            r"a patient's folder after it \(rename it patient0001\)"):
        load_sequence(flat)
