"""Writing a registration result in formats that Slicer, ITK and NumPy read.

``save_registration(result, seq, folder)`` writes:

* ``warped.seq.nrrd``: the warped frames as a Slicer volume sequence (same geometry and times as
  the input, gzip; open it in Slicer with Add Data).
* ``displacement.npz``: NumPy (compressed): ``displacement`` (T, H, W, 2) float32 mm, ``spacing``
  (sx, sy) mm, ``frame_times`` (T,) s, ``reference`` index, ``no_signal`` (T,) bool (frames
  without information, whose field is interpolated), ``convention`` text, ``spacing_known`` and
  ``frame_times_known`` (False: the spacing is a placeholder, so the mm are pixels times it; the
  times are frame indices).
* ``report.json``: settings, device, timing, per-frame quality and warnings, ``spacing_known`` and
  ``frame_times_known``.
* only with ``itk_fields=True`` (``echoreg register --itk-fields``):
  ``fields/displacement_tNNN.mha``, one compressed ITK displacement field per frame: a single-slice
  3D image with 3-component float64 vectors in LPS mm on the reference frame's grid
  (fixed-to-moving, as ITK's ``DisplacementFieldTransform`` and Slicer's grid transforms expect).
  ``SimpleITK.ReadImage`` + ``DisplacementFieldTransform`` reads it; Slicer loads it as a
  transform. They are large (2.3 MB a frame of 480 x 560 compressed, 6.4 MB raw), so not written by
  default.

The whole set is written at once (:func:`..io.atomic.atomic_output_set`): a failure or Ctrl-C
leaves the folder as it was; existing files are only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_output_set, check_output_folder
from ..io.seqnrrd import write_seq_nrrd
from ..sequence import EchoSequence
from .tracking import RegistrationResult

CONVENTION = ("displacement on the reference frame grid in mm, components (x, y) = (column, row); "
              "reference point p is at p + u(p) in frame t (ITK / Slicer resampling convention)")


def displacement_to_itk(field: np.ndarray, seq: EchoSequence) -> sitk.Image:
    """An ITK displacement field image of one (H, W, 2) mm field on ``seq``'s grid: a single-slice
    3D image of LPS vectors (the in-plane components rotated by the frame's direction)."""
    vectors = field[..., 0, None] * seq.direction[:, 0] + field[..., 1, None] * seq.direction[:, 1]
    image = sitk.GetImageFromArray(vectors[None].astype(np.float64), isVector=True)
    image.SetSpacing((*seq.spacing, seq.slice_spacing))
    image.SetOrigin(tuple(seq.origin))
    image.SetDirection(tuple(seq.direction.ravel()))
    return image


def output_names(seq: EchoSequence, itk_fields: bool = False) -> list[str]:
    """The files :func:`save_registration` writes for ``seq``, relative to its folder: warped
    sequence, NumPy fields, report, then (``itk_fields``) one ITK field per frame."""
    fields = [f"fields/displacement_t{t:03d}.mha" for t in range(seq.n_frames)] if itk_fields else []
    return ["warped.seq.nrrd", "displacement.npz", "report.json", *fields]


def check_outputs(seq: EchoSequence, folder: str | os.PathLike, overwrite: bool = False,
                  itk_fields: bool = False) -> None:
    """Check before the work that the outputs can be written into ``folder``.

    Raises:
        FileExistsError: an output would replace an existing file without ``overwrite``.
        NotADirectoryError, PermissionError: the folder cannot be created or written.
    """
    check_output_folder(folder, output_names(seq, itk_fields), overwrite)


def save_registration(result: RegistrationResult, seq: EchoSequence, folder: str | os.PathLike, *,
                      overwrite: bool = False, itk_fields: bool = False) -> list[Path]:
    """Write ``result`` (computed on ``seq``) into ``folder`` as one set (see the module docstring);
    returns the files written. Raises as :func:`check_outputs`, before writing anything."""
    names = output_names(seq, itk_fields)
    with atomic_output_set(folder, names, overwrite) as tmp:
        warped = dataclasses.replace(seq, frames=result.warped, labels=None, label_frames=None,
                                     metadata={**seq.metadata, "source": str(Path(folder) / names[0]),
                                               "registration": result.method})
        write_seq_nrrd(warped, tmp / names[0])
        np.savez_compressed(tmp / names[1], displacement=result.displacement,
                            spacing=np.asarray(seq.spacing), frame_times=seq.frame_times,
                            reference=result.reference, no_signal=result.no_signal,
                            convention=CONVENTION, spacing_known=seq.spacing_known,
                            frame_times_known=seq.frame_times_known)
        report = {"input": seq.source, "n_frames": seq.n_frames, "spacing_mm": list(seq.spacing),
                  "spacing_known": seq.spacing_known, "frame_times_known": seq.frame_times_known,
                  "frame_times_s": [round(float(t), 6) for t in seq.frame_times] if seq.frame_times_known else None,
                  "mask_inside_fraction": None if seq.mask is None else round(float(seq.mask.mean()), 6),
                  **result.report()}
        (tmp / names[2]).write_text(json.dumps(report, indent=2) + "\n")
        for t, name in enumerate(names[3:]):
            (tmp / name).parent.mkdir(exist_ok=True)
            sitk.WriteImage(displacement_to_itk(result.displacement[t], seq), str(tmp / name),
                            useCompression=True)
    return [Path(folder) / name for name in names]
