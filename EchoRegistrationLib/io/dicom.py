"""DICOM ultrasound cine loops (single- and multi-frame) as :class:`EchoSequence`.

What is read, and from where:

* Pixel spacing from the *Sequence of Ultrasound Regions*: the 2D tissue region (spatial format 1,
  data type 1; the largest when there are several) whose physical units are centimetres (code 3) gives
  ``|PhysicalDeltaX/Y|`` x 10 mm (the deltas are signed: the sign is the direction of the physical
  axis, the magnitude the pixel size; a negative one is noted in ``region_note``). Without such a
  region a plain ``PixelSpacing`` / ``ImagerPixelSpacing`` (mm) is used (a negative one as its
  magnitude, a zero one not at all, each with a warning); without either the spacing is a (1, 1)
  placeholder with ``spacing_known=False``.
* Frames: the frames the pixel data hold. When ``NumberOfFrames`` disagrees with them (in either
  direction) the frames that exist are read and an :class:`EchoDataWarning` says so (also in
  ``metadata["warnings"]``); no frame is ever invented. A file without one whole frame, or whose
  frames would exceed :data:`MAX_PIXELS`, is refused before any large allocation.
* Frame times (s) from ``FrameTimeVector`` (ms between frames), ``FrameTime`` (ms), ``CineRate`` or
  ``RecommendedDisplayFrameRate`` (frames/s), following ``FrameIncrementPointer`` when it names one; for
  a file without any, from the caller's ``frame_rate`` (:mod:`.timing`: refused where it contradicts
  the file's, replacing a display rate with a warning).
* Intensities: monochrome images keep their stored values (MONOCHROME1 is inverted so that bright means
  strong echo); colour images (RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR) become ITU-R BT.601 luma on a
  0..255 scale, and the fraction of clearly coloured pixels (Doppler, coloured annotations, tinted grey
  maps) is measured into ``metadata["colour_pixel_fraction"]`` because their luma is not an echo intensity.
* Geometry: ``ImagePositionPatient`` / ``ImageOrientationPatient`` when present and orthonormal (rare in
  ultrasound), otherwise origin (0, 0, 0) and identity direction.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames, parse_basic_offsets, parse_fragments
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder
from pydicom.tag import Tag
from pydicom.uid import (UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         RLELossless)

from ..sequence import EchoDataError, EchoSequence, record_warning
from .colour import coloured_pixel_count, rgb_to_luma
from .timing import checked_frame_rate, given_frame_rate

DICOM_MAGIC = b"DICM"
MAGIC_OFFSET = 128
#: First group numbers of a DICOM dataset written without the 128-byte preamble and "DICM".
BARE_DATASET_GROUPS = (0x0002, 0x0008)

REGION_SPATIAL_2D = 1
REGION_DATA_TISSUE = 1
UNITS_CM = 3
MM_PER_CM = 10.0

#: A pixel is "clearly coloured" when max(R, G, B) - min(R, G, B) exceeds this (0..255 scale).
COLOUR_SPREAD_THRESHOLD = 32.0

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR")
US_VOLUME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.6.2"  # Enhanced US Volume Storage (3D, not a cine)
#: Most pixels (frames x rows x columns) read from one file: 2**30 pixels are 4 GiB as float32, five
#: times a 300-frame 1024 x 768 cine; a header asking for more is corrupt, not an echo loop.
MAX_PIXELS = 2 ** 30


# ---------------------------------------------------------------------------- file recognition
def _has_magic(head: bytes) -> bool:
    return head[MAGIC_OFFSET:MAGIC_OFFSET + 4] == DICOM_MAGIC


def _looks_like_bare_dataset(head: bytes) -> bool:
    """True when the file starts like a preamble-less little-endian dataset (group 0002 or 0008)."""
    return len(head) >= 8 and int.from_bytes(head[:2], "little") in BARE_DATASET_GROUPS


def is_dicom(path: str | os.PathLike) -> bool:
    """True when ``path`` holds DICOM: "DICM" at byte 128, or a preamble-less dataset that pydicom
    parses and that has a SOP Class UID or an image size.

    Raises:
        OSError: the file cannot be opened (for example it does not exist).
    """
    with open(path, "rb") as f:
        head = f.read(MAGIC_OFFSET + 4)
    if _has_magic(head):
        return True
    if not _looks_like_bare_dataset(head):
        return False
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - any parse failure means "not DICOM" for a content sniffer
        return False
    return "SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds)


def _read_dataset(path: Path) -> tuple[Dataset, dict[str, Any], list[str]]:
    """Parse the file; a preamble-less dataset gets its transfer syntax from how it was read.
    Returns the dataset, notes for the metadata, and the header problems pydicom warned of (values
    that break their VR's rules, e.g. a malformed UID), one sentence each."""
    source = str(path)
    if not is_dicom(path):
        raise EchoDataError(source, "not a DICOM file (no 'DICM' marker at byte 128 and no readable "
                                    "DICOM dataset at the start)")
    notes: dict[str, Any] = {}
    try:
        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always", UserWarning)
            ds = pydicom.dcmread(path, force=True)
            for _ in ds.iterall():  # parse every element now, so that corrupt values fail here
                pass
    except (InvalidDicomError, BytesLengthException, EOFError, OSError, ValueError, struct.error) as err:
        raise EchoDataError(source, f"unreadable DICOM file, truncated or corrupt ({err})") from None
    problems = list(dict.fromkeys(f"DICOM header: {str(w.message).split('. Please see')[0]} (read anyway)"
                                  for w in raised if issubclass(w.category, UserWarning)))
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        notes["transfer_syntax_note"] = ("no file meta information (no DICOM preamble): the transfer "
                                         "syntax was inferred from the dataset encoding")
    return ds, notes, problems


def _uid_text(uid: Any) -> str | None:
    if not uid:
        return None
    uid = UID(str(uid))
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value) if value not in (None, "") else None


# ---------------------------------------------------------------------------- ultrasound regions
@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions; bounds are inclusive pixel indices."""

    index: int
    spatial_format: int
    data_type: int
    x0: int
    y0: int
    x1: int
    y1: int
    units_x: int
    units_y: int
    delta_x: float
    delta_y: float

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): first and last column, first and last row, inclusive."""
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def area(self) -> int:
        """Pixels inside the region."""
        return (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        """(sx, sy) in mm, the magnitudes of the signed deltas, when both axes are in centimetres with
        finite nonzero deltas, else None."""
        if (self.units_x, self.units_y) != (UNITS_CM, UNITS_CM):
            return None
        deltas = np.array([self.delta_x, self.delta_y])
        if not (np.isfinite(deltas).all() and (deltas != 0).all()):
            return None
        return (abs(self.delta_x) * MM_PER_CM, abs(self.delta_y) * MM_PER_CM)

    @property
    def sign_note(self) -> str | None:
        """A note naming the negative deltas (legal: the physical axis runs against the index)."""
        negative = [f"PhysicalDelta{axis} {delta:g} cm" for axis, delta in
                    (("X", self.delta_x), ("Y", self.delta_y)) if delta < 0]
        if not negative:
            return None
        return (f"region {self.index} has {' and '.join(negative)}: the sign is the direction of the "
                "physical axis; the pixel size is the magnitude")


def _regions(ds: Dataset, shape: tuple[int, int]) -> tuple[list[UltrasoundRegion], list[str]]:
    """The usable region items, clipped to the (H, W) image, and notes on the items left out."""
    height, width = shape
    regions, notes = [], []
    keys = ("RegionSpatialFormat", "RegionDataType", "RegionLocationMinX0", "RegionLocationMinY0",
            "RegionLocationMaxX1", "RegionLocationMaxY1", "PhysicalUnitsXDirection",
            "PhysicalUnitsYDirection", "PhysicalDeltaX", "PhysicalDeltaY")
    for index, item in enumerate(ds.get("SequenceOfUltrasoundRegions") or []):
        values = [item.get(key) for key in keys]
        if any(v is None for v in values):
            missing = [k for k, v in zip(keys, values) if v is None]
            notes.append(f"region {index} ignored: it lacks {', '.join(missing)}")
            continue
        fmt, dtype, x0, y0, x1, y1, ux, uy = (int(v) for v in values[:8])
        clipped = (max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1))
        if clipped[0] > clipped[2] or clipped[1] > clipped[3]:
            notes.append(f"region {index} ignored: bounds {(x0, y0, x1, y1)} lie outside the "
                         f"{width} x {height} image")
            continue
        if clipped != (x0, y0, x1, y1):
            notes.append(f"region {index} bounds {(x0, y0, x1, y1)} clipped to the {width} x {height} "
                         f"image: {clipped}")
        regions.append(UltrasoundRegion(index, fmt, dtype, *clipped, ux, uy,
                                        float(values[8]), float(values[9])))
    return regions, notes


def _choose_region(regions: list[UltrasoundRegion]) -> tuple[UltrasoundRegion | None, list[str]]:
    """The 2D tissue region (largest, preferring ones with centimetre units); else the largest 2D
    region of another data type (said in the notes); else None."""
    two_d = [r for r in regions if r.spatial_format == REGION_SPATIAL_2D]
    tissue = [r for r in two_d if r.data_type == REGION_DATA_TISSUE]
    candidates = tissue or two_d
    if not candidates:
        return None, []
    chosen = max(candidates, key=lambda r: (r.spacing_mm is not None, r.area))
    notes = []
    if not tissue:
        notes.append(f"no 2D tissue region: region {chosen.index} (2D, data type {chosen.data_type}) "
                     "was used instead")
    if len(candidates) > 1:
        spacings = sorted({str(r.spacing_mm) for r in candidates})
        notes.append(f"{len(candidates)} candidate 2D regions; region {chosen.index} "
                     f"({chosen.x1 - chosen.x0 + 1} x {chosen.y1 - chosen.y0 + 1} px) was used"
                     + ("" if len(spacings) == 1 else f"; their spacings (mm) differ: {', '.join(spacings)}"))
    return chosen, notes


def _plain_pixel_spacing(ds: Dataset) -> tuple[tuple[tuple[float, float], str] | None, list[str]]:
    """(sx, sy) mm from PixelSpacing or ImagerPixelSpacing ([row spacing, column spacing]) with the
    keyword used, or None; and the problems: values that are not two finite nonzero numbers are
    unusable, negative ones are read as their magnitude."""
    problems = []
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float64).ravel()
        if not (arr.shape == (2,) and np.isfinite(arr).all() and (arr != 0).all()):
            problems.append(f"{keyword} {arr.tolist()} is not two nonzero sizes and was ignored")
            continue
        if (arr < 0).any():
            problems.append(f"{keyword} {arr.tolist()} is negative: its magnitude is used")
        return ((float(abs(arr[1])), float(abs(arr[0]))), keyword), problems
    return None, problems


def _spacing(ds: Dataset, shape: tuple[int, int]) -> tuple[tuple[float, float], UltrasoundRegion | None,
                                                            dict[str, Any], list[str]]:
    """(sx, sy) mm, the chosen ultrasound region, the metadata that says where they came from, and
    the problems of a PixelSpacing to warn of."""
    items = ds.get("SequenceOfUltrasoundRegions") or []
    regions, notes = _regions(ds, shape)
    region, choice_notes = _choose_region(regions)
    notes += choice_notes
    meta: dict[str, Any] = {"region_count": len(items)}
    problems: list[str] = []
    if region is not None:
        meta.update(region_index=region.index, region_bounds=region.bounds,
                    region_data_type=region.data_type)
    if region is not None and region.spacing_mm is not None:
        spacing = region.spacing_mm
        notes += [region.sign_note] if region.sign_note else []
        meta.update(spacing_known=True, spacing_source=f"SequenceOfUltrasoundRegions[{region.index}] "
                                                       "PhysicalDeltaX/Y (cm)")
    else:
        if not items:
            why = "the file has no SequenceOfUltrasoundRegions"
        elif region is None:
            why = f"none of the {len(items)} ultrasound regions is a usable 2D region"
        else:
            why = (f"region {region.index} has physical units X={region.units_x}, Y={region.units_y} "
                   f"and deltas {region.delta_x}, {region.delta_y} (need units {UNITS_CM} = cm and "
                   "nonzero deltas)")
        plain, problems = _plain_pixel_spacing(ds)
        if plain is not None:
            spacing = plain[0]
            meta.update(spacing_known=True, spacing_source=f"{plain[1]} (mm; {why})")
        else:
            spacing = (1.0, 1.0)
            meta.update(spacing_known=False, spacing_source="none",
                        spacing_note=f"no physical pixel size: {why}, and no usable PixelSpacing; "
                                     "(1, 1) is a placeholder")
    if notes:
        meta["region_note"] = "; ".join(notes)
    return spacing, region, meta, problems


# ---------------------------------------------------------------------------- frame times
def _times_from_vector(ds: Dataset, n_frames: int, source: str) -> tuple[np.ndarray, list[str]]:
    """Cumulative times (s) from FrameTimeVector (ms increments, the first one 0) and notes."""
    increments = np.atleast_1d(np.asarray(ds.FrameTimeVector, dtype=np.float64))
    if increments.shape != (n_frames,):
        raise EchoDataError(source, f"FrameTimeVector has {increments.size} values for {n_frames} frames")
    steps = increments[1:]
    bad = ~(np.isfinite(steps) & (steps > 0))
    if bad.any():
        k = int(np.argmax(bad)) + 1
        raise EchoDataError(source, f"FrameTimeVector value {k} is {increments[k]} ms: the time "
                                    "increments between frames must be positive")
    notes = []
    if increments[0] != 0:
        notes.append(f"FrameTimeVector starts with {increments[0]} ms instead of 0; the first frame "
                     "is placed at 0 s")
    return np.concatenate([[0.0], np.cumsum(steps)]) / 1000.0, notes


def _timing_order(ds: Dataset) -> tuple[list[str], list[str]]:
    """Timing attributes in the order to try them (the one FrameIncrementPointer names first)."""
    order = ["FrameTimeVector", "FrameTime", "CineRate", "RecommendedDisplayFrameRate"]
    pointer = ds.get("FrameIncrementPointer")
    if pointer is None:
        return order, []
    pointed = {Tag(p) for p in (pointer if isinstance(pointer, MultiValue) else [pointer])}
    named = [k for k in order[:2] if Tag(k) in pointed]
    notes = [f"FrameIncrementPointer names {k}, which the file lacks" for k in named if k not in ds]
    return named + [k for k in order if k not in named], notes


def _frame_times(ds: Dataset, n_frames: int, source: str) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(T,) seconds from the first usable timing attribute, or None; with source and notes."""
    if n_frames == 1:
        return np.zeros(1), {"frame_times_source": "single frame"}
    order, notes = _timing_order(ds)
    times, used = None, "none"
    for keyword in order:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if keyword == "FrameTimeVector":
            times, vector_notes = _times_from_vector(ds, n_frames, source)
            notes += vector_notes
            used = "FrameTimeVector (ms increments)"
            break
        number = float(value)
        if not (np.isfinite(number) and number > 0):
            notes.append(f"{keyword} {number} is not positive and was ignored")
            continue
        milliseconds = keyword == "FrameTime"
        times = np.arange(n_frames) * (number / 1000.0 if milliseconds else 1.0 / number)
        used = f"{keyword} ({number:g} {'ms' if milliseconds else 'frames/s'})"
        break
    if times is None:
        notes.append("no usable FrameTimeVector, FrameTime, CineRate or RecommendedDisplayFrameRate")
    meta: dict[str, Any] = {"frame_times_source": used}
    if notes:
        meta["frame_times_note"] = "; ".join(notes)
    return times, meta


def _times_with_frame_rate(ds: Dataset, n_frames: int, source: str,
                           frame_rate: float | None) -> tuple[np.ndarray | None, dict[str, Any], str | None]:
    """:func:`_frame_times`, then the caller's ``frame_rate`` by the rule of :mod:`.timing` (used
    when the file records no time, refused when it contradicts the file's times); with the warning to
    record, if any. ``RecommendedDisplayFrameRate`` is the rate to play the cine at, not the
    acquisition's (DICOM PS3.3 C.7.6.5), so the caller's rate replaces it, with that warning, as a video
    container's."""
    times, meta = _frame_times(ds, n_frames, source)
    display = meta["frame_times_source"].startswith("RecommendedDisplayFrameRate")
    timing = given_frame_rate(source, n_frames, frame_rate, times, meta["frame_times_source"], playback=display)
    meta["frame_times_source"] = timing.times_source
    if timing.note:
        meta["frame_times_note"] = "; ".join(filter(None, [meta.get("frame_times_note"), timing.note]))
    return timing.times, meta, timing.warning


# ---------------------------------------------------------------------------- pixels
def _image_shape(ds: Dataset, source: str) -> tuple[int, int, int]:
    """(T, H, W) that the header declares (T from NumberOfFrames, 1 without it), after checking it
    is a supported 2D (+t) image."""
    if "PixelData" not in ds:
        raise EchoDataError(source, "no pixel data: the file has no (7FE0,0010) Pixel Data element "
                                    "(it may be truncated or not an image)")
    if str(ds.get("SOPClassUID", "")) == US_VOLUME_SOP_CLASS:
        raise EchoDataError(source, "Enhanced US Volume (3D ultrasound) is not a 2D cine loop")
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated"):
        if ds.get(keyword) in (None, ""):
            raise EchoDataError(source, f"the image has no {keyword}")
    samples, photometric = int(ds.SamplesPerPixel), str(ds.PhotometricInterpretation)
    if photometric not in MONOCHROME + COLOUR:
        raise EchoDataError(source, f"photometric interpretation {photometric!r} is not supported "
                                    f"(supported: {', '.join(MONOCHROME + COLOUR)})")
    expected_samples = 3 if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") else 1
    if samples != expected_samples:
        raise EchoDataError(source, f"{samples} samples per pixel do not fit photometric interpretation "
                                    f"{photometric} (expected {expected_samples})")
    n_frames = int(ds.get("NumberOfFrames") or 1)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if min(n_frames, rows, columns) < 1:
        raise EchoDataError(source, f"empty image: {n_frames} frames of {rows} x {columns} pixels")
    return n_frames, rows, columns


def _native_frame_count(ds: Dataset, rows: int, columns: int) -> tuple[int, str]:
    """Whole frames in native (uncompressed) pixel data, and a description of the data.
    YBR_FULL_422 stores 2 samples per pixel (each pixel pair shares Cb and Cr, PS3.3 C.7.6.3.1.2)."""
    frame_bits = rows * columns * int(ds.SamplesPerPixel) * int(ds.BitsAllocated)
    if str(ds.PhotometricInterpretation) == "YBR_FULL_422":
        frame_bits = frame_bits * 2 // 3
    size = len(ds.PixelData)
    return size * 8 // frame_bits, f"{size} bytes, {frame_bits / 8:.0f} per frame"


def _encapsulated_frame_count(ds: Dataset, declared: int) -> tuple[int, str]:
    """Frames in encapsulated pixel data, and a description of the data: one per entry of a filled
    Basic or Extended Offset Table; else one per fragment when there are no more fragments than
    declared frames or the syntax is RLE (one fragment per frame, PS3.5 A.4); else pydicom's count
    of JPEG end-of-image markers (frames split across fragments)."""
    buffer = BytesIO(ds.PixelData)
    offsets = parse_basic_offsets(buffer)
    fragments, _ = parse_fragments(buffer)
    description = f"{fragments} fragments"
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    if not (offsets or extended) and (fragments <= declared or ds.file_meta.TransferSyntaxUID == RLELossless):
        return fragments, description
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the mismatch that the caller reports
        frames = generate_fragmented_frames(ds.PixelData, number_of_frames=declared, extended_offsets=extended)
        return sum(1 for _ in frames), description


def _held_frames(ds: Dataset, shape: tuple[int, int, int], source: str) -> tuple[int, list[str]]:
    """The number of frames the pixel data hold, and a warning when NumberOfFrames disagrees.

    Raises:
        EchoDataError: the pixel data cannot be parsed, hold no whole frame, or more than
            :data:`MAX_PIXELS` pixels.
    """
    declared, rows, columns = shape
    try:
        if UID(ds.file_meta.TransferSyntaxUID).is_encapsulated:
            held, description = _encapsulated_frame_count(ds, declared)
        else:
            held, description = _native_frame_count(ds, rows, columns)
    except (ValueError, struct.error, EOFError) as err:
        raise EchoDataError(source, f"encapsulated pixel data cannot be parsed ({err})") from None
    if held == 0:
        raise EchoDataError(source, f"the pixel data ({description}) hold no whole frame of {rows} x "
                                    f"{columns} pixels (NumberOfFrames {declared})")
    if held * rows * columns > MAX_PIXELS:
        raise EchoDataError(source, f"{held} frames of {rows} x {columns} pixels exceed {MAX_PIXELS} "
                                    "pixels, far more than an echo cine: a corrupt header?")
    if held == declared:
        return held, []
    return held, [f"NumberOfFrames is {declared} but the pixel data ({description}) hold {held} frames: "
                  f"the {held} frames that exist were read"]


def _decoder(ds: Dataset, source: str) -> Any:
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise EchoDataError(source, f"pydicom has no pixel data decoder for transfer syntax "
                                    f"{_uid_text(syntax)}") from None
    if not decoder.is_available:
        raise EchoDataError(source, f"pixel data compressed as {_uid_text(syntax)} cannot be decoded: "
                                    "no decoder plugin is installed; install one of: "
                                    + "; ".join(decoder.missing_dependencies))
    return decoder


def _luma(rgb: np.ndarray, full_scale: float) -> tuple[np.ndarray, int]:
    """BT.601 luma (0..255) of an (H, W, >=3) colour frame and its count of clearly coloured pixels."""
    rgb = rgb[..., :3].astype(np.float32) * np.float32(255.0 / full_scale)
    return rgb_to_luma(rgb), coloured_pixel_count(rgb, COLOUR_SPREAD_THRESHOLD)


def _intensity(frame: np.ndarray, props: dict[str, Any], ds: Dataset) -> tuple[np.ndarray, int]:
    """One decoded frame as (H, W) float32 intensity and its count of clearly coloured pixels."""
    photometric = str(props["photometric_interpretation"])
    bits = int(props["bits_stored"])
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        return _luma(rgb, float(np.iinfo(rgb.dtype).max))
    if photometric == "RGB":
        return _luma(frame, float(2 ** bits - 1))
    if photometric == "MONOCHROME1":
        signed = int(props["pixel_representation"]) == 1
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        return (low + high) - frame.astype(np.float32), 0
    if photometric == "MONOCHROME2":
        return frame.astype(np.float32), 0
    raise AssertionError(f"decoder returned photometric interpretation {photometric!r}")


def _decoded_frames(ds: Dataset, decoder: Any) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """(frame, properties) of each of the ``ds.NumberOfFrames`` frames. Native data are decoded frame
    by frame with ``as_array(index=...)``: pydicom 3.0.2's ``iter_array`` miscounts native
    YBR_FULL_422 frames ("insufficient pixel data")."""
    if UID(ds.file_meta.TransferSyntaxUID).is_encapsulated:
        yield from decoder.iter_array(ds)
        return
    with warnings.catch_warnings():  # trailing bytes of a partial frame: reported by _held_frames
        warnings.filterwarnings("ignore", message="The pixel data is .* bytes long")
        for index in range(int(ds.NumberOfFrames)):
            yield decoder.as_array(ds, index=index)


def _frames(ds: Dataset, decoder: Any, shape: tuple[int, int, int],
            source: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(T, H, W) float32 intensities of the T frames of ``shape`` (those the pixel data hold; set as
    NumberOfFrames on the in-memory dataset) and colour metadata."""
    ds.NumberOfFrames = shape[0]
    frames = np.empty(shape, dtype=np.float32)
    coloured = 0
    try:
        for index, (frame, props) in enumerate(_decoded_frames(ds, decoder)):
            frames[index], n_coloured = _intensity(frame, props, ds)
            coloured += n_coloured
    except (ValueError, RuntimeError, AttributeError, KeyError, IndexError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EchoDataError(source, f"pixel data cannot be decoded "
                                    f"({_uid_text(ds.file_meta.TransferSyntaxUID)}): {first_line}") from None
    fraction = coloured / frames.size
    meta: dict[str, Any] = {"colour_pixel_fraction": fraction}
    photometric = str(ds.PhotometricInterpretation)
    if photometric in COLOUR:
        meta["colour_note"] = (f"{photometric} converted to BT.601 luma on a 0..255 scale; "
                               f"{100 * fraction:.2f}% of pixels are clearly coloured (channel spread > "
                               f"{COLOUR_SPREAD_THRESHOLD:g}/255: Doppler, coloured annotations or a tinted "
                               "grey map), and their luma is not an echo intensity")
    elif photometric == "MONOCHROME1":
        meta["intensity_note"] = "MONOCHROME1 inverted so that bright means strong echo"
    return frames, meta


# ---------------------------------------------------------------------------- geometry
def _geometry(ds: Dataset) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Origin (3,) and direction (3, 3) in LPS from ImagePositionPatient / ImageOrientationPatient
    when both are present and orthonormal; otherwise the default frame with a note."""
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    default = (np.zeros(3), np.eye(3))
    if position is None and orientation is None:
        return (*default, {"geometry_source": "default (no patient position/orientation in the file)"})
    try:
        origin = np.asarray(position, dtype=np.float64).ravel()
        cosines = np.asarray(orientation, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        origin, cosines = np.array([]), np.array([])
    usable = origin.shape == (3,) and cosines.shape == (6,)
    if usable and np.isfinite(origin).all() and np.isfinite(cosines).all():
        row_axis, column_axis = cosines[:3], cosines[3:]
        if (abs(np.linalg.norm(row_axis) - 1) < 1e-3 and abs(np.linalg.norm(column_axis) - 1) < 1e-3
                and abs(row_axis @ column_axis) < 1e-3):
            direction = np.column_stack([row_axis, column_axis, np.cross(row_axis, column_axis)])
            return origin, direction, {"geometry_source": "ImagePositionPatient/ImageOrientationPatient"}
    return (*default, {"geometry_source": "default",
                       "geometry_note": f"ImagePositionPatient {position} / ImageOrientationPatient "
                                        f"{orientation} ignored: incomplete or not orthonormal"})


# ---------------------------------------------------------------------------- public reader
def read_dicom(path: str | os.PathLike, *, crop_to_region: bool = False,
               frame_rate: float | None = None) -> EchoSequence:
    """Read a DICOM ultrasound image or cine loop as an :class:`EchoSequence`.

    Args:
        path: a DICOM file with pixel data (US Image Storage, US Multi-frame Image Storage, or any
            other SOP class holding a 2D image or 2D+t cine).
        crop_to_region: keep only the chosen 2D ultrasound region (inclusive bounds), with the origin
            moved to the region's first pixel so physical positions are unchanged. Without a region
            the full frame is kept and ``metadata["crop_note"]`` says so.
        frame_rate: frames per second, for a file that records no frame times (none of the timing
            attributes above) or only ``RecommendedDisplayFrameRate`` (a display rate, which it replaces
            with a warning); the times are then ``i / frame_rate`` s.

    Returns:
        frames (T, H, W) float32; spacing (sx, sy) mm; frame_times (T,) s or None when unknown;
        metadata with source, modality, manufacturer, model, sop_class, photometric_interpretation,
        transfer_syntax, number_of_frames, spacing_known / spacing_source, region facts,
        frame_times_source, colour_pixel_fraction and notes on anything not established.

    Raises:
        OSError: the file cannot be opened.
        EchoDataError: not DICOM, no pixel data, an unsupported image, a missing decoder (the message
            names the transfer syntax and what to install), pixel data without one whole frame or with
            more than :data:`MAX_PIXELS` pixels, an invalid FrameTimeVector; ``frame_rate`` not a
            positive number, or contradicting the frame times the file records (the message gives
            their rate).

    Warns:
        EchoDataWarning: NumberOfFrames disagrees with the frames the pixel data hold (the frames
            that exist are read; also in ``metadata["warnings"]``); a header value pydicom finds
            invalid for its VR (a malformed UID, ...), which does not stop reading; ``frame_rate``
            replacing a ``RecommendedDisplayFrameRate`` (naming both).
    """
    path = Path(path)
    source = str(path)
    checked_frame_rate(source, frame_rate)  # before any decoding
    ds, read_notes, header_problems = _read_dataset(path)
    declared, rows, columns = _image_shape(ds, source)
    decoder = _decoder(ds, source)  # a missing decoder is the problem to report, before counting frames
    held, frame_problems = _held_frames(ds, (declared, rows, columns), source)
    shape = (held, rows, columns)
    # before decoding the frames: a frame rate the file contradicts is refused at once
    times, time_meta, time_warning = _times_with_frame_rate(ds, held, source, frame_rate)
    frames, colour_meta = _frames(ds, decoder, shape, source)
    spacing, region, spacing_meta, spacing_problems = _spacing(ds, shape[1:])
    origin, direction, geometry_meta = _geometry(ds)
    metadata: dict[str, Any] = {
        "source": source, "format": "DICOM",
        "modality": _text(ds, "Modality"), "manufacturer": _text(ds, "Manufacturer"),
        "model": _text(ds, "ManufacturerModelName"), "sop_class": _uid_text(ds.get("SOPClassUID")),
        "photometric_interpretation": str(ds.PhotometricInterpretation),
        "transfer_syntax": _uid_text(ds.file_meta.TransferSyntaxUID), "number_of_frames": shape[0],
        **read_notes, **spacing_meta, **time_meta, **colour_meta, **geometry_meta,
    }
    for problem in header_problems + frame_problems + spacing_problems + ([time_warning] if time_warning else []):
        record_warning(metadata, problem)
    if crop_to_region:
        if region is None:
            metadata.update(cropped_to_region=False,
                            crop_note="crop_to_region was requested but the file has no 2D ultrasound "
                                      "region; the full frame is kept")
        else:
            x0, y0, x1, y1 = region.bounds
            frames = frames[:, y0:y1 + 1, x0:x1 + 1]
            origin = origin + direction[:, 0] * spacing[0] * x0 + direction[:, 1] * spacing[1] * y0
            metadata["cropped_to_region"] = True
    return EchoSequence(frames=frames, spacing=spacing, frame_times=times, origin=origin,
                        direction=direction, metadata=metadata)
