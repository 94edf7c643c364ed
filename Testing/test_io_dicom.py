"""DICOM ultrasound loader: the real sample files of ../shared/data/dicom_us and cines written here."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import MPEG4HP41, HTJ2KLossless, RLELossless

from input_files import region, write_compressed_us, write_us, write_ybr_full_422

from EchoRegistrationLib.io.dicom import is_dicom, read_dicom
from EchoRegistrationLib.io.dispatch import load_sequence
from EchoRegistrationLib.sequence import EchoDataError, EchoDataWarning

LUMA = np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------------------- writing test files
def without(item: Dataset, keyword: str) -> Dataset:
    """``item`` with the attribute ``keyword`` removed."""
    delattr(item, keyword)
    return item


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


@pytest.mark.filterwarnings("ignore:.*DICOM header. Invalid value for VR UI")  # ybr422-raw.dcm: checked below
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
    header_problems = [w for w in seq.metadata.get("warnings", []) if w.startswith("DICOM header")]
    malformed = "DICOM header: Invalid value for VR UI: '1.4.13.3.1.0.19.544194620.9411.768994.0104484' (read anyway)"
    assert header_problems == ([malformed] if name == "ybr422-raw.dcm" else [])
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


def test_frame_rate_times_a_file_without_timing(tmp_path: Path, cine: np.ndarray) -> None:
    """A DICOM without timing attributes takes the caller's frame rate (--frame-rate, a batch CSV's
    frame_rate), through load_sequence too, and says where its times came from."""
    path = write_us(tmp_path / "untimed.dcm", cine)
    seq = load_sequence(path, frame_rate=30)
    np.testing.assert_allclose(seq.frame_times, np.arange(4) / 30, rtol=1e-12)
    assert seq.frame_times_known and seq.metadata["frame_times_source"] == "frame_rate argument (30 frames/s)"
    note = seq.metadata["frame_times_note"]
    assert "no usable FrameTimeVector" in note and "frame times from the frame_rate argument (30 frames/s)" in note
    with pytest.raises(EchoDataError, match=r"untimed\.dcm: frame_rate must be a positive number"):
        read_dicom(path, frame_rate=0.0)


@pytest.mark.parametrize("attributes, recorded, agreeing", [
    ({"FrameTime": 20}, r" \(FrameTime \(20 ms\)\): 50 frames/s", 50.0),
    ({"FrameTimeVector": [0, 30, 30, 30]}, r" \(FrameTimeVector \(ms increments\)\): 33\.33 frames/s", 33.33),
    ({"CineRate": 25}, r": CineRate \(25 frames/s\)", 25.0),  # the rate named once
])
def test_frame_rate_contradicting_the_file_times_is_refused(tmp_path: Path, cine: np.ndarray, attributes,
                                                            recorded, agreeing) -> None:
    """The times the file records win: another rate is refused, naming the file's; the same rate (as
    the message prints it) changes nothing."""
    path = write_us(tmp_path / "timed.dcm", cine, **attributes)
    with pytest.raises(EchoDataError, match=rf"timed\.dcm: frame rate 60 frames/s given .* records its frame "
                                            rf"times{recorded}; .* leave it out"):
        read_dicom(path, frame_rate=60.0)
    kept = read_dicom(path, frame_rate=agreeing)
    np.testing.assert_allclose(kept.frame_times, read_dicom(path).frame_times, rtol=1e-12)
    assert f"agrees with the {kept.metadata['frame_times_source']}; the file's times are kept" in \
        kept.metadata["frame_times_note"]


def test_frame_rate_replaces_a_display_rate_with_a_warning(tmp_path: Path, cine: np.ndarray) -> None:
    """RecommendedDisplayFrameRate alone is the rate to play the cine at: a given frame rate replaces it,
    with a warning naming both (it would be refused over acquisition timing such as CineRate)."""
    path = write_us(tmp_path / "display.dcm", cine, RecommendedDisplayFrameRate=30)
    np.testing.assert_allclose(np.diff(read_dicom(path).frame_times), 1 / 30)
    with pytest.warns(EchoDataWarning, match=r"display\.dcm: frame times from the frame_rate argument \(25 "
                                             r"frames/s\), not from the RecommendedDisplayFrameRate \(30 frames/s, "
                                             r"a playback rate\)$"):
        seq = read_dicom(path, frame_rate=25.0)
    np.testing.assert_allclose(np.diff(seq.frame_times), 1 / 25)
    assert seq.metadata["frame_times_source"] == "frame_rate argument (25 frames/s)"


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
    (5000, r"pixel data \(3872 bytes, 921600 per frame\) hold no whole frame of 480 x 640 pixels")])
def test_truncated_file(shared_data: Path, tmp_path: Path, keep_bytes: int, message: str) -> None:
    path = tmp_path / "truncated.dcm"
    path.write_bytes((shared_data / "dicom_us" / "US1_UNCR.dcm").read_bytes()[:keep_bytes])
    with pytest.raises(EchoDataError, match=message) as err:
        read_dicom(path)
    assert str(err.value).startswith(str(path))


def test_written_file_truncated_gives_the_whole_frames_left(tmp_path: Path, cine: np.ndarray) -> None:
    path = write_us(tmp_path / "cut.dcm", cine)  # 4 frames of 6 x 8 bytes: 192 bytes
    path.write_bytes(path.read_bytes()[:-50])  # 142 bytes left: 2 whole frames and 46 bytes
    with pytest.warns(EchoDataWarning, match=r"cut\.dcm: NumberOfFrames is 4 but the pixel data \(142 bytes, "
                                             r"48 per frame\) hold 2 frames"):
        seq = read_dicom(path)
    np.testing.assert_array_equal(seq.frames, cine[:2].astype(np.float32))
    assert seq.metadata["number_of_frames"] == 2 and "hold 2 frames" in seq.metadata["warnings"][0]


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


# ---------------------------------------------------------------------------- frames and geometry (issue 13)
@pytest.mark.parametrize("held, declared, offsets", [
    (10, 12, True),   # the example: RLE declaring 12 frames, holding 10
    (10, 12, False),  # the same without a Basic Offset Table
    (10, 8, True),    # more frames than declared
    (5, 3, False),
])
def test_rle_number_of_frames_disagreeing_with_the_data(tmp_path: Path, held: int, declared: int,
                                                         offsets: bool) -> None:
    cine = np.random.default_rng(held).integers(0, 256, size=(held, 16, 20), dtype=np.uint8)
    path = write_compressed_us(tmp_path / "rle.dcm", cine, RLELossless, declared, offsets=offsets, FrameTime=20)
    with pytest.warns(EchoDataWarning, match=rf"rle\.dcm: NumberOfFrames is {declared} but the pixel data "
                                             rf"\({held} fragments\) hold {held} frames: the {held} frames"):
        seq = read_dicom(path)
    np.testing.assert_array_equal(seq.frames, cine.astype(np.float32))  # nothing invented
    np.testing.assert_allclose(seq.frame_times, np.arange(held) * 0.020, atol=1e-12)
    assert seq.metadata["number_of_frames"] == held and len(seq.metadata["warnings"]) == 1


@pytest.mark.parametrize("declared, fragments_per_frame, has_bot", [
    (12, 1, True), (8, 1, False),  # fewer / more frames than declared
    (10, 2, False),  # each frame split in 2 fragments without offsets: 10 frames by their JPEG end markers
])
def test_jpeg_ls_number_of_frames_checked(shared_data: Path, tmp_path: Path, declared: int,
                                          fragments_per_frame: int, has_bot: bool) -> None:
    real = shared_data / "dicom_us" / "palette-multiframe-jpeg-ls.dcm"  # 10 frames
    expected = read_dicom(real).frames
    ds = pydicom.dcmread(real)
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=10))
    ds.PixelData = encapsulate(frames, fragments_per_frame=fragments_per_frame, has_bot=has_bot)
    ds.NumberOfFrames = declared
    ds.save_as(tmp_path / "jls.dcm")
    if declared == 10:
        seq = read_dicom(tmp_path / "jls.dcm")
        assert "warnings" not in seq.metadata
    else:
        with pytest.warns(EchoDataWarning, match=f"NumberOfFrames is {declared} but .* hold 10 frames"):
            seq = read_dicom(tmp_path / "jls.dcm")
    np.testing.assert_array_equal(seq.frames, expected)


def test_native_frames_beyond_number_of_frames(tmp_path: Path, cine: np.ndarray) -> None:
    ds = pydicom.dcmread(write_us(tmp_path / "extra.dcm", cine))
    ds.NumberOfFrames = 2
    ds.save_as(tmp_path / "extra.dcm")
    with pytest.warns(EchoDataWarning, match=r"NumberOfFrames is 2 but the pixel data \(192 bytes, 48 per "
                                             r"frame\) hold 4 frames"):
        seq = read_dicom(tmp_path / "extra.dcm")
    np.testing.assert_array_equal(seq.frames, cine.astype(np.float32))


@pytest.mark.parametrize("n_frames, rows, columns, declared", [(4, 48, 64, 4), (3, 10, 6, 5)])
def test_native_multiframe_ybr_full_422(tmp_path: Path, n_frames: int, rows: int, columns: int,
                                        declared: int) -> None:
    ybr = np.random.default_rng(rows).integers(0, 256, size=(n_frames, rows, columns, 3), dtype=np.uint8)
    ybr[..., 1:] = 128  # neutral chroma: gray pixels, luma = Y exactly
    path = write_ybr_full_422(tmp_path / "ybr422.dcm", ybr, declared)
    assert len(pydicom.dcmread(path).PixelData) == n_frames * rows * columns * 2  # 24,576 bytes in the issue
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seq = read_dicom(tmp_path / "ybr422.dcm")
    assert seq.frames.shape == (n_frames, rows, columns)
    np.testing.assert_allclose(seq.frames, ybr[..., 0], atol=1.0)  # YBR -> RGB -> luma rounding
    expected = [] if declared == n_frames else [
        f"NumberOfFrames is {declared} but the pixel data ({2 * rows * columns * n_frames} bytes, "
        f"{2 * rows * columns} per frame) hold {n_frames} frames: the {n_frames} frames that exist were read"]
    assert seq.metadata.get("warnings", []) == expected
    assert [str(w.message) for w in caught] == [f"{tmp_path / 'ybr422.dcm'}: {text}" for text in expected]


@pytest.mark.parametrize("deltas, spacing", [
    ((-0.03, 0.03), (0.3, 0.3)),   # the example
    ((0.02, -0.05), (0.2, 0.5)),
])
def test_signed_physical_deltas_give_their_magnitude(tmp_path: Path, cine: np.ndarray, deltas, spacing) -> None:
    seq = read_dicom(write_us(tmp_path / "signed.dcm", cine, regions=[region(0, 0, 7, 5, delta_cm=deltas)]))
    assert seq.spacing_known and seq.spacing == pytest.approx(spacing, rel=1e-12)
    assert "the pixel size is the magnitude" in seq.metadata["region_note"]


def test_zero_physical_delta_is_no_spacing(tmp_path: Path, cine: np.ndarray) -> None:
    seq = read_dicom(write_us(tmp_path / "zero.dcm", cine, regions=[region(0, 0, 7, 5, delta_cm=(0.0, 0.03))]))
    assert not seq.spacing_known and "nonzero deltas" in seq.metadata["spacing_note"]


@pytest.mark.parametrize("rows, columns, frames", [(65535, 65535, 100000), (4000, 4000, 2)])
def test_header_declaring_a_huge_image_is_refused(tmp_path: Path, cine: np.ndarray, rows, columns, frames) -> None:
    ds = pydicom.dcmread(write_us(tmp_path / "huge.dcm", cine))
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.save_as(tmp_path / "huge.dcm")
    with pytest.raises(EchoDataError, match=rf"huge\.dcm: the pixel data \(192 bytes, {rows * columns} per "
                                            rf"frame\) hold no whole frame of {rows} x {columns} pixels"):
        read_dicom(tmp_path / "huge.dcm")


def test_too_many_pixels_are_refused_before_decoding(tmp_path: Path, monkeypatch, cine: np.ndarray) -> None:
    monkeypatch.setattr("EchoRegistrationLib.io.dicom.MAX_PIXELS", 100)  # below 4 x 6 x 8
    with pytest.raises(EchoDataError, match=r"big\.dcm: 4 frames of 6 x 8 pixels exceed 100 pixels"):
        read_dicom(write_us(tmp_path / "big.dcm", cine))


@pytest.mark.parametrize("attributes, message", [
    ({"FrameTime": 1e-9}, r"frame interval 1e-12 s \(1e\+12 frames/s\) between frames 0 and 1"),
    ({"CineRate": 200000}, r"\(200000 frames/s\)"),
    ({"regions": [region(0, 0, 7, 5, delta_cm=(1e6, 1e6))]}, r"pixel spacing \(10000000.0, 10000000.0\) mm"),
    ({"PixelSpacing": [1e-5, 1e-5]}, r"pixel spacing \(1e-05, 1e-05\) mm is outside"),
])
def test_implausible_geometry_is_refused(tmp_path: Path, cine: np.ndarray, attributes, message) -> None:
    path = write_us(tmp_path / "odd.dcm", cine, **attributes)
    with pytest.raises(EchoDataError, match=message) as err:
        read_dicom(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("pixel_spacing, spacing, warning", [
    ([-0.2, 0.1], (0.1, 0.2), r"PixelSpacing \[-0.2, 0.1\] is negative: its magnitude is used"),
    ([0.0, 0.1], None, r"PixelSpacing \[0.0, 0.1\] is not two nonzero sizes and was ignored"),
])
def test_pixel_spacing_that_is_not_positive_is_flagged(tmp_path: Path, cine: np.ndarray, pixel_spacing,
                                                       spacing, warning) -> None:
    path = write_us(tmp_path / "ps.dcm", cine, PixelSpacing=pixel_spacing)
    with pytest.warns(EchoDataWarning, match=rf"ps\.dcm: {warning}"):
        seq = read_dicom(path)
    if spacing is None:
        assert not seq.spacing_known and "no usable PixelSpacing" in seq.metadata["spacing_note"]
    else:
        assert seq.spacing_known and seq.spacing == pytest.approx(spacing, rel=1e-12)
