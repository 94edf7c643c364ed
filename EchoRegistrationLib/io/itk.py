"""NIfTI, MetaImage and plain NRRD 2D+t images through SimpleITK.

A 2D+t sequence is stored as a 3D image whose third axis is time (CAMUS ``*_half_sequence.nii.gz``,
``*_sequence.mhd``), or as a 4D image with a singleton third axis and time on the fourth (X, Y, 1, T),
as NIfTI tools write 2D+t; any layout whose axes beyond the plane are singletons but one (time) is
read. A 2D image is a single frame. Frame times:

* MetaImage (``.mha``/``.mhd``) and NRRD written by EchoRegistration carry known times exactly in a
  ``FrameTimes`` header field (seconds) and they are read back (a ``frame_rate`` that contradicts them is
  refused, :mod:`.timing`); unknown times are not written, and read back unknown;
* NIfTI cannot hold them through SimpleITK: the writer stores the mean frame interval (s) as the
  third-axis spacing for other tools, but the reader never guesses times from a spacing. Pass
  ``frame_rate`` (frames/s) when known, otherwise times are marked unknown.

What the file declares is checked before ITK interprets it (:mod:`.nifti`, MetaImage
``ElementSpacing``): a zero pixel size makes the spacing unknown (NIfTI; ITK would read 1 mm;
MetaImage: ITK refuses the file), a negative one is read as its magnitude with an
:class:`EchoDataWarning`, and NaN / infinite float pixels (which ITK's NIfTI reader turns into 0)
are refused.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..sequence import EchoDataError, EchoSequence, label_codes, nonfinite_problem, record_warning
from .atomic import atomic_output, atomic_output_dir
from .colour import rgb_to_luma
from .metaimage import metaimage_data_problem, read_metaimage_header
from .nifti import NiftiHeader, read_nifti
from .timing import FrameTiming, checked_frame_rate, given_frame_rate

FRAME_TIMES_KEY = "FrameTimes"
ITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


def _itk_reason(err: RuntimeError) -> str:
    """ITK's last line of explanation in a SimpleITK error, without ITK's class prefix."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or ["unknown error"]
    return re.sub(r"^ITK ERROR: \w+\(0x[0-9a-fA-F]+\):\s*", "", lines[-1])


def _read_image(path: Path) -> sitk.Image:
    """The image ITK reads from ``path``.

    Raises:
        EchoDataError: ITK cannot read it, or a MetaImage's data are missing or short (named here:
            ITK would only say that the file "cannot be read").
    """
    problem = metaimage_data_problem(path) if path.suffix.lower() in (".mha", ".mhd") else None
    if problem:
        raise EchoDataError(str(path), problem)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise EchoDataError(str(path), f"cannot be read as an image ({_itk_reason(err)})") from None


def _write_image(image: sitk.Image, file: Path, target: Path, compress: bool = False) -> None:
    """``image`` written by ITK into ``file`` (a temporary file for ``target``) and checked.

    Raises:
        OSError: naming ``target``: ITK failed (a full disk, a file-size limit), or its NIfTI writer,
            which only prints its errors, left the voxel data short (:func:`.nifti.read_nifti`).
    """
    try:
        sitk.WriteImage(image, str(file), useCompression=compress)
        if target.name.endswith((".nii", ".nii.gz")):
            read_nifti(file)
    except RuntimeError as err:
        reason = _itk_reason(err).replace(str(file), str(target))
        raise OSError(errno.EIO, f"cannot be written ({reason})", str(target)) from None
    except EchoDataError as err:
        raise OSError(errno.EIO, f"was written incompletely ({err.problem}; a full disk or a file-size "
                                 "limit?)", str(target)) from None


def _as_frames(arr: np.ndarray, size: tuple[int, ...], source: str) -> np.ndarray:
    """(T, H, W) view of a scalar array of an image of ``size`` (x first): the axes beyond the
    (x, y) plane must all be singletons but at most one, which is time."""
    extra = [n for n in size[2:] if n != 1]
    if len(extra) > 1:
        raise EchoDataError(source, f"image of size {tuple(size)} has {len(extra)} axes beyond the (x, y) "
                                    "plane longer than 1; a 2D+t sequence has one (time)")
    return arr.reshape(-1, size[1], size[0])


def _frames_array(image: sitk.Image, source: str) -> np.ndarray:
    """(T, H, W) array of a 2D, 2D+t or (X, Y, 1, T) image; colour pixels become BT.601 luma."""
    arr = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        if arr.shape[-1] not in (3, 4):
            raise EchoDataError(source, f"{arr.shape[-1]}-component pixels are not an image intensity")
        arr = rgb_to_luma(arr)
    return _as_frames(arr, image.GetSize(), source)


def _plane_geometry(image: sitk.Image) -> dict[str, Any]:
    """Spacing, origin and direction of the (x, y) plane; the axes beyond it (time) are dropped."""
    dim = image.GetDimension()
    spacing = image.GetSpacing()
    origin = np.array([image.GetOrigin()[0], image.GetOrigin()[1], 0.0])
    d = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    direction = np.eye(3)
    direction[:2, :2] = d[:2, :2]
    notes = {}
    if dim > 2 and (np.abs(d[:2, 2:]).max() > 1e-6 or np.abs(d[2:, :2]).max() > 1e-6):
        notes["geometry_note"] = "the axes beyond the plane were oblique in the file; their direction was dropped"
    return {"spacing": (spacing[0], spacing[1]), "origin": origin, "direction": direction,
            "metadata": notes}


def _declared_spacing(path: Path, nifti: tuple[NiftiHeader, Any] | None) -> tuple[tuple[float, float], str] | None:
    """The in-plane pixel size (x, y) as the file writes it, before ITK: NIfTI ``pixdim[1:3]`` (from
    ``nifti``, :func:`.nifti.read_nifti` of the file) or MetaImage ``ElementSpacing``/``ElementSize``,
    with the field's name; None for other formats."""
    if nifti is not None:
        header = nifti[0]
        return (header.pixdim + (1.0, 1.0))[:2], "pixdim"
    header = read_metaimage_header(path)
    if header is None:
        return None
    for key in ("ElementSpacing", "ElementSize"):
        values = header[0].get(key, "").split()
        if len(values) >= 2:
            return (float(values[0]), float(values[1])), key
    return None


def _checked_spacing(path: Path, nifti: tuple[NiftiHeader, Any] | None, spacing: tuple[float, float],
                     metadata: dict[str, Any]) -> tuple[float, float]:
    """The in-plane spacing to use, after checking what the file declares: zero gives the (1, 1)
    placeholder with ``spacing_known`` False, negative its magnitude; both are warned of."""
    declared = _declared_spacing(path, nifti)
    if declared is None:
        return spacing
    values, field = declared
    text = f"({values[0]:.7g}, {values[1]:.7g}) mm ({field})"
    if any(v == 0 or not np.isfinite(v) for v in values):
        metadata.update(spacing_known=False, spacing_source="none")
        record_warning(metadata, f"the file declares pixel size {text}; a zero size is no size: spacing "
                                 "unknown, (1, 1) is a placeholder")
        return (1.0, 1.0)
    if any(v < 0 for v in values):
        record_warning(metadata, f"the file declares a negative pixel size {text}; its magnitude is used")
    return spacing


def _check_raw_pixels(path: Path, nifti: tuple[NiftiHeader, np.ndarray | None] | None) -> None:
    """Refuse NaN / infinite float voxels of a NIfTI file (``nifti``: its :func:`.nifti.read_nifti`),
    which ITK's reader would make 0."""
    if nifti is None or nifti[1] is None:
        return
    header, voxels = nifti
    shape = header.shape + (1,) * (2 - len(header.shape))
    problem = nonfinite_problem(voxels.reshape(-1, shape[1], shape[0]))
    if problem:
        raise EchoDataError(str(path), problem)


def _frame_times(path: Path, image: sitk.Image, n_frames: int, frame_rate: float | None) -> FrameTiming:
    """The times of the :data:`FRAME_TIMES_KEY` field, the caller's ``frame_rate`` by the rule of
    :mod:`.timing` (used when the file records none, refused when it contradicts them)."""
    recorded, recorded_by = None, "not stored in the file"
    if image.HasMetaDataKey(FRAME_TIMES_KEY):
        try:
            recorded = np.array([float(v) for v in image.GetMetaData(FRAME_TIMES_KEY).split()])
        except ValueError:
            raise EchoDataError(str(path), f"{FRAME_TIMES_KEY} header field is not a list of numbers") from None
        if recorded.shape != (n_frames,):
            raise EchoDataError(str(path), f"{FRAME_TIMES_KEY} lists {recorded.size} times for {n_frames} frames")
        recorded_by = f"{FRAME_TIMES_KEY} header field"
    return given_frame_rate(str(path), n_frames, frame_rate, recorded, recorded_by)


def read_itk_image(path: str | os.PathLike, *, frame_rate: float | None = None) -> EchoSequence:
    """Read a NIfTI / MetaImage / NRRD 2D+t (or single 2D) image as an :class:`EchoSequence`.

    Args:
        path: the image file; the third axis of a 3D image is time.
        frame_rate: frames per second when the file does not record times (NIfTI; MetaImage and
            NRRD without a ``FrameTimes`` field); refused when it contradicts a ``FrameTimes`` field
            (:mod:`.timing`).

    Raises:
        EchoDataError: unreadable or truncated file (ITK reads the missing voxels of a NIfTI file as
            0), more than one axis beyond the plane, bad pixel type, NaN or infinite pixels, or
            invalid geometry (implausible spacing or frame rate included); ``frame_rate`` not
            positive, or contradicting the file's ``FrameTimes`` (the message gives their rate).

    Warns:
        EchoDataWarning: the file declares a zero (spacing unknown) or negative pixel size.
    """
    path = Path(path)
    checked_frame_rate(str(path), frame_rate)
    image = _read_image(path)
    nifti = read_nifti(path)
    _check_raw_pixels(path, nifti)
    frames = _frames_array(image, str(path))
    geometry = _plane_geometry(image)
    timing = _frame_times(path, image, frames.shape[0], frame_rate)
    metadata = {"source": str(path), "format": "ITK image (SimpleITK)",
                "frame_times_source": timing.times_source, **geometry.pop("metadata")}
    if timing.note:
        metadata["frame_times_note"] = timing.note
    geometry["spacing"] = _checked_spacing(path, nifti, geometry["spacing"], metadata)
    if image.GetNumberOfComponentsPerPixel() > 1:
        metadata["colour_note"] = "colour pixels converted to BT.601 luma"
    return EchoSequence(frames=frames, frame_times=timing.times, metadata=metadata, **geometry)


def read_itk_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image (CAMUS ``*_gt``) as uint8: (T, H, W) for 2D+t (any layout
    :func:`read_itk_image` reads), (H, W) for a single frame.

    Raises:
        EchoDataError: colour pixels, non-integer codes or codes outside 0..255.
    """
    path = Path(path)
    image = _read_image(path)
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise EchoDataError(str(path), f"a label map must be a scalar image, got "
                                       f"{image.GetNumberOfComponentsPerPixel()} components per pixel")
    arr = _as_frames(sitk.GetArrayFromImage(image), image.GetSize(), str(path))
    return label_codes(arr[0] if arr.shape[0] == 1 else arr, str(path))


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
    and NRRD keep known frame times exactly in a ``FrameTimes`` field (unknown times are not
    written). The write is atomic and refuses to replace
    an existing file unless ``overwrite``. Only the in-plane part of ``direction`` is kept.
    """
    path = Path(path)
    if not path.name.endswith(ITK_SUFFIXES):
        raise ValueError(f"{path}: unsupported suffix for an ITK image, use one of {ITK_SUFFIXES}")
    data = seq.frames if array is None else np.asarray(array)
    if data.shape not in (seq.frames.shape, seq.frames.shape[1:]):
        raise ValueError(f"{path}: array of shape {data.shape} is not on the sequence grid {seq.frames.shape}")
    image = _to_image(data, seq)
    if data.ndim == 3 and seq.frame_times_known:  # unknown times stay unknown, not frame indices as seconds
        image.SetMetaData(FRAME_TIMES_KEY, " ".join(f"{t:.9g}" for t in seq.frame_times))
    if path.suffix in (".mhd", ".nhdr"):  # header + data file pair: keep final names, move both
        with atomic_output_dir(path, overwrite) as tmp_dir:
            _write_image(image, tmp_dir / path.name, path)
    else:
        with atomic_output(path, overwrite) as tmp:
            _write_image(image, tmp, path, compress=path.name.endswith(".gz"))
    return path
