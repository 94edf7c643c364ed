"""Writing a registration result in formats that Slicer, ITK and NumPy read.

``save_registration(result, seq, folder)`` writes:

* ``warped.seq.nrrd``: the warped frames as a Slicer volume sequence (same geometry and times as
  the input; open it in Slicer with Add Data).
* ``displacement.npz``: NumPy: ``displacement`` (T, H, W, 2) float32 mm, ``spacing`` (sx, sy) mm,
  ``frame_times`` (T,) s, ``reference`` index, ``convention`` text, ``spacing_known`` and
  ``frame_times_known`` (False: the spacing is a placeholder, so the mm are pixels times it; the
  times are frame indices).
* ``fields/displacement_tNNN.mha``: one ITK displacement field per frame: a single-slice 3D image
  with 3-component vectors in LPS mm on the reference frame's grid (fixed-to-moving, as ITK's
  ``DisplacementFieldTransform`` and Slicer's grid transforms expect). ``SimpleITK.ReadImage`` +
  ``DisplacementFieldTransform`` reads it; Slicer loads it as a transform.
* ``report.json``: settings, device, timing, per-frame quality, ``spacing_known`` and
  ``frame_times_known``.

Every file is written atomically; existing files are only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_output, check_writable
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


def output_paths(seq: EchoSequence, folder: str | os.PathLike) -> list[Path]:
    """The files :func:`save_registration` writes for ``seq``: warped sequence, NumPy fields, one
    ITK field per frame, report (in that order)."""
    folder = Path(folder)
    fields = [folder / "fields" / f"displacement_t{t:03d}.mha" for t in range(seq.n_frames)]
    return [folder / "warped.seq.nrrd", folder / "displacement.npz", *fields, folder / "report.json"]


def check_outputs(seq: EchoSequence, folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise FileExistsError when an output would replace an existing file without ``overwrite``."""
    for path in output_paths(seq, folder):
        check_writable(path, overwrite)


def save_registration(result: RegistrationResult, seq: EchoSequence, folder: str | os.PathLike, *,
                      overwrite: bool = False) -> list[Path]:
    """Write ``result`` (computed on ``seq``) into ``folder``; returns the files written."""
    check_outputs(seq, folder, overwrite)  # refuse before writing anything
    targets = output_paths(seq, folder)
    field_paths = targets[2:-1]
    n = seq.n_frames

    warped = dataclasses.replace(seq, frames=result.warped, labels=None, label_frames=None,
                                 metadata={**seq.metadata, "source": str(targets[0]),
                                           "registration": result.method})
    write_seq_nrrd(warped, targets[0], overwrite=overwrite)

    buffer = io.BytesIO()
    np.savez_compressed(buffer, displacement=result.displacement, spacing=np.asarray(seq.spacing),
                        frame_times=seq.frame_times, reference=result.reference, convention=CONVENTION,
                        spacing_known=seq.spacing_known, frame_times_known=seq.frame_times_known)
    with atomic_output(targets[1], overwrite) as tmp:
        tmp.write_bytes(buffer.getvalue())

    for t, path in enumerate(field_paths):
        with atomic_output(path, overwrite) as tmp:
            sitk.WriteImage(displacement_to_itk(result.displacement[t], seq), str(tmp))

    report = {"input": seq.source, "n_frames": n, "spacing_mm": list(seq.spacing),
              "spacing_known": seq.spacing_known, "frame_times_known": seq.frame_times_known,
              "frame_times_s": [round(float(t), 6) for t in seq.frame_times], **result.report()}
    with atomic_output(targets[-1], overwrite) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return targets
