"""The strain analysis of one sequence: curves, segments, maps, volumes, quality; tables and JSON.

Sign and reference (EACVI/ASE/Industry task force, Voigt et al. 2015): Lagrangian strain relative
to the reference (ED) frame, in %, negative for shortening. The peak of a curve is its sample of
largest magnitude (sign kept); time to peak is measured from ED. End-systolic strain is the value
at the ES frame.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_output, check_writable
from .contours import signed_peak
from .myocardium import Myocardium
from .quality import SegmentQuality
from .tensors import green_lagrange_from_engineering
from .volumes import N_DISCS, ejection_fraction

# Display: longitudinal strain maps and the segment diagram show -30 % (red, shortening) to +30 %
# (blue, lengthening) in full colour, in the matplotlib figures and in Slicer alike.
LONGITUDINAL_RANGE = 30.0

FRAMES_CSV = "strain_frames.csv"
SUMMARY_CSV = "strain_summary.csv"
CONVENTION = ("Lagrangian strain relative to the reference (ED) frame in %, negative = shortening "
              "(EACVI/ASE/Industry standard); segments are thirds of each wall's ED arc length, the "
              "first wall (basal -> apical) is the one on the image left")


@dataclass(eq=False)
class StrainResult:
    """Strain, volumes and tracking quality of a registered apical sequence.

    Attributes:
        view: "A4C", "A2C" or None (segments then get side names).
        segment_names: the six names, first wall basal -> apical, second apical -> basal.
        reference, ed_index, es_index: frames: strain reference, ED (EDV, time zero), ES (ESV,
            end-systolic strain); ``es_source`` says whether ES came from the sequence or is the
            frame of smallest volume.
        frame_times: (T,) s.
        gls_endo, gls_mid: (T,) % global longitudinal strain of the endocardial and mid-wall
            contours.
        segmental: (T, 6) % length strain of the six endocardial segments.
        endo_contour, mid_contour: (T, N, 2) mm tracked material contours.
        longitudinal_map, transverse_map: (T, H, W) float32 % engineering strain along and across
            the wall on the reference grid, NaN outside the myocardium.
        lv_area: (T,) mm^2 cavity area; lv_volume: (T,) ml single-plane method of discs.
        quality: per-segment :class:`SegmentQuality`.
        full_cycle: whether the last frame is the next ED (drift then applies).
        drift_mm: mean |u| over the myocardium at the last frame (NaN unless ``full_cycle``).
        myocardium: the reference-frame region and contours.
        seconds: wall time of the analysis.
    """

    view: str | None
    segment_names: tuple[str, ...]
    reference: int
    ed_index: int
    es_index: int
    es_source: str
    frame_times: np.ndarray
    gls_endo: np.ndarray
    gls_mid: np.ndarray
    segmental: np.ndarray
    endo_contour: np.ndarray
    mid_contour: np.ndarray
    longitudinal_map: np.ndarray
    transverse_map: np.ndarray
    lv_area: np.ndarray
    lv_volume: np.ndarray
    quality: SegmentQuality
    full_cycle: bool
    drift_mm: float
    myocardium: Myocardium
    seconds: float

    # ------------------------------------------------------------------ derived numbers
    @property
    def time_from_ed(self) -> np.ndarray:
        """(T,) s relative to the ED frame."""
        return self.frame_times - self.frame_times[self.ed_index]

    @property
    def edv(self) -> float:
        return float(self.lv_volume[self.ed_index])

    @property
    def esv(self) -> float:
        return float(self.lv_volume[self.es_index])

    @property
    def ef(self) -> float:
        """% ejection fraction 100 (EDV - ESV) / EDV."""
        return ejection_fraction(self.edv, self.esv)

    def curves(self) -> dict[str, np.ndarray]:
        """{name: (T,) %}: "GLS endocardial", "GLS mid-wall" and the six segments."""
        out = {"GLS endocardial": self.gls_endo, "GLS mid-wall": self.gls_mid}
        out.update({name: self.segmental[:, k] for k, name in enumerate(self.segment_names)})
        return out

    def peaks(self) -> dict[str, dict[str, float]]:
        """{curve name: {"peak_pct", "time_to_peak_s", "end_systolic_pct"[, "drift_pct"]}}."""
        out = {}
        for name, curve in self.curves().items():
            value, frame = signed_peak(curve)
            entry = {"peak_pct": value, "time_to_peak_s": float(self.time_from_ed[frame]),
                     "end_systolic_pct": float(curve[self.es_index])}
            if self.full_cycle:
                entry["drift_pct"] = float(curve[-1])
            out[name] = entry
        return out

    def green_lagrange_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(longitudinal, transverse) Green-Lagrange strain maps in %, each (T, H, W)."""
        return tuple(100.0 * green_lagrange_from_engineering(m / 100.0)
                     for m in (self.longitudinal_map, self.transverse_map))

    # ------------------------------------------------------------------ reports
    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: frames, peaks, volumes, quality and conventions."""
        peaks = self.peaks()
        q = self.quality
        segments = [{"name": name, **peaks[name],
                     "quality_score": float(q.score[k]), "ncc": float(q.similarity[k]),
                     "folding_fraction": float(q.folding[k]), "jitter_pct": float(q.jitter[k])}
                    for k, name in enumerate(self.segment_names)]
        return {
            "view": self.view, "frames": len(self.frame_times), "reference_frame": self.reference,
            "ed_frame": self.ed_index, "es_frame": self.es_index, "es_frame_source": self.es_source,
            "full_cycle": self.full_cycle, "myocardium_source": self.myocardium.source,
            "gls_endocardial": peaks["GLS endocardial"], "gls_mid_wall": peaks["GLS mid-wall"],
            "segments": segments,
            "volumes": {"edv_ml": self.edv, "esv_ml": self.esv, "ef_pct": self.ef,
                        "method": f"single-plane method of discs ({N_DISCS} discs)"},
            "quality": {"mean_score": float(np.mean(q.score)),
                        "drift_mm": self.drift_mm if self.full_cycle else None},
            "seconds": round(self.seconds, 4),
            "convention": CONVENTION,
        }

    def frame_table(self) -> tuple[list[str], list[list[float]]]:
        """Header and one row per frame: frame, times, GLS, each segment, area, volume."""
        header = ["frame", "time (s)", "time from ED (s)", "GLS endocardial (%)", "GLS mid-wall (%)",
                  *(f"{name} (%)" for name in self.segment_names), "LV area (mm2)", "LV volume (ml)"]
        columns = [np.arange(len(self.frame_times)), self.frame_times, self.time_from_ed,
                   self.gls_endo, self.gls_mid, *self.segmental.T, self.lv_area, self.lv_volume]
        return header, [list(row) for row in zip(*columns)]

    def summary_table(self) -> list[list[Any]]:
        """Rows (measure, region, value, unit): peaks, time to peak, end-systolic strain (and
        drift) per curve; quality per segment; ED/ES frames, EDV, ESV, EF."""
        rows: list[list[Any]] = []
        for name, entry in self.peaks().items():
            rows += [["peak strain", name, entry["peak_pct"], "%"],
                     ["time to peak", name, entry["time_to_peak_s"], "s"],
                     ["end-systolic strain", name, entry["end_systolic_pct"], "%"]]
            if self.full_cycle:
                rows.append(["drift at end of cycle", name, entry["drift_pct"], "%"])
        q = self.quality
        for k, name in enumerate(self.segment_names):
            rows += [["quality score", name, q.score[k], "0-1"],
                     ["similarity (NCC)", name, q.similarity[k], "-1..1"],
                     ["folding", name, 100.0 * q.folding[k], "%"],
                     ["jitter", name, q.jitter[k], "%"]]
        rows += [["ED frame", "LV", self.ed_index, "index"], ["ES frame", "LV", self.es_index, "index"],
                 ["EDV", "LV", self.edv, "ml"], ["ESV", "LV", self.esv, "ml"], ["EF", "LV", self.ef, "%"]]
        if self.full_cycle:
            rows.append(["loop-closure drift", "myocardium", self.drift_mm, "mm"])
        return rows

    def to_csv(self, folder: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write ``strain_frames.csv`` (one row per frame) and ``strain_summary.csv`` (measure,
        region, value, unit) into ``folder``, atomically; returns their paths."""
        folder = Path(folder)
        header, rows = self.frame_table()
        tables = {FRAMES_CSV: [header, *rows],
                  SUMMARY_CSV: [["measure", "region", "value", "unit"], *self.summary_table()]}
        for name in tables:
            check_writable(folder / name, overwrite)
        paths = []
        for name, table in tables.items():
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(
                [[_cell(v) for v in row] for row in table])
            with atomic_output(folder / name, overwrite) as tmp:
                tmp.write_text(buffer.getvalue())
            paths.append(folder / name)
        return paths


def _cell(value: Any) -> Any:
    """A CSV cell: floats with 6 significant digits, integers and text as they are."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return int(value) if isinstance(value, np.integer) else value
