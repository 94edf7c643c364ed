"""NIfTI / MetaImage / NRRD 2D+t through SimpleITK, and the real CAMUS and A4C files."""

import numpy as np
import pytest
import SimpleITK as sitk

from EchoRegistrationLib import EchoDataError, EchoSequence
from EchoRegistrationLib.io.itk import read_itk_image, read_itk_labels, write_itk_image


def ramp_sequence(n=5, h=7, w=9):
    frames = np.arange(n * h * w, dtype=np.float32).reshape(n, h, w)
    return EchoSequence(frames=frames, spacing=(0.31, 0.47), frame_times=0.1 + np.arange(n) * 0.04,
                        origin=[3.0, -4.0, 0.0], metadata={"source": "ramp"})


@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
def test_metaimage_round_trip_keeps_exact_times(tmp_path, suffix):
    seq = ramp_sequence()
    seq.frame_times[2] += 0.003  # non-uniform
    seq = EchoSequence(frames=seq.frames, spacing=seq.spacing, frame_times=seq.frame_times, origin=seq.origin)
    path = write_itk_image(seq, tmp_path / f"cine{suffix}")
    back = read_itk_image(path)
    assert np.array_equal(back.frames, seq.frames)
    assert back.spacing == pytest.approx(seq.spacing)
    assert back.frame_times == pytest.approx(seq.frame_times)
    assert back.origin == pytest.approx(seq.origin)
    assert back.frame_times_known
    assert sorted(p.name for p in tmp_path.iterdir()) == (["cine.mha"] if suffix == ".mha" else ["cine.mhd", "cine.raw"])


def test_nifti_time_is_third_axis_and_times_need_a_frame_rate(tmp_path):
    seq = ramp_sequence()
    path = write_itk_image(seq, tmp_path / "cine.nii.gz")
    image = sitk.ReadImage(str(path))
    assert image.GetSize() == (9, 7, 5)  # x = columns, y = rows, third = time
    assert image.GetSpacing()[2] == pytest.approx(0.04)  # mean frame interval, informative only
    assert image.GetPixel(8, 0, 1) == seq.frames[1, 0, 8]
    back = read_itk_image(path)
    assert np.array_equal(back.frames, seq.frames) and not back.frame_times_known
    timed = read_itk_image(path, frame_rate=25.0)
    assert timed.frame_times == pytest.approx(np.arange(5) * 0.04) and timed.frame_times_known


def test_single_2d_image_is_one_frame(tmp_path):
    image = sitk.GetImageFromArray(np.eye(4, 6, dtype=np.float32))
    image.SetSpacing((0.2, 0.3))
    sitk.WriteImage(image, str(tmp_path / "frame.nii"))
    seq = read_itk_image(tmp_path / "frame.nii")
    assert seq.frames.shape == (1, 4, 6) and seq.spacing == pytest.approx((0.2, 0.3))
    with pytest.raises(EchoDataError, match="need at least 2 frames"):
        seq.require_frames(2)


def test_rgb_image_becomes_luma(tmp_path):
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 50, 200
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "rgb.mha"))
    seq = read_itk_image(tmp_path / "rgb.mha")
    assert seq.frames[1, 2, 3] == pytest.approx(0.299 * 100 + 0.587 * 50 + 0.114 * 200, abs=1e-4)


def test_write_refuses_to_overwrite_and_keeps_old_file(tmp_path):
    path = tmp_path / "cine.nii.gz"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="cine.nii.gz"):
        write_itk_image(ramp_sequence(), path)
    assert path.read_bytes() == b"user data"
    write_itk_image(ramp_sequence(), path, overwrite=True)
    assert read_itk_image(path).n_frames == 5
    assert [p.name for p in tmp_path.iterdir()] == ["cine.nii.gz"]  # no temporary left behind


def test_unreadable_and_bad_label_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really")
    with pytest.raises(EchoDataError, match="broken.nii.gz: cannot be read"):
        read_itk_image(bad)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 3), 0.5, np.float32)), str(tmp_path / "gt.nii"))
    with pytest.raises(EchoDataError, match="gt.nii: label map holds non-integer values"):
        read_itk_labels(tmp_path / "gt.nii")


def test_real_camus_half_sequence(shared_data):
    seq = read_itk_image(shared_data / "camus" / "patient0500_2CH_half_sequence.nii.gz")
    assert seq.frames.shape == (15, 422, 512)
    assert seq.spacing == pytest.approx((0.308, 0.308))
    assert 0 <= seq.frames.min() and seq.frames.max() <= 255
    assert not seq.frame_times_known  # a bare NIfTI has no frame rate


def test_real_a4c_cine_and_sector_mask(shared_data):
    seq = read_itk_image(shared_data / "echo_a4c" / "a4c_sequence.nii.gz", frame_rate=30)
    mask = read_itk_labels(shared_data / "echo_a4c" / "a4c_sequence_sector_mask.nii.gz")
    assert seq.frames.shape == (20, 480, 560) and mask.shape == seq.frames.shape
    assert set(np.unique(mask)) == {0, 1}
    # the sector holds the echo: brighter inside than outside on average
    assert seq.frames[mask == 1].mean() > seq.frames[mask == 0].mean()


def test_atomic_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    from EchoRegistrationLib.io.atomic import NEW_FILE_MODE
    path = write_itk_image(ramp_sequence(), tmp_path / "cine.mha")
    assert os.stat(path).st_mode & 0o777 == NEW_FILE_MODE  # not mkstemp's 0600
    os.chmod(path, 0o640)
    write_itk_image(ramp_sequence(), path, overwrite=True)
    assert os.stat(path).st_mode & 0o777 == 0o640  # a replaced file keeps its mode
