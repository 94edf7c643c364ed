"""DICOM ultrasound loader: the real sample files of ../shared/data/dicom_us and cines written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import (HTJ2KLossless, MPEG4HP41, UltrasoundMultiFrameImageStorage,
                         generate_uid)

from EchoRegistrationLib.io.dicom import is_dicom, read_dicom
from EchoRegistrationLib.sequence import EchoDataError

LUMA = np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------------------- writing test files
def region(x0: int, y0: int, x1: int, y1: int, *, delta_cm=(0.03, 0.05), units=3,
           spatial_format: int = 1, data_type: int = 1) -> Dataset:
    """One item of SequenceOfUltrasoundRegions."""
    item = Dataset()
    item.RegionSpatialFormat = spatial_format
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta_cm
    return item


def without(item: Dataset, keyword: str) -> Dataset:
    """``item`` with the attribute ``keyword`` removed."""
    delattr(item, keyword)
    return item


def write_us(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
             regions: list[Dataset] | None = None, **attributes) -> Path:
    """Write a US Multi-frame DICOM of (T, H, W) or (T, H, W, 3) pixels with the given attributes."""
    ds = Dataset()
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.Manufacturer = "EchoRegistration tests"
    ds.set_pixel_data(pixels, photometric, 8 * pixels.dtype.itemsize)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = regions
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def cine() -> np.ndarray:
    """(4, 6, 8) uint8 frames with distinct values."""
    return np.random.default_rng(7).integers(0, 256, size=(4, 6, 8), dtype=np.uint8)


# ---------------------------------------------------------------------------- real files
REAL_FILES = {
    # name: (frames, rows, columns, spacing mm or None, photometric)
    "palette-multiframe-jpeg-ls.dcm": (10, 430, 600, None, "PALETTE COLOR"),
    "OBXXXX1A_2frame.dcm": (2, 600, 800, 0.2622878766196998, "PALETTE COLOR"),
    "gdcm-US-ALOKA-16.dcm": (1, 480, 640, 0.3826530650258064, "PALETTE COLOR"),
    "US1_UNCR.dcm": (1, 480, 640, None, "RGB"),
    "ybr422-raw.dcm": (1, 555, 800, 0.061599999666213994, "YBR_FULL_422"),
    # region 0 is a whole-screen item with units 0; region 1 is the 2D tissue region in cm
    "ybrFull-RLE.dcm": (1, 480, 640, 0.09536785180637355, "YBR_FULL"),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # ybr422-raw.dcm has a malformed UID
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file_geometry(shared_data: Path, name: str) -> None:
    n_frames, rows, columns, spacing, photometric = REAL_FILES[name]
    path = shared_data / "dicom_us" / name
    assert is_dicom(path)
    seq = read_dicom(path)
    assert seq.frames.shape == (n_frames, rows, columns)
    assert seq.metadata["number_of_frames"] == n_frames
    assert seq.metadata["photometric_interpretation"] == photometric
    assert seq.metadata["modality"] == "US"
    assert seq.metadata["source"] == str(path)
    assert 200 <= seq.frames.max() <= 255 and seq.frames.min() >= 0
    if spacing is None:
        assert not seq.spacing_known and seq.spacing == (1.0, 1.0)
        assert "SequenceOfUltrasoundRegions" in seq.metadata["spacing_note"]
    else:
        assert seq.spacing_known
        assert seq.spacing == pytest.approx((spacing, spacing), rel=1e-12)
    if n_frames == 1:
        assert seq.frame_times.tolist() == [0.0] and seq.frame_times_known


def test_real_multiframe_times_and_colour(shared_data: Path) -> None:
    doppler = read_dicom(shared_data / "dicom_us" / "palette-multiframe-jpeg-ls.dcm")
    np.testing.assert_allclose(doppler.frame_times, np.arange(10) * 0.076, atol=1e-12)
    assert doppler.metadata["frame_times_source"] == "FrameTime (76 ms)"
    assert "JPEG-LS" in doppler.metadata["transfer_syntax"]
    assert 0.04 < doppler.metadata["colour_pixel_fraction"] < 0.10  # measured 0.0621
    philips = read_dicom(shared_data / "dicom_us" / "OBXXXX1A_2frame.dcm")
    assert not philips.frame_times_known
    assert "FrameTime" in philips.metadata["frame_times_note"]
    # the file's region runs to column 800 of an 800-column image: clipped to the last column
    assert philips.metadata["region_bounds"] == (120, 60, 799, 518)
    assert "clipped" in philips.metadata["region_note"]


def test_real_colour_conversion_matches_pixels(shared_data: Path) -> None:
    rgb_path = shared_data / "dicom_us" / "US1_UNCR.dcm"
    expected = pydicom.dcmread(rgb_path).pixel_array.astype(np.float64) @ LUMA
    np.testing.assert_allclose(read_dicom(rgb_path).frames[0], expected, atol=1e-3)
    # for YBR_FULL the luma of the RGB conversion is the stored Y channel, up to rounding
    ybr_path = shared_data / "dicom_us" / "ybrFull-RLE.dcm"
    luma_channel = pydicom.pixels.pixel_array(ybr_path, raw=True)[..., 0].astype(np.float64)
    assert np.abs(read_dicom(ybr_path).frames[0] - luma_channel).max() <= 1.5


def test_real_aloka_region_choice_and_crop(shared_data: Path) -> None:
    path = shared_data / "dicom_us" / "gdcm-US-ALOKA-16.dcm"
    full = read_dicom(path)
    assert full.metadata["region_count"] == 3
    # two equal B-mode regions side by side: the first is kept and the choice is reported
    assert full.metadata["region_bounds"] == (32, 24, 335, 415)
    assert "2 candidate 2D regions" in full.metadata["region_note"]
    crop = read_dicom(path, crop_to_region=True)
    assert crop.frames.shape == (1, 392, 304) and crop.metadata["cropped_to_region"]
    np.testing.assert_array_equal(crop.frames, full.frames[:, 24:416, 32:336])
    sx = 0.3826530650258064
    np.testing.assert_allclose(crop.origin, [32 * sx, 24 * sx, 0.0], atol=1e-9)
    # pixel (row 10, column 20) of the crop is pixel (34, 52) of the full frame, at the same place
    np.testing.assert_allclose(crop.ijk_to_lps() @ [20, 10, 0, 1], full.ijk_to_lps() @ [52, 34, 0, 1])


# ---------------------------------------------------------------------------- written files
def test_monochrome_cine_with_regions_and_time_vector(tmp_path: Path, cine: np.ndarray) -> None:
    path = write_us(tmp_path / "mono.dcm", cine, regions=[region(2, 1, 6, 4)],
                    FrameTimeVector=[0, 20, 25, 30], FrameIncrementPointer=Tag("FrameTimeVector"))
    seq = read_dicom(path)
    np.testing.assert_array_equal(seq.frames, cine.astype(np.float32))
    assert seq.spacing == pytest.approx((0.3, 0.5), rel=1e-12)  # x from PhysicalDeltaX, y from Y
    np.testing.assert_allclose(seq.frame_times, [0.0, 0.020, 0.045, 0.075], atol=1e-12)
    assert seq.metadata["frame_times_source"] == "FrameTimeVector (ms increments)"
    assert seq.metadata["region_bounds"] == (2, 1, 6, 4) and seq.metadata["region_count"] == 1
    assert seq.metadata["colour_pixel_fraction"] == 0.0
    assert seq.metadata["sop_class"].startswith("Ultrasound Multi-frame Image Storage")
    assert seq.origin.tolist() == [0.0, 0.0, 0.0] and np.array_equal(seq.direction, np.eye(3))

    crop = read_dicom(path, crop_to_region=True)
    np.testing.assert_array_equal(crop.frames, cine[:, 1:5, 2:7].astype(np.float32))
    np.testing.assert_allclose(crop.origin, [2 * 0.3, 1 * 0.5, 0.0], atol=1e-12)


def test_rgb_cine_luma_and_colour_fraction(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 5, 3), dtype=np.uint8)
    rgb[...] = np.arange(60, dtype=np.uint8).reshape(3, 4, 5, 1) * 4  # grey levels
    rgb[0, 0, 0] = (255, 0, 0)        # Doppler red: spread 255, counted
    rgb[1, 2, 3] = (0, 40, 200)       # blue: spread 200, counted
    rgb[2, 3, 4] = (100, 120, 110)    # faint tint: spread 20, not counted
    path = write_us(tmp_path / "rgb.dcm", rgb, "RGB", regions=[region(0, 0, 4, 3)], FrameTime=40)
    seq = read_dicom(path)
    np.testing.assert_allclose(seq.frames, rgb.astype(np.float64) @ LUMA, atol=1e-4)
    assert seq.frames[0, 0, 0] == pytest.approx(0.299 * 255, abs=1e-4)
    assert seq.metadata["colour_pixel_fraction"] == pytest.approx(2 / 60)
    assert "RGB converted to BT.601 luma" in seq.metadata["colour_note"]
    np.testing.assert_allclose(seq.frame_times, [0.0, 0.04, 0.08], atol=1e-12)


def test_palette_with_16_bit_entries_scaled_to_8_bit(tmp_path: Path) -> None:
    indices = np.arange(24, dtype=np.uint8).reshape(1, 4, 6) * 10
    entries = np.arange(256, dtype=np.uint16) * 257  # full-scale 16-bit red ramp
    zeros = np.zeros(256, dtype=np.uint16)
    path = write_us(tmp_path / "palette.dcm", indices, "PALETTE COLOR",
                    RedPaletteColorLookupTableDescriptor=[256, 0, 16],
                    GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
                    BluePaletteColorLookupTableDescriptor=[256, 0, 16],
                    RedPaletteColorLookupTableData=entries.tobytes(),
                    GreenPaletteColorLookupTableData=zeros.tobytes(),
                    BluePaletteColorLookupTableData=zeros.tobytes())
    seq = read_dicom(path)
    np.testing.assert_allclose(seq.frames, 0.299 * indices, atol=1e-3)
    # red index 10 has spread 10 (< 32): not coloured; index 40 and above are
    assert seq.metadata["colour_pixel_fraction"] == pytest.approx(np.count_nonzero(indices > 32) / 24)


def test_monochrome1_is_inverted(tmp_path: Path, cine: np.ndarray) -> None:
    seq = read_dicom(write_us(tmp_path / "m1.dcm", cine, "MONOCHROME1"))
    np.testing.assert_array_equal(seq.frames, 255.0 - cine)
    assert "inverted" in seq.metadata["intensity_note"]


def test_patient_geometry_and_crop_follow_the_direction(tmp_path: Path, cine: np.ndarray) -> None:
    row_axis, column_axis = [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]
    path = write_us(tmp_path / "oriented.dcm", cine, regions=[region(2, 1, 6, 4)],
                    ImagePositionPatient=[10.0, 20.0, 30.0],
                    ImageOrientationPatient=row_axis + column_axis)
    seq = read_dicom(path, crop_to_region=True)
    np.testing.assert_allclose(seq.direction, [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-12)
    # origin moved 2 columns (0.3 mm each) along the row axis and 1 row (0.5 mm) along the column axis
    np.testing.assert_allclose(seq.origin, [10.0, 20.6, 29.5], atol=1e-12)
    skewed = read_dicom(write_us(tmp_path / "skewed.dcm", cine, ImagePositionPatient=[1, 2, 3],
                                 ImageOrientationPatient=[1, 0, 0, 1, 0, 0]))
    assert skewed.origin.tolist() == [0, 0, 0] and "not orthonormal" in skewed.metadata["geometry_note"]


@pytest.mark.parametrize("regions, pixel_spacing, expected_spacing, expected_index, note", [
    # the largest of two tissue regions
    ([region(0, 0, 2, 2, delta_cm=(0.01, 0.01)), region(3, 0, 7, 5)], None, (0.3, 0.5), 1,
     "2 candidate 2D regions; region 1 (5 x 6 px) was used; their spacings (mm) differ: (0.1, 0.1), "
     "(0.3, 0.5)"),
    # a tissue region in cm is preferred to a larger one without physical units
    ([region(0, 0, 7, 5, units=0), region(3, 0, 7, 5)], None, (0.3, 0.5), 1, "2 candidate"),
    # only a colour-flow 2D region (data type 2): used, and said so
    ([region(1, 1, 7, 5, data_type=2), region(0, 0, 7, 5, spatial_format=3, data_type=4)], None,
     (0.3, 0.5), 0, "no 2D tissue region"),
    # units 0: no physical size, even though deltas are given
    ([region(0, 0, 7, 5, units=0)], None, None, 0, None),
    # units 0 and a plain PixelSpacing [row, column] in mm
    ([region(0, 0, 7, 5, units=0)], [0.2, 0.1], (0.1, 0.2), 0, None),
    # no 2D region at all
    ([region(0, 0, 7, 5, spatial_format=2)], None, None, None, None),
    # an item outside the 8 x 6 image and an item without PhysicalDeltaX are left out, and said so
    ([region(20, 20, 30, 30), without(region(0, 0, 7, 5), "PhysicalDeltaX"), region(1, 1, 7, 5)], None,
     (0.3, 0.5), 2, "region 0 ignored: bounds (20, 20, 30, 30) lie outside the 8 x 6 image; "
                    "region 1 ignored: it lacks PhysicalDeltaX"),
])
def test_region_choice(tmp_path: Path, cine: np.ndarray, regions, pixel_spacing, expected_spacing,
                       expected_index, note) -> None:
    extra = {} if pixel_spacing is None else {"PixelSpacing": pixel_spacing}
    seq = read_dicom(write_us(tmp_path / "r.dcm", cine, regions=regions, **extra))
    assert seq.metadata.get("region_index") == expected_index
    assert seq.metadata["region_count"] == len(regions)
    if expected_spacing is None:
        assert not seq.spacing_known and seq.spacing == (1.0, 1.0)
        assert "region" in seq.metadata["spacing_note"]
    else:
        assert seq.spacing_known and seq.spacing == pytest.approx(expected_spacing, rel=1e-12)
    if pixel_spacing is not None:
        assert seq.metadata["spacing_source"].startswith("PixelSpacing")
    if note is not None:
        assert note in seq.metadata["region_note"]


def test_crop_without_region_keeps_the_frame(tmp_path: Path, cine: np.ndarray) -> None:
    seq = read_dicom(write_us(tmp_path / "plain.dcm", cine), crop_to_region=True)
    assert seq.frames.shape == cine.shape and not seq.metadata["cropped_to_region"]
    assert "no 2D ultrasound region" in seq.metadata["crop_note"]


@pytest.mark.parametrize("attributes, expected_times, source, note", [
    ({"FrameTime": 40}, [0.0, 0.04, 0.08, 0.12], "FrameTime (40 ms)", None),
    ({"CineRate": 25}, [0.0, 0.04, 0.08, 0.12], "CineRate (25 frames/s)", None),
    ({"RecommendedDisplayFrameRate": 50}, [0.0, 0.02, 0.04, 0.06], "RecommendedDisplayFrameRate", None),
    # the pointer names FrameTime: it wins over a FrameTimeVector
    ({"FrameTime": 10, "FrameTimeVector": [0, 30, 30, 30], "FrameIncrementPointer": Tag("FrameTime")},
     [0.0, 0.01, 0.02, 0.03], "FrameTime (10 ms)", None),
    # without a pointer the vector comes first
    ({"FrameTime": 10, "FrameTimeVector": [0, 30, 30, 30]}, [0.0, 0.03, 0.06, 0.09], "FrameTimeVector", None),
    # the pointer names a vector the file lacks: said, and FrameTime is used
    ({"FrameTime": 10, "FrameIncrementPointer": Tag("FrameTimeVector")}, [0.0, 0.01, 0.02, 0.03],
     "FrameTime", "names FrameTimeVector, which the file lacks"),
    # a vector not starting at 0: the first frame is still at 0 s
    ({"FrameTimeVector": [5, 30, 30, 30]}, [0.0, 0.03, 0.06, 0.09], "FrameTimeVector", "starts with 5.0 ms"),
    # a zero FrameTime is skipped with a note
    ({"FrameTime": 0, "CineRate": 20}, [0.0, 0.05, 0.10, 0.15], "CineRate", "FrameTime 0.0 is not positive"),
])
def test_frame_time_sources(tmp_path: Path, cine: np.ndarray, attributes, expected_times, source,
                            note) -> None:
    seq = read_dicom(write_us(tmp_path / "t.dcm", cine, **attributes))
    np.testing.assert_allclose(seq.frame_times, expected_times, atol=1e-12)
    assert seq.metadata["frame_times_source"].startswith(source) and seq.frame_times_known
    if note is None:
        assert "frame_times_note" not in seq.metadata
    else:
        assert note in seq.metadata["frame_times_note"]


def test_no_timing_marks_times_unknown(tmp_path: Path, cine: np.ndarray) -> None:
    seq = read_dicom(write_us(tmp_path / "untimed.dcm", cine))
    assert not seq.frame_times_known and "no usable FrameTimeVector" in seq.metadata["frame_times_note"]


def test_file_without_preamble(tmp_path: Path, cine: np.ndarray) -> None:
    ds = pydicom.dcmread(write_us(tmp_path / "full.dcm", cine, FrameTime=33))
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    bare = tmp_path / "bare.dcm"
    ds.save_as(bare, implicit_vr=True, little_endian=True)
    assert bare.read_bytes()[128:132] != b"DICM" and is_dicom(bare)
    seq = read_dicom(bare)
    np.testing.assert_array_equal(seq.frames, cine.astype(np.float32))
    assert seq.metadata["transfer_syntax"].startswith("Implicit VR Little Endian")
    assert "inferred" in seq.metadata["transfer_syntax_note"]


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("vector, message", [
    ([0, 20, 20], "FrameTimeVector has 3 values for 4 frames"),
    ([0, 20, 0, 20], "FrameTimeVector value 2 is 0.0 ms"),
    ([0, 20, -5, 20], "FrameTimeVector value 2 is -5.0 ms"),
])
def test_bad_frame_time_vector(tmp_path: Path, cine: np.ndarray, vector, message) -> None:
    path = write_us(tmp_path / "badtimes.dcm", cine, FrameTimeVector=vector)
    with pytest.raises(EchoDataError, match=message) as err:
        read_dicom(path)
    assert str(err.value).startswith(str(path))


def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("this is a text file, not an image\n" * 10)
    assert not is_dicom(path)
    with pytest.raises(EchoDataError, match="not a DICOM file") as err:
        read_dicom(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("keep_bytes, message", [
    (100, "not a DICOM file"), (154, "unreadable DICOM file"), (300, "no pixel data"),
    (5000, "less than expected")])
def test_truncated_file(shared_data: Path, tmp_path: Path, keep_bytes: int, message: str) -> None:
    path = tmp_path / "truncated.dcm"
    path.write_bytes((shared_data / "dicom_us" / "US1_UNCR.dcm").read_bytes()[:keep_bytes])
    with pytest.raises(EchoDataError, match=message) as err:
        read_dicom(path)
    assert str(err.value).startswith(str(path))


def test_written_file_truncated(tmp_path: Path, cine: np.ndarray) -> None:
    path = write_us(tmp_path / "cut.dcm", cine)
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(EchoDataError, match=r"cut\.dcm: pixel data cannot be decoded"):
        read_dicom(path)


def test_unsupported_images(tmp_path: Path, cine: np.ndarray) -> None:
    no_pixels = tmp_path / "nopixels.dcm"
    ds = pydicom.dcmread(write_us(no_pixels, cine))
    del ds.PixelData
    ds.save_as(no_pixels, enforce_file_format=True)
    with pytest.raises(EchoDataError, match=r"nopixels\.dcm: no pixel data"):
        read_dicom(no_pixels)
    volume = write_us(tmp_path / "volume.dcm", cine, SOPClassUID="1.2.840.10008.5.1.4.1.1.6.2")
    with pytest.raises(EchoDataError, match=r"volume\.dcm: Enhanced US Volume"):
        read_dicom(volume)
    hsv = write_us(tmp_path / "hsv.dcm", cine, PhotometricInterpretation="HSV")
    with pytest.raises(EchoDataError, match=r"hsv\.dcm: photometric interpretation 'HSV'"):
        read_dicom(hsv)


def _encapsulated(path: Path, cine: np.ndarray, syntax: str) -> Path:
    ds = pydicom.dcmread(write_us(path, cine))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(16)] * cine.shape[0])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_missing_decoder_names_syntax_and_package(tmp_path: Path, cine: np.ndarray) -> None:
    if get_decoder(HTJ2KLossless).is_available:
        pytest.skip("an HTJ2K decoder is installed here, so the missing-decoder path cannot be shown")
    path = _encapsulated(tmp_path / "htj2k.dcm", cine, HTJ2KLossless)
    with pytest.raises(EchoDataError, match=r"htj2k\.dcm: .*High-Throughput JPEG 2000.*pylibjpeg-openjpeg"):
        read_dicom(path)


def test_undecodable_transfer_syntax(tmp_path: Path, cine: np.ndarray) -> None:
    video = _encapsulated(tmp_path / "video.dcm", cine, MPEG4HP41)
    with pytest.raises(EchoDataError, match=r"video\.dcm: pydicom has no pixel data decoder .*MPEG-4"):
        read_dicom(video)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_dicom(tmp_path / "absent.dcm")
