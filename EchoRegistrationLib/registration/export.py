"""Writing a registration result in formats that Slicer, ITK and NumPy read.

``save_registration(result, seq, folder)`` writes:

* ``warped.seq.nrrd``: the warped frames as a Slicer volume sequence (same geometry and times as
  the input, gzip; open it in Slicer with Add Data).
* only when the frames were enhanced before registration (``echoreg register --enhance``):
  ``enhanced.seq.nrrd``, the enhanced frames as registered, unwarped, in the same format. A run
  without enhancement that overwrites an earlier one's folder removes that ``enhanced.seq.nrrd``
  (it would otherwise pass for the new run's), and no other file.
* ``displacement.npz``: NumPy (compressed): ``displacement`` (T, H, W, 2) float32 mm, ``spacing``
  (sx, sy) mm, ``frame_times`` (T,) s, ``reference`` index, ``no_signal`` (T,) bool (frames
  without information, whose field is interpolated), ``convention`` text, ``spacing_known`` and
  ``frame_times_known``. Unknown basis is marked, never written as if measured: without a pixel size
  (``spacing_known`` False) ``spacing`` is the placeholder and the field is in its units, not mm (the
  ``convention`` says so); without frame times (``frame_times_known`` False) ``frame_times`` is NaN.
* ``report.json``: settings, device, timing, per-frame quality and warnings, the ``convention`` (the
  same text as the npz's), ``spacing_known``, ``spacing_mm`` (null when unknown; the placeholder is
  then in ``placeholder_spacing``, null when the spacing is known), ``frame_times_known`` and
  ``frame_times_s`` (null when unknown).
* only with ``itk_fields=True`` (``echoreg register --itk-fields``):
  ``fields/displacement_tNNN.mha``, one compressed ITK displacement field per frame: a single-slice
  3D image with 3-component float64 vectors in LPS mm on the reference frame's grid
  (fixed-to-moving, as ITK's ``DisplacementFieldTransform`` and Slicer's grid transforms expect).
  ``SimpleITK.ReadImage`` + ``DisplacementFieldTransform`` reads it; Slicer loads it as a
  transform. They are large (2.3 MB a frame of 480 x 560 compressed, 6.4 MB raw), so not written by
  default. Their ``EchoRegistrationUnits`` header field says "mm", or, without a pixel size, that the
  vectors and the spacing are in the placeholder's units, not mm.

The whole set is written at once (:func:`..io.atomic.atomic_output_set`): a failure or Ctrl-C
leaves the folder as it was; existing files are only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_output_set, check_output_folder
from ..io.seqnrrd import write_seq_nrrd
from ..sequence import EchoSequence
from .tracking import RegistrationResult

CONVENTION = ("displacement on the reference frame grid in mm, components (x, y) = (column, row); "
              "reference point p is at p + u(p) in frame t (ITK / Slicer resampling convention)")
# the same, for a sequence without a physical pixel size (spacing_known False): not mm
CONVENTION_NO_SPACING = CONVENTION.replace(
    "in mm,", "in the units of the placeholder spacing, not mm (pixel size unknown; pixels for the 1 x 1 placeholder),")


def displacement_convention(seq: EchoSequence) -> str:
    """The convention of the fields of ``seq`` as written: :data:`CONVENTION`, or
    :data:`CONVENTION_NO_SPACING` when its pixel size is unknown (a placeholder)."""
    return CONVENTION if seq.spacing_known else CONVENTION_NO_SPACING


def registration_report(result: RegistrationResult, seq: EchoSequence) -> dict[str, Any]:
    """The ``report.json`` of ``result`` computed on ``seq``: what the input was (spacing in mm and
    frame times in s only when the file gave them, else null, with the placeholder spacing named
    so), the convention of the fields, and :meth:`RegistrationResult.report`."""
    known = seq.spacing_known
    return {"input": seq.source, "n_frames": seq.n_frames,
            "spacing_known": known, "spacing_mm": list(seq.spacing) if known else None,
            "placeholder_spacing": None if known else list(seq.spacing),
            "frame_times_known": seq.frame_times_known,
            "frame_times_s": [round(float(t), 6) for t in seq.frame_times] if seq.frame_times_known else None,
            "mask_inside_fraction": None if seq.mask is None else round(float(seq.mask.mean()), 6),
            "convention": displacement_convention(seq), **result.report()}


#: Header field of the ITK field files saying what unit their vectors and spacing are in (MetaImage has no
#: unit field of its own).
UNITS_KEY = "EchoRegistrationUnits"


def displacement_to_itk(field: np.ndarray, seq: EchoSequence) -> sitk.Image:
    """An ITK displacement field image of one (H, W, 2) mm field on ``seq``'s grid: a single-slice
    3D image of LPS vectors (the in-plane components rotated by the frame's direction). Its
    :data:`UNITS_KEY` header field says "mm", or, where ``seq`` has no pixel size, that the vectors
    and the spacing are in the units of the placeholder spacing, not mm."""
    vectors = field[..., 0, None] * seq.direction[:, 0] + field[..., 1, None] * seq.direction[:, 1]
    image = sitk.GetImageFromArray(vectors[None].astype(np.float64), isVector=True)
    image.SetSpacing((*seq.spacing, seq.slice_spacing))
    image.SetOrigin(tuple(seq.origin))
    image.SetDirection(tuple(seq.direction.ravel()))
    image.SetMetaData(UNITS_KEY, "mm" if seq.spacing_known else
                      f"units of the placeholder pixel size {seq.spacing[0]:g} x {seq.spacing[1]:g}, not mm: the "
                      "input records no pixel size")
    return image


WARPED, ENHANCED, DISPLACEMENT, REPORT = "warped.seq.nrrd", "enhanced.seq.nrrd", "displacement.npz", "report.json"


def itk_field_names(seq: EchoSequence) -> list[str]:
    """The ITK field files of ``seq``'s frames, relative to the output folder, in frame order."""
    return [f"fields/displacement_t{t:03d}.mha" for t in range(seq.n_frames)]


def earlier_itk_fields(folder: Path) -> list[str]:
    """The ITK field files (``fields/displacement_tNNN.mha``) an earlier run left in ``folder``,
    relative to it: with ``overwrite``, those the new set does not write (fewer frames, no
    ``itk_fields``) are removed, so that they cannot pass for this run's fields."""
    return [f"fields/{path.name}" for path in sorted((folder / "fields").glob("displacement_t*.mha"))]


def output_names(seq: EchoSequence | None, itk_fields: bool = False, enhanced: bool = False) -> list[str]:
    """The files :func:`save_registration` writes for ``seq``, relative to its folder: warped
    sequence, (``enhanced``) enhanced sequence, NumPy fields, report, then (``itk_fields``) one ITK
    field per frame (``seq`` is needed for those alone: None without them)."""
    return [WARPED, *([ENHANCED] if enhanced else []), DISPLACEMENT, REPORT,
            *(itk_field_names(seq) if itk_fields else [])]


def frames_like(seq: EchoSequence, frames: np.ndarray, path: Path) -> EchoSequence:
    """``seq`` with (T, H, W) float32 ``frames`` instead of its own (same geometry, times, ED / ES,
    mask; no labels), its metadata's ``source`` set to ``path`` (where it is written)."""
    return dataclasses.replace(seq, frames=frames, labels=None, label_frames=None,
                               metadata={**seq.metadata, "source": str(path)})


def check_outputs(seq: EchoSequence, folder: str | os.PathLike, overwrite: bool = False,
                  itk_fields: bool = False, enhanced: bool = False) -> None:
    """Check before the work that the outputs (:func:`output_names`) can be written into ``folder``.

    Raises:
        FileExistsError: an output would replace an existing file without ``overwrite``.
        NotADirectoryError, PermissionError: the folder cannot be created or written.
    """
    check_output_folder(folder, output_names(seq, itk_fields, enhanced), overwrite)


def save_registration(result: RegistrationResult, seq: EchoSequence, folder: str | os.PathLike, *,
                      overwrite: bool = False, itk_fields: bool = False) -> list[Path]:
    """Write ``result`` (computed on ``seq``) into ``folder`` as one set (see the module docstring;
    ``enhanced.seq.nrrd`` when ``result.enhanced`` is set, else, with ``overwrite``, an earlier
    run's ``enhanced.seq.nrrd`` there is removed with the set's commit, as are its ITK field files
    that this set does not write); returns the files written.
    Raises as :func:`check_outputs`, before writing anything."""
    folder = Path(folder)
    names = output_names(seq, itk_fields, result.enhanced is not None)
    stale = [*([] if result.enhanced is not None else [ENHANCED]), *earlier_itk_fields(folder)]
    with atomic_output_set(folder, names, overwrite, stale=stale) as tmp:
        write_seq_nrrd(frames_like(seq, result.warped, folder / WARPED), tmp / WARPED)
        if result.enhanced is not None:
            write_seq_nrrd(frames_like(seq, result.enhanced, folder / ENHANCED), tmp / ENHANCED)
        times = seq.frame_times if seq.frame_times_known else np.full(seq.n_frames, np.nan)  # not indices as s
        np.savez_compressed(tmp / DISPLACEMENT, displacement=result.displacement,
                            spacing=np.asarray(seq.spacing), frame_times=times,
                            reference=result.reference, no_signal=result.no_signal,
                            convention=displacement_convention(seq), spacing_known=seq.spacing_known,
                            frame_times_known=seq.frame_times_known)
        (tmp / REPORT).write_text(json.dumps(registration_report(result, seq), indent=2) + "\n")
        if itk_fields:
            for t, name in enumerate(itk_field_names(seq)):
                (tmp / name).parent.mkdir(exist_ok=True)
                sitk.WriteImage(displacement_to_itk(result.displacement[t], seq), str(tmp / name),
                                useCompression=True)
    return [folder / name for name in names]
