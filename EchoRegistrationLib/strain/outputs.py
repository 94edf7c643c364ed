"""Writing a strain analysis as files a clinician opens: CSV tables, a JSON summary and PNGs.

``write_strain_outputs(seq, registration, myocardium, folder)`` writes into ``folder``:

* ``strain_frames.csv``: one row per frame: time, GLS (endocardial, mid-wall), the six segments,
  LV area and volume;
* ``strain_summary.csv``: measure, region, value, unit: peaks, time to peak, end-systolic strain,
  quality per segment, EDV, ESV, EF (and drift for a full cycle);
* ``strain_summary.json``: the same numbers, the conventions and the registration's method, model,
  licence and refinement (:meth:`StrainResult.summary`);
* ``strain_curves.png``, ``strain_map.png``, ``strain_segments.png``.

Without a pixel size, mm / mm2 / ml values are blank and their names marked; without frame times,
times are blank and curves run over frame indices; every file says which
(``spacing_known`` / ``frame_times_known``, :mod:`.result`).

The set is written at once (:func:`..io.atomic.atomic_output_set`: a failure or Ctrl-C leaves the
folder as it was); existing files are replaced only with ``overwrite=True``, and that is checked
before any work is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io.atomic import atomic_output_set, check_output_folder
from ..registration.tracking import RegistrationResult
from ..sequence import EchoSequence
from .compute import compute_strain
from .figures import save_segment_diagram, save_strain_curves, save_strain_map
from .myocardium import Myocardium
from .result import FRAMES_CSV, SUMMARY_CSV, StrainResult

SUMMARY_JSON = "strain_summary.json"
CURVES_PNG = "strain_curves.png"
MAP_PNG = "strain_map.png"
SEGMENTS_PNG = "strain_segments.png"
OUTPUT_NAMES = (FRAMES_CSV, SUMMARY_CSV, SUMMARY_JSON, CURVES_PNG, MAP_PNG, SEGMENTS_PNG)


def check_strain_outputs(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise FileExistsError when an output would replace an existing file without ``overwrite``,
    NotADirectoryError or PermissionError when the folder cannot be created or written."""
    check_output_folder(folder, OUTPUT_NAMES, overwrite)


def write_strain_outputs(seq: EchoSequence, registration: RegistrationResult,
                         myocardium: Myocardium | None, folder: str | os.PathLike,
                         overwrite: bool = False, *, view: str | None = None,
                         full_cycle: bool | None = None,
                         reference: int | None = None) -> tuple[StrainResult, list[Path]]:
    """Compute the strain of a registered sequence and write the tables, summary and pictures.

    Args:
        seq, registration, myocardium, view, full_cycle, reference: as for
            :func:`~.compute.compute_strain`
            (``myocardium=None``: from the sequence's labels at the reference frame).
        folder: output folder (created when missing).
        overwrite: replace files of an earlier run.

    Returns:
        The :class:`StrainResult` and the written paths (in :data:`OUTPUT_NAMES` order).
    """
    check_strain_outputs(folder, overwrite)
    result = compute_strain(seq, registration, myocardium, view=view, full_cycle=full_cycle,
                            reference=reference)
    return result, save_strain_outputs(result, seq, folder, overwrite)


def save_strain_outputs(result: StrainResult, seq: EchoSequence, folder: str | os.PathLike,
                        overwrite: bool = False) -> list[Path]:
    """Write a computed strain ``result`` of ``seq`` into ``folder`` as one set; returns the paths
    (in :data:`OUTPUT_NAMES` order). Raises as :func:`check_strain_outputs`."""
    folder = Path(folder)
    with atomic_output_set(folder, OUTPUT_NAMES, overwrite) as tmp:
        result.to_csv(tmp)
        (tmp / SUMMARY_JSON).write_text(json.dumps(result.summary(), indent=2) + "\n")
        save_strain_curves(result, tmp / CURVES_PNG)
        save_strain_map(seq, result, tmp / MAP_PNG)
        save_segment_diagram(result, tmp / SEGMENTS_PNG)
    return [folder / name for name in OUTPUT_NAMES]
