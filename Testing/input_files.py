"""Writers of small input files shared by the I/O, strain and tracking tests and the bad-input corpus
(``bad_inputs.py``): DICOM ultrasound cines (regions, compressed, YBR_FULL_422), NIfTI with a patched
pixdim, MJPG videos, Slicer labelmap sequences and a moving speckle texture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UltrasoundMultiFrameImageStorage, generate_uid

from EchoRegistrationLib import EchoSequence
from EchoRegistrationLib.io.seqnrrd import write_seq_nrrd
from EchoRegistrationLib.registration import RegistrationResult
from EchoRegistrationLib.simulation.result import SimulatedSequence, pixel_positions
from EchoRegistrationLib.strain import (
    Myocardium,
    myocardium_from_labels,
    result_from_displacement,
)


# ---------------------------------------------------------------------------- DICOM
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


def with_header(path: Path, **attributes) -> Path:
    """The DICOM file ``path`` rewritten with the given header attributes (e.g. a NumberOfFrames
    that disagrees with its pixel data)."""
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def write_compressed_us(path: Path, cine: np.ndarray, syntax: str, declared: int, *, offsets: bool = True,
                        **attributes) -> Path:
    """``cine`` written compressed with ``syntax``, its header then declaring ``declared`` frames;
    with ``offsets`` False the Basic Offset Table is left empty."""
    ds = pydicom.dcmread(write_us(path, cine, **attributes))
    ds.compress(syntax, generate_instance_uid=False)
    if not offsets:
        frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=cine.shape[0]))
        ds.PixelData = encapsulate(frames, has_bot=False)
    ds.NumberOfFrames = declared
    ds.save_as(path)
    return path


def ybr_full_422_bytes(ybr: np.ndarray) -> bytes:
    """Native YBR_FULL_422 bytes of (T, H, W, 3) Y, Cb, Cr samples: Y0 Y1 Cb Cr per pixel pair, the
    chroma of the pair's first pixel."""
    t, h, w, _ = ybr.shape
    pairs = np.empty((t, h, w // 2, 4), np.uint8)
    pairs[..., 0], pairs[..., 1] = ybr[:, :, 0::2, 0], ybr[:, :, 1::2, 0]
    pairs[..., 2], pairs[..., 3] = ybr[:, :, 0::2, 1], ybr[:, :, 0::2, 2]
    return pairs.tobytes()


def write_ybr_full_422(path: Path, ybr: np.ndarray, declared: int | None = None) -> Path:
    """A native (uncompressed) YBR_FULL_422 multi-frame of (T, H, W, 3) Y, Cb, Cr samples, declaring
    ``declared`` frames (default: as many as it holds)."""
    ds = pydicom.dcmread(write_us(path, ybr, "RGB"))
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = ybr_full_422_bytes(ybr)
    ds.NumberOfFrames = ybr.shape[0] if declared is None else declared
    ds.save_as(path)
    return path


# ---------------------------------------------------------------------------- NIfTI, video, Slicer
def written_nifti(path: Path, frames: np.ndarray, pixdim_xy=None, dtype=np.float32) -> Path:
    """``frames`` written as NIfTI (X, Y, T); ``pixdim_xy`` then patched into pixdim[1:3], with the
    sform switched off so that the qform (pixdim) is the geometry, as many NIfTI writers do."""
    image = sitk.GetImageFromArray(frames.astype(dtype))
    image.SetSpacing((0.3, 0.4, 0.02))
    sitk.WriteImage(image, str(path))
    if pixdim_xy is not None:
        raw = bytearray(path.read_bytes())
        raw[80:88] = np.asarray(pixdim_xy, "<f4").tobytes()
        raw[254:256] = np.int16(0).tobytes()  # sform_code 0
        path.write_bytes(bytes(raw))
    return path


def write_mjpg(path: Path, frames: np.ndarray, fps: float = 50.0) -> Path:
    """(T, H, W) gray frames as an MJPG AVI at ``fps`` (no pixel size: videos have none)."""
    height, width = frames.shape[1:]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in np.clip(frames, 0, 255).astype(np.uint8):
        writer.write(np.repeat(frame[..., None], 3, axis=2))
    writer.release()
    return path


def edit_header(path: Path, old: str, new: str) -> None:
    """Replace text in the header of an attached-data NRRD file, keeping its data bytes."""
    header, data = path.read_bytes().split(b"\n\n", 1)
    assert old.encode() in header
    path.write_bytes(header.replace(old.encode(), new.encode()) + b"\n\n" + data)


def write_labelmap_sequence(seq: EchoSequence, path: Path) -> Path:
    """``seq`` (integer codes) as a Slicer labelmap sequence (.seq.nrrd of vtkMRMLLabelMapVolumeNode)."""
    write_seq_nrrd(seq, path)
    edit_header(path, "DataNodeClassName:=vtkMRMLScalarVolumeNode", "DataNodeClassName:=vtkMRMLLabelMapVolumeNode")
    return path


# ---------------------------------------------------------------------------- motion with known answers
def started_at(sim: SimulatedSequence, start: int) -> tuple[EchoSequence, RegistrationResult, np.ndarray, Myocardium]:
    """The beat of ``sim`` played from frame ``start`` on (wrapping at the next ED), as a file
    without ED / ES would give it: the sequence, exact fields on the grid of its frame 0, the
    original frame of each frame, and the myocardium of frame 0 from its labels."""
    n = sim.sequence.n_frames
    order = np.r_[np.arange(start, n - 1), np.arange(0, start)]  # frame n - 1 is the next ED: once
    cine, registration, myocardium = played(sim, order, f"<beat from frame {start}>")
    return cine, registration, order, myocardium


def played(sim: SimulatedSequence, order: np.ndarray,
           source: str = "<frames played in order>") -> tuple[EchoSequence, RegistrationResult, Myocardium]:
    """The frames ``order`` of ``sim`` played in that order, as a file ``source`` without ED / ES would give
    them (50 frames/s): the sequence, exact fields on the grid of its frame 0 and the myocardium of frame 0
    from its labels."""
    seq = sim.sequence
    positions = pixel_positions(seq.frame_shape, seq.spacing)
    at_ed = sim.motion.inverse(positions, sim.activation[order[0]])
    fields = np.stack([sim.motion.forward(at_ed, sim.activation[k]) - positions for k in order])
    cine = EchoSequence(frames=seq.frames[order], spacing=seq.spacing,
                        frame_times=np.arange(len(order)) / 50.0, labels=seq.labels[order[0]],
                        metadata={"source": source, "view": "A4C"})
    registration = result_from_displacement(cine, fields.astype(np.float32), 0)
    return cine, registration, myocardium_from_labels(seq.labels[order[0]], seq.spacing)


def moving_texture(n: int = 5, step_px: int = 1, seed: int = 0) -> np.ndarray:
    """(n, 64, 64) speckle texture moving ``step_px`` columns left per frame (-0.5 mm at 0.5 mm
    pixels: reference point p is at p - 0.5 t mm in frame t), a black 12-column band in every
    frame (columns 26..37, not moving)."""
    texture = np.random.default_rng(seed).uniform(0, 255, (64, 64))
    frames = np.stack([np.roll(texture, -step_px * t, axis=1) for t in range(n)]).astype(np.float32)
    frames[:, :, 26:38] = 0
    return frames
