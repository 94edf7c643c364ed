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


def test_save_protects_user_data(tmp_path):
    path = save_sequence(small_sequence(), tmp_path / "cine.seq.nrrd")
    original = path.read_bytes()
    loaded = load_sequence(path)
    with pytest.raises(FileExistsError, match="already exists"):
        save_sequence(small_sequence(), tmp_path / "cine.seq.nrrd")
    with pytest.raises(FileExistsError, match="refusing to overwrite the file this sequence was read from"):
        save_sequence(loaded, path, overwrite=True)
    assert path.read_bytes() == original
    with pytest.raises(ValueError, match="cannot write this format"):
        save_sequence(loaded, tmp_path / "cine.png")
