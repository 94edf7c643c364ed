"""NIfTI / MetaImage / NRRD 2D+t through SimpleITK, and the real CAMUS and A4C files."""

import dataclasses
import os

import numpy as np
import pytest
import SimpleITK as sitk

from input_files import written_nifti

from EchoRegistrationLib import EchoDataError, EchoDataWarning, EchoSequence
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
    assert sorted(p.name for p in tmp_path.iterdir()) == (["cine.mha"] if suffix == ".mha"
                                                          else ["cine.mhd", "cine.raw"])


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
def test_unknown_frame_times_stay_unknown_through_a_file(tmp_path, suffix):
    """They were written as the frame indices in seconds (1 frame/s), and read back as known."""
    seq = dataclasses.replace(ramp_sequence(), frame_times=None)
    back = read_itk_image(write_itk_image(seq, tmp_path / f"cine{suffix}"))
    assert not back.frame_times_known and np.array_equal(back.frames, seq.frames)


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


def test_frame_rate_over_frame_times_is_refused(tmp_path):
    """A MetaImage's FrameTimes are the file's own times: another rate over them was taken silently."""
    path = write_itk_image(ramp_sequence(), tmp_path / "cine.mha")  # 25 frames/s
    with pytest.raises(EchoDataError, match=r"cine\.mha: frame rate 60 frames/s given .*records its frame times "
                                            r"\(FrameTimes header field\): 25 frames/s"):
        read_itk_image(path, frame_rate=60.0)
    same = read_itk_image(path, frame_rate=25.0)
    assert same.frame_times == pytest.approx(0.1 + np.arange(5) * 0.04)  # the file's, from 0.1 s
    assert same.metadata["frame_times_source"] == "FrameTimes header field"
    nifti = read_itk_image(write_itk_image(ramp_sequence(), tmp_path / "cine.nii.gz"), frame_rate=60.0)
    assert nifti.metadata["frame_times_source"] == "frame_rate argument (60 frames/s)"  # NIfTI records none


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


@pytest.mark.parametrize("name", ["x.seq.nrrd", "x.mhd"])
def test_a_failed_temporary_file_is_reported_under_the_name_asked_for(tmp_path, monkeypatch, name):
    """mkstemp names its file absolutely, mkdtemp relatively to a relative folder ("./.x.mhd.k2"):
    either way the error names the output the user gave, here a relative one."""
    import errno
    import tempfile

    from EchoRegistrationLib.io.atomic import atomic_output, atomic_output_dir

    def refused(*args, prefix="", dir=".", **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, f"{prefix}k2"))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: refused(*a, **{**k, "dir": os.path.abspath(k["dir"])}))
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refused)
    with pytest.raises(PermissionError) as caught:
        with (atomic_output_dir if name.endswith(".mhd") else atomic_output)(name):
            pass
    assert (caught.value.filename, caught.value.strerror) == (name, "Permission denied")


# ---------------------------------------------------------------------------- layouts and declared values (issue 13)
def _image(frames: np.ndarray, spacing=(0.3, 0.4)) -> sitk.Image:
    """A (X, Y, T) float32 image of (T, H, W) ``frames``."""
    image = sitk.GetImageFromArray(frames.astype(np.float32))
    image.SetSpacing((*spacing, 0.02))
    return image


@pytest.mark.parametrize("name, size", [
    ("cine.nii.gz", (9, 7, 1, 5)),  # the layout: singleton third axis, time fourth
    ("cine.mha", (9, 7, 1, 5)),
    ("cine.nrrd", (9, 7, 5, 1)),    # time third, a trailing singleton
])
def test_4d_layouts_with_a_singleton_axis_load(tmp_path, name, size):
    frames = ramp_sequence().frames % 200  # (5, 7, 9), integer values: a cine and a label map
    image = sitk.GetImageFromArray(frames.reshape(size[::-1]), isVector=False)
    image.SetSpacing((0.31, 0.47, 1.0, 0.04))
    sitk.WriteImage(image, str(tmp_path / name))
    seq = read_itk_image(tmp_path / name, frame_rate=25.0)
    assert np.array_equal(seq.frames, frames)
    assert seq.spacing == pytest.approx((0.31, 0.47)) and seq.frame_times == pytest.approx(np.arange(5) * 0.04)
    labels = read_itk_labels(tmp_path / name)  # the same layouts for label maps
    assert labels.shape == (5, 7, 9) and np.array_equal(labels, frames.astype(np.uint8))


def test_two_axes_beyond_the_plane_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 2, 7, 9), np.float32), isVector=False),
                    str(tmp_path / "vol.nii"))
    with pytest.raises(EchoDataError, match=r"vol\.nii: image of size \(9, 7, 2, 3\) has 2 axes beyond"):
        read_itk_image(tmp_path / "vol.nii")


@pytest.mark.parametrize("pixdim", [(0.0, 0.3), (0.3, 0.0), (0.0, 0.0)])
def test_zero_nifti_pixel_size_is_unknown_spacing(tmp_path, pixdim):
    path = written_nifti(tmp_path / "zero.nii", ramp_sequence().frames, pixdim)
    assert sitk.ReadImage(str(path)).GetSpacing()[:2] != pixdim  # ITK alone would invent 1 mm
    text = rf"\({pixdim[0]:g}, {pixdim[1]:g}\) mm \(pixdim\)"
    with pytest.warns(EchoDataWarning, match=rf"zero\.nii: the file declares pixel size {text}; a zero size"):
        seq = read_itk_image(path)
    assert not seq.spacing_known and seq.spacing == (1.0, 1.0)
    assert seq.metadata["spacing_source"] == "none" and "zero size" in seq.metadata["warnings"][0]


@pytest.mark.parametrize("pixdim, spacing", [((-0.3, 0.3), (0.3, 0.3)), ((0.25, -0.5), (0.25, 0.5))])
def test_negative_nifti_pixel_size_is_flagged(tmp_path, pixdim, spacing):
    path = written_nifti(tmp_path / "neg.nii", ramp_sequence().frames, pixdim)
    text = rf"\({pixdim[0]:g}, {pixdim[1]:g}\) mm \(pixdim\)"
    with pytest.warns(EchoDataWarning,
                      match=rf"neg\.nii: the file declares a negative pixel size {text}; its magnitude"):
        seq = read_itk_image(path)
    assert seq.spacing_known and seq.spacing == pytest.approx(spacing, rel=1e-6)


def test_negative_metaimage_spacing_is_flagged(tmp_path):
    sitk.WriteImage(_image(ramp_sequence().frames), str(tmp_path / "neg.mha"))
    raw = (tmp_path / "neg.mha").read_bytes()
    (tmp_path / "neg.mha").write_bytes(raw.replace(b"ElementSpacing = 0.29999999999999999",
                                                   b"ElementSpacing = -0.29999999999999999", 1))
    with pytest.warns(EchoDataWarning, match=r"negative pixel size \(-0\.3, 0\.4\) mm \(ElementSpacing\)"):
        seq = read_itk_image(tmp_path / "neg.mha")
    assert seq.spacing == pytest.approx((0.3, 0.4))


def test_zero_metaimage_spacing_is_refused(tmp_path):
    sitk.WriteImage(_image(ramp_sequence().frames), str(tmp_path / "zero.mha"))
    raw = (tmp_path / "zero.mha").read_bytes()
    (tmp_path / "zero.mha").write_bytes(raw.replace(b"ElementSpacing = 0.29999999999999999", b"ElementSpacing = 0", 1))
    with pytest.raises(EchoDataError, match=r"zero\.mha: cannot be read as an image .*spacing.*\[0, 0\.4"):
        read_itk_image(tmp_path / "zero.mha")


@pytest.mark.parametrize("name, dtype, value", [
    ("nan.nii.gz", np.float32, np.nan),  # ITK's NIfTI reader alone turns it into 0
    ("inf.nii", np.float64, -np.inf),
    ("nan.mha", np.float32, np.nan),
])
def test_nan_or_infinite_pixels_are_refused(tmp_path, name, dtype, value):
    frames = ramp_sequence().frames.astype(dtype)
    frames[2, 3, 4] = value
    frames[4, 0, 0] = value
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(tmp_path / name))
    with pytest.raises(EchoDataError, match=rf"{name}: 2 pixel values are NaN or infinite \(the first at "
                                            r"frame 2, row 3, column 4\); intensities are never guessed"):
        read_itk_image(tmp_path / name)


@pytest.mark.parametrize("spacing, frame_rate, message", [
    ((1e7, 1e7), 25.0, r"pixel spacing \(10000000.0, 10000000.0\) mm is outside the plausible range 0.001..10 mm"),
    ((0.0003, 0.0003), 25.0, r"pixel spacing \(0.0003, 0.0003\) mm is outside"),  # metres taken for mm
    ((0.3, 0.3), 1e12, r"frame interval 1e-12 s \(1e\+12 frames/s\) between frames 0 and 1 is outside the "
                       r"plausible range 1e-05..10 s \(100000..0.1 frames/s\)"),
    ((0.3, 0.3), 0.05, r"frame interval 20 s \(0.05 frames/s\)"),
])
def test_implausible_spacing_or_frame_rate_is_refused(tmp_path, spacing, frame_rate, message):
    image = sitk.GetImageFromArray(ramp_sequence().frames)
    image.SetSpacing((*spacing, 1.0))
    sitk.WriteImage(image, str(tmp_path / "odd.mha"))
    with pytest.raises(EchoDataError, match=rf"odd\.mha: {message}"):
        read_itk_image(tmp_path / "odd.mha", frame_rate=frame_rate)


def test_nifti_header_as_written(tmp_path):
    from EchoRegistrationLib.io.nifti import read_nifti

    image = sitk.GetImageFromArray(np.zeros((5, 7, 9), np.int16))
    image.SetSpacing((0.31, 0.47, 0.04))
    sitk.WriteImage(image, str(tmp_path / "codes.nii.gz"))
    header, voxels = read_nifti(tmp_path / "codes.nii.gz")
    assert header.shape == (9, 7, 5) and header.datatype == 4 and voxels is None  # int16: no NaN possible
    assert header.pixdim == pytest.approx((0.31, 0.47, 0.04)) and header.byte_order == "<"
    write_itk_image(ramp_sequence(), tmp_path / "cine.mha")
    assert read_nifti(tmp_path / "cine.mha") is None
    (tmp_path / "cut.nii.gz").write_bytes((tmp_path / "codes.nii.gz").read_bytes()[:40])
    with pytest.raises(EchoDataError, match=r"cut\.nii\.gz: is truncated \(Compressed file ended"):
        read_nifti(tmp_path / "cut.nii.gz")
