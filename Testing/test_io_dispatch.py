"""load_sequence / save_sequence: format recognised by content, options checked, user data protected."""

import shutil

import cv2
import numpy as np
import pytest

from EchoRegistrationLib import EchoDataError, EchoSequence, load_sequence, save_sequence
from EchoRegistrationLib.io import detect_format, write_camus_patient


def small_sequence(n=4, h=10, w=12, source="small"):
    rng = np.random.default_rng(3)
    labels = np.zeros((h, w), np.uint8)
    labels[3:6, 4:8] = 2
    return EchoSequence(frames=rng.uniform(0, 255, (n, h, w)).astype(np.float32), spacing=(0.25, 0.35),
                        frame_times=np.arange(n) * 0.03, origin=[1.0, 2.0, 0.0], labels=labels, ed_index=0,
                        es_index=n - 1, metadata={"source": source})


@pytest.mark.parametrize("name, kind", [("cine.seq.nrrd", "seqnrrd"), ("cine.nrrd", "itk"),
                                        ("cine.nii.gz", "itk"), ("cine.nii", "itk"), ("cine.mha", "itk")])
def test_saved_files_are_recognised_by_content_and_read_back(tmp_path, name, kind):
    seq = small_sequence()
    path = save_sequence(seq, tmp_path / name)
    disguised = tmp_path / "no_suffix_at_all"
    shutil.copy(path, disguised)
    assert detect_format(disguised) == kind
    back = load_sequence(path, **({} if kind == "seqnrrd" or name.endswith(".mha") else {"frame_rate": 1 / 0.03}))
    assert np.array_equal(back.frames, seq.frames) and back.spacing == pytest.approx(seq.spacing)
    assert back.frame_times == pytest.approx(seq.frame_times)


def test_video_and_camus_folder_are_recognised(tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (32, 24))
    for k in range(3):
        writer.write(np.full((24, 32, 3), 60 * k, np.uint8))
    writer.release()
    assert detect_format(tmp_path / "clip.avi") == "video"
    clip = load_sequence(tmp_path / "clip.avi")
    assert clip.n_frames == 3 and not clip.spacing_known
    folder = write_camus_patient(tmp_path / "camus", "patient0001", "4CH", small_sequence())
    assert detect_format(folder) == "camus"
    assert load_sequence(folder).metadata["view"] == "4CH"


def test_real_files_of_every_kind(shared_data):
    assert detect_format(shared_data / "camus" / "patient0500_2CH_half_sequence.nii.gz") == "itk"
    for dicom in sorted((shared_data / "dicom_us").glob("*.dcm")):
        assert detect_format(dicom) == "dicom", dicom.name
    seq = load_sequence(shared_data / "dicom_us" / "palette-multiframe-jpeg-ls.dcm")
    assert seq.n_frames == 10 and seq.frame_times[1] == pytest.approx(0.076)


def test_labels_are_attached_and_checked(tmp_path):
    seq = small_sequence()
    save_sequence(seq, tmp_path / "cine.mha")
    label_seq = small_sequence()
    label_file = tmp_path / "cine_gt.nii.gz"
    from EchoRegistrationLib.io.itk import write_itk_image
    write_itk_image(label_seq, label_file, array=label_seq.labels)
    loaded = load_sequence(tmp_path / "cine.mha", labels=label_file)
    assert np.array_equal(loaded.label_map(0), seq.labels)
    wrong = tmp_path / "wrong_gt.nii.gz"
    small = EchoSequence(frames=np.zeros((4, 5, 5)), spacing=(1, 1))
    write_itk_image(small, wrong, array=np.zeros((5, 5), np.uint8))
    with pytest.raises(EchoDataError, match=r"wrong_gt.nii.gz: labels of shape \(5, 5\) do not match"):
        load_sequence(tmp_path / "cine.mha", labels=wrong)


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.dcm"):
        load_sequence(tmp_path / "missing.dcm")
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image at all " * 40)
    with pytest.raises(EchoDataError, match="notes.txt: unrecognised content"):
        load_sequence(junk)
    save_sequence(small_sequence(), tmp_path / "cine.seq.nrrd")
    with pytest.raises(EchoDataError, match=r"cine.seq.nrrd: option\(s\) \['crop_to_region'\] do not apply"):
        load_sequence(tmp_path / "cine.seq.nrrd", crop_to_region=True)
    with pytest.raises(EchoDataError, match=r"\['view'\] do not apply to this file, read as seqnrrd .*"
                                            r"view \(--view\) picks the 2CH or 4CH cine of a CAMUS folder; another "
                                            r"file's apical view is --apical-view of echoreg strain\)"):
        load_sequence(tmp_path / "cine.seq.nrrd", view="4CH")  # a batch CSV's view column on a plain file


def test_save_protects_user_data(tmp_path):
    path = save_sequence(small_sequence(), tmp_path / "cine.seq.nrrd")
    original = path.read_bytes()
    loaded = load_sequence(path)
    with pytest.raises(FileExistsError, match="already exists"):
        save_sequence(small_sequence(), tmp_path / "cine.seq.nrrd")
    with pytest.raises(FileExistsError, match="refusing to overwrite the file this sequence was read from"):
        save_sequence(loaded, path, overwrite=True)
    assert path.read_bytes() == original
    with pytest.raises(EchoDataError, match=r"cine\.png: cannot write this format"):  # exit 2 in the CLI
        save_sequence(loaded, tmp_path / "cine.png")


# --------------------------------------------------------------------------- label maps and masks (issue 13)
def test_label_maps_load_from_every_exact_format(tmp_path):
    from input_files import write_us

    from EchoRegistrationLib.io import read_label_map

    codes = np.zeros((4, 10, 12), np.uint8)
    codes[:, 2:6, 3:9] = 1
    codes[1:, 6:8, 3:9] = 2
    cine = save_sequence(small_sequence(), tmp_path / "cine.mha")
    files = [save_sequence(EchoSequence(frames=codes, spacing=(0.25, 0.35)), tmp_path / name)
             for name in ("gt.seq.nrrd", "gt.mha", "gt.nrrd")] + [write_us(tmp_path / "gt.dcm", codes)]
    for path in files:
        assert np.array_equal(read_label_map(path), codes), path.name
        assert np.array_equal(load_sequence(cine, labels=path).label_map(3), codes[3]), path.name
    inverted = write_us(tmp_path / "inverted.dcm", codes, "MONOCHROME1")
    with pytest.raises(EchoDataError, match=r"inverted\.dcm: a MONOCHROME1 DICOM does not hold label codes"):
        read_label_map(inverted)


def test_label_map_from_a_video_is_refused(tmp_path):
    from EchoRegistrationLib.io import read_label_map

    writer = cv2.VideoWriter(str(tmp_path / "gt.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (32, 24))
    writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(EchoDataError, match=r"gt\.avi: a label map cannot be read from a video input"):
        read_label_map(tmp_path / "gt.avi")


def test_mask_from_file_or_array(tmp_path):
    seq = small_sequence()
    save_sequence(seq, tmp_path / "cine.mha")
    sector = np.zeros((4, 10, 12), np.uint8)
    sector[:, 1:9, 2:11] = 255  # nonzero inside, repeated on every frame
    save_sequence(EchoSequence(frames=sector, spacing=(0.25, 0.35)), tmp_path / "mask.nii.gz")
    loaded = load_sequence(tmp_path / "cine.mha", mask=tmp_path / "mask.nii.gz")
    assert loaded.mask.dtype == bool and loaded.mask.shape == (10, 12)
    assert loaded.mask.sum() == 8 * 9 and loaded.mask[1, 2] and not loaded.mask[0, 2]
    assert "mask:         60.0% of pixels inside" in loaded.describe()
    assert np.array_equal(loaded.subsequence([1, 3]).mask, loaded.mask)
    from_array = load_sequence(tmp_path / "cine.mha", mask=sector[0].astype(np.float32))
    assert np.array_equal(from_array.mask, loaded.mask)


@pytest.mark.parametrize("mask, message", [
    (np.zeros((4, 10, 12)), r"mask\.nii\.gz: mask is empty"),
    (np.ones((4, 5, 5)), r"mask\.nii\.gz: mask of shape \(5, 5\) .* is not an \(H, W\) = \(10, 12\) field of view"),
    (np.stack([np.eye(10, 12)] * 3 + [np.ones((10, 12))]), r"mask\.nii\.gz: the mask differs between frames "
                                                            r"\(frame 3 from frame 0\)"),
])
def test_bad_masks_name_the_mask_file(tmp_path, mask, message):
    save_sequence(small_sequence(), tmp_path / "cine.mha")
    save_sequence(EchoSequence(frames=mask, spacing=(1, 1)), tmp_path / "mask.nii.gz")
    with pytest.raises(EchoDataError, match=message):
        load_sequence(tmp_path / "cine.mha", mask=tmp_path / "mask.nii.gz")


def test_real_a4c_sector_mask(shared_data):
    folder = shared_data / "echo_a4c"
    seq = load_sequence(folder / "a4c_sequence.nii.gz", mask=folder / "a4c_sequence_sector_mask.nii.gz")
    assert seq.mask.shape == (480, 560) and int(seq.mask.sum()) == 75876  # the same on all 20 frames
