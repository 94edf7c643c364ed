"""The cohort table: one row per study, from the ``study.json`` each committed study folder holds.

Columns (:data:`COLUMNS`, units in the names; blank = unknown or not measured):

=====================  ===================================================================
study, input           the study id (its output folder) and the input read
status, error          "ok" or "error", and the error's one line (blank when ok)
gls_endo_pct           peak systolic GLS of the endocardial contour, % (ED to ES)
gls_mid_pct            the same for the mid-wall contour, %
segment_1..6_pct       peak systolic segmental strain, %, in contour order (first wall basal
                       -> apical, second wall apical -> basal); ``segments`` names them
ef_pct                 ejection fraction, % (single-plane method of discs; a ratio)
edv_ml, esv_ml         volumes, ml; blank when the file gives no pixel size
quality                mean segment tracking quality score, 0..1
unreliable_segments    segments whose quality score is below 0.1 (0..6): GLS and EF include
                       them, so a row with any is to be read with care
drift_mm               loop-closure drift, mm; blank unless the cine is a full cycle (ES between
                       ED and the last frame) with a known pixel size
frames, ed_frame, es_frame, ed_source, es_source    the frames and how ED and ES were established
                       (given by the file, set by the user, or detected; es_source blank in
                       rows written before it existed)
frame_times_source     where the study's frame times came from, as its reader records it
                       (``metadata["frame_times_source"]``): what the file records them in, or
                       "frame_rate argument (N frames/s)" (the listing's ``frame_rate`` or
                       ``--frame-rate``); blank: the times are unknown (the strain curves' time
                       axis is then frame numbers); "not recorded (...)" in an ok row written before
                       the column existed. Studies timed by different rates show it here
method, model, device  how it was registered ("model": DLIR model name or path)
refine, licence        DLIR only: the optimisation steps refining the network (0: the network
                       alone) and the terms of the model's weights (blank: not DLIR)
anchor_frame           DLIR to the reference: the systole anchor frame the registration went
                       through (blank: every frame registered directly, as without ES in the
                       file or the listing, from the chained start, or not DLIR): rows with and
                       without one were tracked differently
refine_start           DLIR refined to the reference: the start its refinement kept, "direct" (the
                       network's field of each frame) or "chained" (each frame from the previous
                       one's refined field; registration.tracking.REFINE_STARTS); blank: not
                       refined, not DLIR, or a row written before the column existed
network_precision      DLIR: the precision its networks ran in: bfloat16 where the node's CPU has
                       AMX (or on CUDA), float32 elsewhere and with --float32 (blank: not DLIR,
                       or a row written before the column existed). Fields differ by about
                       0.1 mm between the two with the default refinement (docs/generalisation.md, "Speed
                       on the CPU"): a cohort run on mixed nodes is to be run with --float32
seconds                wall time of the study, s (registration + strain + files)
warnings               what the numbers of an ok study must be read with, joined by " | ":
                       the input's caveats (placeholder pixel size, missing frames, coloured
                       pixels), the registration's (frames it made less similar) and the
                       strain's (detected ED, unreliable segments); blank when none. A
                       placeholder pixel size is named twice: by the registration (its mm)
                       and by the strain (its areas and volumes)
=====================  ===================================================================

Values are rounded (strain, EF, volumes to 0.001, quality to 0.0001, drift to 0.001 mm) so that
the table does not depend on where a study ran, as long as its networks ran in the same precision
(``network_precision``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_output

STUDY_JSON = "study.json"
COHORT_CSV = "cohort.csv"
COHORT_PARQUET = "cohort.parquet"
SEGMENT_COLUMNS = tuple(f"segment_{k}_pct" for k in range(1, 7))
COLUMNS = ("study", "input", "status", "error", "gls_endo_pct", "gls_mid_pct", *SEGMENT_COLUMNS,
           "segments", "ef_pct", "edv_ml", "esv_ml", "quality", "unreliable_segments", "drift_mm", "frames", "ed_frame",
           "es_frame", "ed_source", "es_source", "frame_times_source", "method", "model", "refine", "anchor_frame",
           "refine_start", "licence", "device", "network_precision", "seconds", "warnings")
WARNING_SEPARATOR = " | "
# Columns that a blank cell of an ok row would misread as "none" or "unknown" in rows written before they existed.
MARKED_WHEN_ABSENT = ("warnings", "frame_times_source")


def not_recorded(column: str) -> str:
    """The cell of ``column`` (one of :data:`MARKED_WHEN_ABSENT`) in an ok row written before it existed."""
    return f"not recorded (the study ran before the {column} column existed)"


NOT_RECORDED = not_recorded("warnings")
# Columns that depend on where and when a study ran, not on the study.
RUN_COLUMNS = ("seconds",)


def _rounded(value: Any, digits: int = 3) -> float | None:
    """``value`` rounded, or None when unknown (None or NaN)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def study_row(study_id: str, input_: str, analysis: Any, settings: Any, seconds: float,
              input_warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The cohort row of a finished :class:`~..workflow.Analysis` (with strain) of one study;
    ``input_warnings``: the caveats raised while reading it (:class:`~..sequence.EchoDataWarning`)."""
    strain, registration, sequence = analysis.strain, analysis.registration, analysis.sequence
    summary = strain.summary()
    peaks = strain.peaks()
    row: dict[str, Any] = {
        "study": study_id, "input": input_, "status": "ok", "error": "",
        "gls_endo_pct": _rounded(peaks["GLS endocardial"]["peak_pct"]),
        "gls_mid_pct": _rounded(peaks["GLS mid-wall"]["peak_pct"]),
        **{column: _rounded(peaks[name]["peak_pct"]) for column, name in zip(SEGMENT_COLUMNS, strain.segment_names)},
        "segments": "; ".join(strain.segment_names),
        "ef_pct": _rounded(strain.ef), "edv_ml": _rounded(strain.edv), "esv_ml": _rounded(strain.esv),
        "quality": _rounded(summary["quality"]["mean_score"], 4),
        "unreliable_segments": len(strain.unreliable_segments()),
        "drift_mm": _rounded(summary["quality"]["drift_mm"]),
        "frames": sequence.n_frames, "ed_frame": strain.frames.ed, "es_frame": strain.frames.es,
        "ed_source": strain.frames.ed_source, "es_source": strain.frames.es_source,
        "frame_times_source": sequence.metadata.get("frame_times_source") if sequence.frame_times_known else None,
        "method": registration.method,
        "model": settings.describe_model(), "refine": settings.arguments().get("refine"),
        "anchor_frame": registration.parameters.get("anchor_frame"),
        "refine_start": registration.parameters.get("refine_start_used"),
        "licence": registration.parameters.get("licence"), "device": registration.device,
        "network_precision": registration.parameters.get("network_precision"),
        "seconds": round(seconds, 2),
        "warnings": WARNING_SEPARATOR.join(" ".join(line.split()) for line in
                                           [*input_warnings, *registration.warnings, *strain.warnings()]) or None,
    }
    return {column: row.get(column) for column in COLUMNS}


def error_row(study_id: str, input_: str, error: str, settings: Any, seconds: float) -> dict[str, Any]:
    """The cohort row of a study that failed: its error, the settings, blank measurements."""
    from ..dlir.shipped import licence_of

    model = settings.describe_model()
    row = {"study": study_id, "input": input_, "status": "error", "error": error,
           "method": settings.method, "model": model, "refine": settings.arguments().get("refine"),
           "licence": licence_of(model) if model else None, "device": _device_name(settings.device),
           "seconds": round(seconds, 2)}
    return {column: row.get(column) for column in COLUMNS}


def _device_name(device: str) -> str:
    """The device a study runs on, as an ok row names it ("auto" resolved: "cpu" or "cuda")."""
    from ..device import resolve_device

    return str(resolve_device(device)) if device == "auto" else device


def read_row(folder: Path) -> dict[str, Any] | None:
    """The row a committed study folder holds, or None when the folder is not committed. An ok row
    written before a column of :data:`MARKED_WHEN_ABSENT` says that it was not recorded (blank would read
    as "no warnings" or "unknown frame times")."""
    try:
        row = json.loads((folder / STUDY_JSON).read_text())
    except FileNotFoundError:
        return None
    for column in MARKED_WHEN_ABSENT:
        if column not in row:
            row[column] = not_recorded(column) if row.get("status") == "ok" else None
    return row


def write_cohort_table(rows: list[dict[str, Any]], output: str | os.PathLike) -> list[Path]:
    """Write ``rows`` as ``cohort.csv`` (blank cells for None) and, when pyarrow is installed,
    ``cohort.parquet`` (nulls) in ``output``, each replaced atomically (the table is derived from
    the study folders and rebuilt by every run). Returns the written paths."""
    output = Path(output)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    with atomic_output(output / COHORT_CSV, overwrite=True) as tmp:
        tmp.write_text(text.getvalue())
    written = [output / COHORT_CSV]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    table = pa.Table.from_pylist(rows, schema=_parquet_schema(pa))
    with atomic_output(output / COHORT_PARQUET, overwrite=True) as tmp:
        pq.write_table(table, tmp)
    return [*written, output / COHORT_PARQUET]


def _parquet_schema(pa: Any) -> Any:
    """Column types of the Parquet table: text, whole numbers, or floats."""
    text = {"study", "input", "status", "error", "segments", "ed_source", "es_source", "frame_times_source", "method",
            "model", "refine_start", "licence", "device", "network_precision", "warnings"}
    whole = {"frames", "ed_frame", "es_frame", "refine", "anchor_frame", "unreliable_segments"}
    return pa.schema([(c, pa.string() if c in text else pa.int64() if c in whole else pa.float64())
                      for c in COLUMNS])
