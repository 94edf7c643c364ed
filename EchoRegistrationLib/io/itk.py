"""NIfTI, MetaImage and plain NRRD 2D+t images through SimpleITK.

A 2D+t sequence is stored as a 3D image whose third axis is time (CAMUS ``*_half_sequence.nii.gz``,
``*_sequence.mhd``); a 2D image is a single frame. Frame times:

* MetaImage (``.mha``/``.mhd``) written by EchoRegistration carries them exactly in a ``FrameTimes``
  header field (seconds) and they are read back;
* NIfTI and NRRD cannot hold them through SimpleITK: the writer stores the mean frame interval (s) as the
  third-axis spacing for other tools, but the reader never guesses times from a spacing. Pass
  ``frame_rate`` (frames/s) when known, otherwise times are marked unknown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..sequence import EchoDataError, EchoSequence
from .atomic import atomic_output, atomic_output_dir
from .colour import rgb_to_luma

FRAME_TIMES_KEY = "FrameTimes"
ITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


def _read_image(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise EchoDataError(str(path), f"cannot be read as an image ({first_line})") from None


def _frames_array(image: sitk.Image, source: str) -> np.ndarray:
    """(T, H, W) array of a 2D or 3D image; colour pixels become BT.601 luma."""
    arr = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        if arr.shape[-1] not in (3, 4):
            raise EchoDataError(source, f"{arr.shape[-1]}-component pixels are not an image intensity")
        arr = rgb_to_luma(arr)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise EchoDataError(source, f"expected a 2D image or a 2D+t (3D) image, got {arr.ndim}D "
                                    f"of size {image.GetSize()}")
    return arr


def _plane_geometry(image: sitk.Image) -> dict[str, Any]:
    """Spacing, origin and direction of the (x, y) plane; the third (time) axis is dropped."""
    dim = image.GetDimension()
    spacing = image.GetSpacing()
    origin = np.array([image.GetOrigin()[0], image.GetOrigin()[1], 0.0])
    d = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    direction = np.eye(3)
    direction[:2, :2] = d[:2, :2]
    notes = {}
    if dim == 3 and (np.abs(d[:2, 2]).max() > 1e-6 or np.abs(d[2, :2]).max() > 1e-6):
        notes["geometry_note"] = "the time axis was oblique in the file; its direction was dropped"
    return {"spacing": (spacing[0], spacing[1]), "origin": origin, "direction": direction,
            "metadata": notes}


def _frame_times(path: Path, image: sitk.Image, n_frames: int,
                 frame_rate: float | None) -> tuple[np.ndarray | None, str]:
    if frame_rate is not None:
        if not frame_rate > 0:
            raise EchoDataError(str(path), f"frame_rate must be positive, got {frame_rate}")
        return np.arange(n_frames) / float(frame_rate), "frame_rate argument"
    if image.HasMetaDataKey(FRAME_TIMES_KEY):
        try:
            times = np.array([float(v) for v in image.GetMetaData(FRAME_TIMES_KEY).split()])
        except ValueError:
            raise EchoDataError(str(path), f"{FRAME_TIMES_KEY} header field is not a list of numbers") from None
        if times.shape != (n_frames,):
            raise EchoDataError(str(path), f"{FRAME_TIMES_KEY} lists {times.size} times for {n_frames} frames")
        return times, f"{FRAME_TIMES_KEY} header field"
    return None, "not stored in the file"


def read_itk_image(path: str | os.PathLike, *, frame_rate: float | None = None) -> EchoSequence:
    """Read a NIfTI / MetaImage / NRRD 2D+t (or single 2D) image as an :class:`EchoSequence`.

    Args:
        path: the image file; the third axis of a 3D image is time.
        frame_rate: frames per second when the file does not record times (NIfTI, NRRD).

    Raises:
        EchoDataError: unreadable file, wrong dimension, bad pixel type, or invalid geometry.
    """
    path = Path(path)
    image = _read_image(path)
    frames = _frames_array(image, str(path))
    geometry = _plane_geometry(image)
    times, time_source = _frame_times(path, image, frames.shape[0], frame_rate)
    metadata = {"source": str(path), "format": "ITK image (SimpleITK)",
                "frame_times_source": time_source, **geometry.pop("metadata")}
    if image.GetNumberOfComponentsPerPixel() > 1:
        metadata["colour_note"] = "colour pixels converted to BT.601 luma"
    return EchoSequence(frames=frames, frame_times=times, metadata=metadata, **geometry)


def read_itk_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image (CAMUS ``*_gt``) as uint8: (T, H, W) for 2D+t, (H, W) for 2D.

    Raises:
        EchoDataError: non-integer codes or codes outside 0..255.
    """
    path = Path(path)
    image = _read_image(path)
    arr = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1 or arr.ndim not in (2, 3):
        raise EchoDataError(str(path), f"a label map must be a scalar 2D or 2D+t image, got size "
                                       f"{image.GetSize()} with {image.GetNumberOfComponentsPerPixel()} components")
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise EchoDataError(str(path), "label map holds non-integer values")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise EchoDataError(str(path), f"label codes must lie in 0..255, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def _to_image(array: np.ndarray, seq: EchoSequence) -> sitk.Image:
    """A 3D image (time third) or a 2D image with the sequence's in-plane geometry."""
    single = array.ndim == 2
    image = sitk.GetImageFromArray(array)
    if single:
        image.SetSpacing(seq.spacing)
        image.SetOrigin(tuple(seq.origin[:2]))
        image.SetDirection(tuple(seq.direction[:2, :2].ravel()))
        return image
    interval = float(np.mean(np.diff(seq.frame_times))) if seq.n_frames > 1 else 1.0
    image.SetSpacing((seq.spacing[0], seq.spacing[1], interval))
    image.SetOrigin((seq.origin[0], seq.origin[1], float(seq.frame_times[0])))
    d = np.eye(3)
    d[:2, :2] = seq.direction[:2, :2]
    image.SetDirection(tuple(d.ravel()))
    return image


def write_itk_image(seq: EchoSequence, path: str | os.PathLike, *, overwrite: bool = False,
                    array: np.ndarray | None = None) -> Path:
    """Write ``seq`` (or another (T, H, W) / (H, W) ``array`` on its grid, e.g. labels) as a 2D+t image.

    The format follows the suffix (``.nii.gz``, ``.nii``, ``.mha``, ``.mhd``, ``.nrrd``). MetaImage
    keeps the exact frame times in a ``FrameTimes`` field. The write is atomic and refuses to replace
    an existing file unless ``overwrite``. Only the in-plane part of ``direction`` is kept.
    """
    path = Path(path)
    if not path.name.endswith(ITK_SUFFIXES):
        raise ValueError(f"{path}: unsupported suffix for an ITK image, use one of {ITK_SUFFIXES}")
    data = seq.frames if array is None else np.asarray(array)
    if data.shape not in (seq.frames.shape, seq.frames.shape[1:]):
        raise ValueError(f"{path}: array of shape {data.shape} is not on the sequence grid {seq.frames.shape}")
    image = _to_image(data, seq)
    if data.ndim == 3:
        image.SetMetaData(FRAME_TIMES_KEY, " ".join(f"{t:.9g}" for t in seq.frame_times))
    if path.suffix in (".mhd", ".nhdr"):  # header + data file pair: keep final names, move both
        with atomic_output_dir(path, overwrite) as tmp_dir:
            sitk.WriteImage(image, str(tmp_dir / path.name))
    else:
        with atomic_output(path, overwrite) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=path.name.endswith(".gz"))
    return path
