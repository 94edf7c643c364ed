"""One entry point for reading and writing echo sequences, recognising the format by content.

``load_sequence(path)`` reads DICOM ultrasound (single or multi-frame), NIfTI / MetaImage / NRRD
2D+t images, Slicer volume sequences (``.seq.nrrd``), AVI / MP4 videos and CAMUS patient folders.
``save_sequence(seq, path)`` writes ``.seq.nrrd``, ``.nii[.gz]``, ``.mha``/``.mhd`` and ``.nrrd``.
"""

from __future__ import annotations

import dataclasses
import gzip
import inspect
import os
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..sequence import EchoDataError, EchoSequence
from .itk import ITK_SUFFIXES, read_itk_labels, write_itk_image
from .seqnrrd import is_seq_nrrd, write_seq_nrrd

# Format -> (module of this package, reader). Modules are imported when a file needs them: the
# DICOM and video readers need pydicom 3 and OpenCV, which 3D Slicer's Python may lack.
READERS: dict[str, tuple[str, str]] = {
    "camus": ("camus", "load_camus_patient"),
    "dicom": ("dicom", "read_dicom"),
    "itk": ("itk", "read_itk_image"),
    "seqnrrd": ("seqnrrd", "read_seq_nrrd"),
    "video": ("video", "read_video"),
}


def reader_for(kind: str) -> Callable[..., EchoSequence]:
    """The reader function of a format name of :data:`READERS`."""
    module, name = READERS[kind]
    return getattr(import_module(f".{module}", __package__), name)


def _is_nifti_header(head: bytes) -> bool:
    sizes = {int.from_bytes(head[:4], order) for order in ("little", "big")}
    return bool(sizes & {348, 540})


def detect_format(path: str | os.PathLike) -> str:
    """The reader for ``path`` by content: ``camus`` (a patient folder), ``dicom``, ``seqnrrd``,
    ``itk`` (NIfTI, MetaImage, plain NRRD) or ``video``.

    Raises:
        FileNotFoundError: no such file or folder.
        EchoDataError: the content is none of the supported formats.
    """
    path = Path(path)
    if path.is_dir():
        return "camus"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                inner = f.read(352)
        except (OSError, EOFError):
            raise EchoDataError(str(path), "gzip-compressed file that cannot be decompressed") from None
        if _is_nifti_header(inner):
            return "itk"
        raise EchoDataError(str(path), "gzip-compressed file that is not NIfTI")
    if head[:4] == b"NRRD":
        return "seqnrrd" if is_seq_nrrd(path) else "itk"
    if len(head) >= 348 and (_is_nifti_header(head) or head[344:348] in (b"n+1\0", b"ni1\0")):
        return "itk"
    if head.lstrip().startswith((b"ObjectType", b"NDims")):
        return "itk"
    from .video import is_video

    if is_video(path):
        return "video"
    from .dicom import is_dicom

    if is_dicom(path):
        return "dicom"
    raise EchoDataError(str(path), "unrecognised content: not DICOM, NIfTI, MetaImage, NRRD, "
                                   ".seq.nrrd, AVI/MP4 video, nor a CAMUS patient folder")


def load_sequence(path: str | os.PathLike, *, labels: str | os.PathLike | np.ndarray | None = None,
                  **options: Any) -> EchoSequence:
    """Load an echo sequence from any supported file or CAMUS patient folder.

    Args:
        path: the file (format recognised from its content) or a CAMUS patient folder.
        labels: optional label file (``*_gt.nii.gz`` ...) or array to attach, on the same grid.
        **options: reader options: ``frame_rate`` (NIfTI / NRRD / video without times),
            ``crop_to_region`` (DICOM), ``view`` and ``with_labels`` (CAMUS).

    Raises:
        FileNotFoundError; EchoDataError (a ValueError naming the file and the problem), also for an
        option that the detected format does not take.
    """
    kind = detect_format(path)
    reader = reader_for(kind)
    accepted = [p.name for p in list(inspect.signature(reader).parameters.values())[1:]]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EchoDataError(str(path), f"option(s) {unknown} do not apply to a {kind} input "
                                       f"(it takes {accepted or 'no options'})")
    seq = reader(Path(path), **options)
    return seq if labels is None else attach_labels(seq, labels)


def attach_labels(seq: EchoSequence, labels: str | os.PathLike | np.ndarray,
                  label_frames: tuple[int, ...] | None = None) -> EchoSequence:
    """A copy of ``seq`` with ``labels`` (a label file or a (T, H, W) / (H, W) array) attached.

    Raises:
        EchoDataError: naming the label file when its grid does not match the sequence.
    """
    array = labels if isinstance(labels, np.ndarray) else read_itk_labels(labels)
    try:
        return dataclasses.replace(seq, labels=array, label_frames=label_frames)
    except EchoDataError as err:
        source = "labels array" if isinstance(labels, np.ndarray) else str(labels)
        raise EchoDataError(source, err.problem) from None


def save_sequence(seq: EchoSequence, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``seq`` to ``path``; the format follows the suffix (``.seq.nrrd`` keeps exact times and
    the full geometry; ``.mha``/``.mhd`` keep exact times; ``.nii[.gz]``/``.nrrd`` keep the mean frame
    interval only). Atomic; never replaces an existing file unless ``overwrite``, and never the file
    the sequence was read from.
    """
    path = Path(path)
    source = seq.metadata.get("source")
    if source and path.exists() and Path(source).exists() and path.resolve() == Path(source).resolve():
        raise FileExistsError(f"{path}: refusing to overwrite the file this sequence was read from")
    if path.name.endswith(".seq.nrrd"):
        return write_seq_nrrd(seq, path, overwrite=overwrite)
    if path.name.endswith(ITK_SUFFIXES):
        return write_itk_image(seq, path, overwrite=overwrite)
    raise ValueError(f"{path}: cannot write this format; use .seq.nrrd, {', '.join(ITK_SUFFIXES)}")
