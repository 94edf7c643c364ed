"""One entry point for reading and writing echo sequences, recognising the format by content.

``load_sequence(path)`` reads DICOM ultrasound (single or multi-frame), NIfTI / MetaImage / NRRD
2D+t images, Slicer volume sequences (``.seq.nrrd``), AVI / MP4 videos and CAMUS patient folders.
``save_sequence(seq, path)`` writes ``.seq.nrrd``, ``.nii[.gz]``, ``.mha``/``.mhd`` and ``.nrrd``;
``unwritten(seq, path)`` says what of the sequence that format does not hold.
Label maps and field-of-view masks load from every format that holds exact integers
(:func:`read_label_map`): NIfTI / MetaImage / NRRD, Slicer labelmap sequences, monochrome DICOM.
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

from ..sequence import EchoDataError, EchoSequence, label_codes
from .itk import ITK_SUFFIXES, read_itk_labels, write_itk_image
from .seqnrrd import VIEW_TEXT, is_seq_nrrd, write_seq_nrrd

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
                  mask: str | os.PathLike | np.ndarray | None = None, **options: Any) -> EchoSequence:
    """Load an echo sequence from any supported file or CAMUS patient folder.

    Args:
        path: the file (format recognised from its content) or a CAMUS patient folder.
        labels: optional label file (``*_gt.nii.gz``, a labelmap ``.seq.nrrd`` ...) or array to
            attach, on the same grid.
        mask: optional field-of-view (sector) mask file or (H, W) array on the same grid, nonzero
            inside (:func:`attach_mask`).
        **options: reader options: ``frame_rate`` (frames/s, for a file that records no frame times,
            every format; refused where it contradicts the times a file records, a video container's
            playback rate replaced with a warning: :mod:`.timing`),
            ``crop_to_region`` (DICOM), ``view`` and ``with_labels`` (CAMUS).

    Raises:
        FileNotFoundError; EchoDataError (a ValueError naming the file and the problem), also for an
        option that the detected format does not take, or a ``frame_rate`` that contradicts the file's
        recorded frame times.
    """
    kind = detect_format(path)
    reader = reader_for(kind)
    accepted = [p.name for p in list(inspect.signature(reader).parameters.values())[1:]]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        hint = ("; view (--view) picks the 2CH or 4CH cine of a CAMUS folder; another file's apical view is "
                "--apical-view of echoreg strain" if "view" in unknown else "")
        raise EchoDataError(str(path), f"option(s) {unknown} do not apply to this file, read as {kind} "
                                       f"(it takes {accepted or 'no options'}{hint})")
    seq = reader(Path(path), **options)
    seq = seq if labels is None else attach_labels(seq, labels)
    return seq if mask is None else attach_mask(seq, mask)


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """uint8 codes of a label map file: (T, H, W), or (H, W) for a single frame.

    Formats: NIfTI, MetaImage and NRRD in any layout :func:`.itk.read_itk_image` reads, Slicer
    labelmap (or scalar) volume sequences ``.seq.nrrd``, and MONOCHROME2 DICOM: those that hold
    the codes exactly.

    Raises:
        FileNotFoundError: no such file.
        EchoDataError: naming the file: a video, CAMUS folder, colour or MONOCHROME1 DICOM (no exact
            codes), non-integer codes or codes outside 0..255.
    """
    kind = detect_format(path)
    if kind == "itk":
        return read_itk_labels(path)
    if kind not in ("seqnrrd", "dicom"):
        raise EchoDataError(str(path), f"a label map cannot be read from a {kind} input: use NIfTI, "
                                       "MetaImage, NRRD, a labelmap .seq.nrrd or monochrome DICOM")
    seq = reader_for(kind)(Path(path))
    photometric = seq.metadata.get("photometric_interpretation", "MONOCHROME2")
    if photometric != "MONOCHROME2":
        raise EchoDataError(str(path), f"a {photometric} DICOM does not hold label codes (need MONOCHROME2)")
    return label_codes(seq.frames[0] if seq.n_frames == 1 else seq.frames, str(path))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """(H, W) bool field-of-view mask from a file of any :func:`read_label_map` format, nonzero
    inside; a (T, H, W) file must hold the same mask on every frame.

    Raises:
        EchoDataError: naming the file: as :func:`read_label_map`, or the mask changes between frames.
    """
    codes = read_label_map(path)
    if codes.ndim == 3:
        changed = [k for k in range(1, codes.shape[0]) if not np.array_equal(codes[k] != 0, codes[0] != 0)]
        if changed:
            raise EchoDataError(str(path), f"the mask differs between frames (frame {changed[0]} from frame "
                                           "0); give one (H, W) field-of-view mask")
        codes = codes[0]
    return codes != 0


def attach_labels(seq: EchoSequence, labels: str | os.PathLike | np.ndarray,
                  label_frames: tuple[int, ...] | None = None) -> EchoSequence:
    """A copy of ``seq`` with ``labels`` (a label file or a (T, H, W) / (H, W) array) attached.

    Raises:
        EchoDataError: naming the label file when its grid does not match the sequence.
    """
    array = labels if isinstance(labels, np.ndarray) else read_label_map(labels)
    return _replaced(seq, labels, "labels array", labels=array, label_frames=label_frames)


def attach_mask(seq: EchoSequence, mask: str | os.PathLike | np.ndarray) -> EchoSequence:
    """A copy of ``seq`` with the field-of-view ``mask`` (a :func:`read_mask` file or an (H, W)
    array, nonzero inside) attached.

    Raises:
        EchoDataError: naming the mask file when it is unreadable, empty or not on the frame grid.
    """
    array = mask if isinstance(mask, np.ndarray) else read_mask(mask)
    return _replaced(seq, mask, "mask array", mask=array)


def _replaced(seq: EchoSequence, given: str | os.PathLike | np.ndarray, array_name: str,
              **changes: Any) -> EchoSequence:
    """``dataclasses.replace(seq, **changes)``, an error in it naming the file ``given`` (or
    ``array_name`` for an array)."""
    try:
        return dataclasses.replace(seq, **changes)
    except EchoDataError as err:
        source = array_name if isinstance(given, np.ndarray) else str(given)
        raise EchoDataError(source, err.problem) from None


def _written_format(path: Path) -> str:
    """The format :func:`save_sequence` writes to ``path``, by its suffix: "seqnrrd", "nifti" or "itk"
    (MetaImage, NRRD).

    Raises:
        EchoDataError: a suffix of none of them.
    """
    if path.name.endswith(".seq.nrrd"):
        return "seqnrrd"
    if path.name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if path.name.endswith(ITK_SUFFIXES):
        return "itk"
    raise EchoDataError(str(path), f"cannot write this format; use .seq.nrrd, {', '.join(ITK_SUFFIXES)}")


def unwritten(seq: EchoSequence, path: str | os.PathLike) -> dict[str, str]:
    """What of ``seq`` a file at ``path`` (the format :func:`save_sequence` writes there) does not hold, by
    ``seq``'s attribute ("labels", "mask", "frame_times", "spacing", "ed_index", "es_index", "view"), each as a
    phrase naming it and its value; empty when the file holds all of them. No format holds labels or a mask;
    ``.seq.nrrd`` holds the rest (a view of plain ASCII name characters only); MetaImage and NRRD hold the
    frame times, but not an unknown pixel size (their readers take the placeholder as the size), ED, ES or the
    view; NIfTI neither holds the frame times (only their mean interval, which is not read back as time).

    Raises:
        EchoDataError: a suffix :func:`save_sequence` does not write.
    """
    kind, name = _written_format(Path(path)), str(path)
    held: dict[str, str] = {}
    if seq.labels is not None:
        count = len(seq.label_frames)
        held["labels"] = f"the labels ({count} labelled frame{'s' if count != 1 else ''})"
    if seq.mask is not None:
        held["mask"] = "the field-of-view mask"
    view = str(seq.metadata.get("view") or "").strip()
    if kind == "seqnrrd":
        if view and not VIEW_TEXT.fullmatch(view):
            held["view"] = f"the view {view!r} (a .seq.nrrd holds a view of plain ASCII name characters only)"
        return {key: f"{name} does not hold {phrase}" for key, phrase in held.items()}
    if kind == "nifti" and seq.frame_times_known:
        held["frame_times"] = (f"the frame times ({seq.frame_times[0]:.4g} .. {seq.frame_times[-1]:.4g} s; only "
                               f"their mean interval, which is not read back as time)")
    if not seq.spacing_known:
        held["spacing"] = (f"that the pixel size is unknown (the placeholder {seq.spacing[0]:g} x "
                           f"{seq.spacing[1]:g} mm is written as the pixel size)")
    if seq.ed_index is not None:
        held["ed_index"] = f"ED (frame {seq.ed_index})"
    if seq.es_index is not None:
        held["es_index"] = f"ES (frame {seq.es_index}{', set by the user' if seq.es_set_by_user else ''})"
    if view:
        held["view"] = f"the view ({view})"
    return {key: f"{name} does not hold {phrase}" for key, phrase in held.items()}


def save_sequence(seq: EchoSequence, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``seq`` to ``path``; the format follows the suffix (``.seq.nrrd`` keeps exact times, the
    full geometry, ED, ES and the view; ``.mha``/``.mhd``/``.nrrd`` keep exact times; ``.nii[.gz]`` the mean
    frame interval only; none keeps labels or a mask: :func:`unwritten` names what a format leaves out).
    Atomic; never replaces an existing file unless ``overwrite``, and never the file the sequence was read
    from.

    Raises:
        EchoDataError: a suffix of none of these formats; FileExistsError: as said above.
    """
    path = Path(path)
    kind = _written_format(path)
    source = seq.metadata.get("source")
    if source and path.exists() and Path(source).exists() and path.resolve() == Path(source).resolve():
        raise FileExistsError(f"{path}: refusing to overwrite the file this sequence was read from")
    if kind == "seqnrrd":
        return write_seq_nrrd(seq, path, overwrite=overwrite)
    return write_itk_image(seq, path, overwrite=overwrite)
