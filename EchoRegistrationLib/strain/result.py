"""The strain analysis of one sequence: curves, segments, maps, volumes, quality; tables and JSON.

Sign and reference (EACVI/ASE/Industry task force, Voigt et al. 2015): Lagrangian strain relative
to the reference (ED) frame, in %, negative for shortening. The peak of a curve is its peak
systolic value: the sample of largest magnitude (sign kept) in systole, ED to ES
(:meth:`~.reference.CardiacFrames.systolic_frames`); time to peak is measured from ED. End-systolic
strain is the value at the ES frame.

Unknown basis (never a silent wrong number): when the file gives no pixel size, areas, volumes
and distances (mm, mm2, ml) are left blank (NaN in arrays and Slicer tables, empty CSV cells,
JSON null) and their names say why; strain and EF are ratios and are reported. When it gives no
frame times, times are blank and curves run over frame indices.

Frames whose field is not a measurement of motion (``unmeasured``: no signal, or unlike the reference
after registration, :func:`..registration.tracking.unmeasured_frames`) are left out of ED / ES
detection and of the peaks; a value read at such a frame (EDV, ESV and EF at an ED or ES the file or the
user put there, end-systolic strain, the drift at the last frame) is left blank, and the warnings say why.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_output, check_writable
from .contours import signed_peak
from .myocardium import Myocardium
from .quality import SegmentQuality
from ..registration.tracking import LOW_SIMILARITY
from .reference import FROM_FILE, FROM_USER, FROM_USER_REFERENCE, CardiacFrames, extreme_volume_frame
from .tensors import green_lagrange_from_engineering
from .volumes import N_DISCS, ejection_fraction

# Display: longitudinal strain maps and the segment diagram show -30 % (red, shortening) to +30 %
# (blue, lengthening) in full colour, in the matplotlib figures and in Slicer alike.
LONGITUDINAL_RANGE = 30.0
QUALITY_WARNING = 0.1  # a segment scoring below this is flagged: its strain is not to be trusted
NO_SPACING = "pixel size unknown"
NO_TIMES = "frame times unknown"
# Segmental strain of motion tracked by a network: on the generalisation benchmark's SIMUS family
# (physics-simulated echo: a wall of speckle alone, no landmark along it; benchmarks/simus_family.py,
# docs/generalisation.md, "The systole anchor as the default", 10 cases) the shipped network registering
# every frame directly to ED left the wall below the apex behind: segment peaks 10.05 points off on average
# refined (11.0 alone), GLS 1.15; through
# the systole anchor (registration.tracking.frame_anchors, the default when ES is known) 3.6 refined (4.6
# alone), GLS 0.4; the optimiser (sequential) 0.86 and 0.55 (8 cases). On the real-template family the
# refined network's segments were 0.4-0.5 points off, alone 1.3-1.5. With the correction stage (2026-11-30,
# seventh session) through the anchor: 3.2 refined (3.6 alone), GLS 0.7 (0.6); real-template 0.38 (0.65).
# Refined by 24 steps with the anatomy maps (the default since 2026-12-01): 3.2 (3.15), GLS 0.75; real-template 0.41.
# With the anatomy network trained 10000 steps (twelfth session's run): 3.1 (3.12), GLS 0.9 (0.88); real-template 0.42.
# The refinement keeping the better of the direct and the chained start (registration.tracking.REFINE_STARTS, the
# default since 2026-12-02; eighteenth session's run): 2.0 refined (3.15 from the direct start), GLS 0.33 (0.86);
# real-template 0.43 either way. Chosen after the refinement's half level (nineteenth session's run): 2.15, GLS 0.40;
# the full level's step at 0.25 pixel (twentieth session's run): 2.11 (3.17 from the direct start), GLS 0.39 (0.85);
# real-template 0.40.
NETWORK_SEGMENTS = ("segmental strain tracked by a network (method dlir) is not validated along the wall: "
                    "on physics-simulated echo the network alone (through the systole anchor) left segment peaks "
                    "3.6 points off on average, the default (refined by 24 steps from the better of two starts) "
                    "2.1, and 3.2 from the direct start alone (GLS 0.6, 0.4 and 0.9; the sequential optimiser 0.8; "
                    "README, Generalisation); for segmental strain use --method deformable")
# the same, for a registration to the reference that went through no systole anchor frame (no ES given after
# the reference, --anchor 0, ...)
NETWORK_SEGMENTS_NO_ANCHOR = ("segmental strain tracked by a network (method dlir) registering every frame directly "
                              "to the reference (no systole anchor frame was used) is not validated along the wall: "
                              "on physics-simulated echo such tracking left segment peaks about 10 points off on "
                              "average (GLS 1.15; docs/generalisation.md, \"The systole anchor as the default\"); for "
                              "segmental strain use --method deformable")
# A user's reference taken as ED is warned of when another frame's tracked LV cavity is larger by more than
# this fraction: the project's margin for tracking noise around ED (single-plane volumes, any unit).
LARGER_CAVITY = 0.05
# EF (%) below which the strain warns that ED and ES show no ejection: the project's threshold, not a
# guideline's. The ASE/EACVI call an EF under 30 % severely abnormal (Lang et al. 2015, Table 2); one under
# 5 % more likely comes from a wrong ED or ES frame, or from tracking that did not follow the wall.
NO_EJECTION_PCT = 5.0

FRAMES_CSV = "strain_frames.csv"
SUMMARY_CSV = "strain_summary.csv"
CONVENTION = ("Lagrangian strain relative to the reference (ED) frame in %, negative = shortening "
              "(EACVI/ASE/Industry standard); segments are thirds of each wall's ED arc length, the "
              "first wall (basal -> apical) is the one on the image left")


def percent_text(value: float, digits: int = 1) -> str:
    """A strain in %, sign shown ("-18.6 %"), or "not measured" for NaN (:meth:`StrainResult.peaks`)."""
    return f"{value:+.{digits}f} %" if np.isfinite(value) else "not measured"


@dataclass(eq=False)
class StrainResult:
    """Strain, volumes and tracking quality of a registered apical sequence.

    Attributes:
        view: "A4C", "A2C" or None (segments then get side names).
        segment_names: the six names, first wall basal -> apical, second apical -> basal.
        frames: ED (EDV, time zero), ES (ESV, end-systolic strain) and the strain reference, with
            how each was established (:class:`~.reference.CardiacFrames`).
        tracked_from: the registration reference, where the myocardium was drawn.
        frame_times: (T,) s (frame indices when ``frame_times_known`` is False).
        spacing_known, frame_times_known: whether the file gave the pixel size and frame times;
            without them mm / ml values and times are reported blank.
        gls_endo, gls_mid: (T,) % global longitudinal strain of the endocardial and mid-wall
            contours.
        segmental: (T, 6) % length strain of the six endocardial segments.
        endo_contour, mid_contour: (T, N, 2) mm tracked material contours.
        longitudinal_map, transverse_map: (T, H, W) float32 % engineering strain along and across
            the wall on the reference grid, NaN outside the myocardium.
        lv_area: (T,) mm^2 cavity area; lv_volume: (T,) ml single-plane method of discs (in
            placeholder units when the spacing is unknown: only their ratios are meaningful).
        quality: per-segment :class:`SegmentQuality`.
        full_cycle: whether the last frame is the next ED (drift then applies).
        drift_mm: mean distance over the myocardium between where it is at the last frame and at ED
            (:func:`~.quality.loop_closure_mm`; NaN unless ``full_cycle``).
        myocardium: the reference-frame region and contours.
        seconds: wall time of the analysis.
        registration: how the motion was tracked (:func:`~.compute.registration_record`: method,
            mode, device and, for DLIR, model, licence, passes and the refinement's steps), so that
            a summary names the registration it rests on; empty when not known.
        unmeasured: (T,) bool, frames whose field is not a measurement of motion
            (:attr:`..registration.RegistrationResult.unmeasured`); None: every frame measured.
        frame_times_remedy: what gives the times when ``frame_times_known`` is False (the warning says it).
        drift_note: the warning line saying why no end-of-cycle drift is reported where a full cycle was
            asked for (``--full-cycle``) or assumed from the file's ED and ES: the last frame cannot be the
            next ED after ED (:func:`~.reference.end_of_cycle_problem`); None otherwise.
    """

    view: str | None
    segment_names: tuple[str, ...]
    frames: CardiacFrames
    tracked_from: int
    frame_times: np.ndarray
    spacing_known: bool
    frame_times_known: bool
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
    registration: dict[str, Any] = field(default_factory=dict)
    unmeasured: np.ndarray | None = None
    drift_note: str | None = None
    frame_times_remedy: str = "give the frame rate (--frame-rate) to get them"

    def __post_init__(self) -> None:
        if self.unmeasured is None:
            self.unmeasured = np.zeros(len(self.frame_times), dtype=bool)

    # ------------------------------------------------------------------ derived numbers
    @property
    def reference(self) -> int:
        """The frame strain is relative to (ED unless the user set another)."""
        return self.frames.reference

    @property
    def ed_index(self) -> int:
        return self.frames.ed

    @property
    def es_index(self) -> int:
        return self.frames.es

    @property
    def time_from_ed(self) -> np.ndarray:
        """(T,) s relative to the ED frame; NaN when the frame times are unknown."""
        if not self.frame_times_known:
            return np.full(len(self.frame_times), np.nan)
        return self.frame_times - self.frame_times[self.ed_index]

    def timeline(self) -> tuple[np.ndarray, str]:
        """(T,) x values and axis title for curves: seconds from ED, or frames from ED when the
        frame times are unknown."""
        if self.frame_times_known:
            return self.time_from_ed, "time from ED (s)"
        return np.arange(len(self.frame_times)) - self.ed_index, f"frames from ED ({NO_TIMES})"

    def measured(self, values: np.ndarray | float) -> np.ndarray | float:
        """``values`` in mm, mm2 or ml as they are when the pixel size is known, else NaN."""
        if self.spacing_known:
            return values
        return np.full(np.shape(values), np.nan) if np.ndim(values) else float("nan")

    def unit(self, unit: str) -> str:
        """A physical unit, marked when the pixel size is unknown (its values are then blank)."""
        return unit if self.spacing_known else f"{unit}, {NO_SPACING}"

    def motion_measured(self, frame: int) -> bool:
        """Whether the field of ``frame`` is a measurement of motion (not in :attr:`unmeasured`)."""
        return not self.unmeasured[frame]

    def _volume_at(self, frame: int) -> float:
        """The tracked volume at ``frame`` (placeholder units without pixel size); NaN when the frame's
        field is not a measurement of motion."""
        return float(self.lv_volume[frame]) if self.motion_measured(frame) else float("nan")

    @property
    def edv(self) -> float:
        """ml at ED; NaN when the pixel size is unknown or ED's field is not a measurement of motion."""
        return self.measured(self._volume_at(self.ed_index))

    @property
    def esv(self) -> float:
        """ml at ES; NaN when the pixel size is unknown or ES's field is not a measurement of motion."""
        return self.measured(self._volume_at(self.es_index))

    @property
    def ef(self) -> float:
        """% ejection fraction 100 (EDV - ESV) / EDV (a ratio: known without the pixel size); NaN when the
        field of ED or ES is not a measurement of motion."""
        return ejection_fraction(self._volume_at(self.ed_index), self._volume_at(self.es_index))

    def curves(self) -> dict[str, np.ndarray]:
        """{name: (T,) %}: "GLS endocardial", "GLS mid-wall" and the six segments."""
        out = {"GLS endocardial": self.gls_endo, "GLS mid-wall": self.gls_mid}
        out.update({name: self.segmental[:, k] for k, name in enumerate(self.segment_names)})
        return out

    def peaks(self) -> dict[str, dict[str, float]]:
        """{curve name: {"peak_pct", "peak_frame", "time_to_peak_s", "end_systolic_pct"[,
        "drift_pct"]}}: peak systolic strain (ED to ES, over the frames whose field is a measurement of
        motion), its frame and its time from ED (NaN when the frame times are unknown or the peak lies in
        the beat before ED); where no systolic frame but the strain reference (its strain 0 by definition) has
        a field that measures motion, no peak: NaN, its frame None and its time NaN. End-systolic strain NaN
        when ES's field is not a measurement of motion."""
        systole = self.frames.systolic_frames()
        systole = systole[~self.unmeasured[systole] & (systole != self.reference)]
        out = {}
        for name, curve in self.curves().items():
            value, frame, time = float("nan"), None, float("nan")
            if len(systole):
                value, k = signed_peak(curve[systole])
                frame = int(systole[k])
                time = float(self.time_from_ed[frame]) if frame >= self.ed_index else float("nan")
            entry = {"peak_pct": value, "peak_frame": frame, "time_to_peak_s": time,
                     "end_systolic_pct": float(curve[self.es_index]) if self.motion_measured(self.es_index)
                     else float("nan")}
            if self.full_cycle:
                entry["drift_pct"] = float(curve[-1])
            out[name] = entry
        return out

    def green_lagrange_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(longitudinal, transverse) Green-Lagrange strain maps in %, each (T, H, W)."""
        return tuple(100.0 * green_lagrange_from_engineering(m / 100.0)
                     for m in (self.longitudinal_map, self.transverse_map))

    def describe_peak(self, name: str = "GLS endocardial") -> str:
        """"-18.6 % at 180 ms from ED" (sign always shown), or "at frame 9" with the reason when
        the time from ED is unknown."""
        entry = self.peaks()[name]
        if not np.isfinite(entry["peak_pct"]):
            return "not measured (no systolic frame but the strain reference has measured motion)"
        if np.isfinite(entry["time_to_peak_s"]):
            return f"{entry['peak_pct']:+.1f} % at {1000 * entry['time_to_peak_s']:.0f} ms from ED"
        why = [*(["in the beat before ED"] if entry["peak_frame"] < self.ed_index else []),
               *([NO_TIMES] if not self.frame_times_known else [])]
        return f"{entry['peak_pct']:+.1f} % at frame {entry['peak_frame']} ({'; '.join(why)})"

    def describe_volumes(self) -> str:
        """"EDV 79 ml, ESV 37 ml, EF 53 %", or EF alone with the reason when the pixel size is
        unknown; a volume at an ED or ES frame whose field is not a measurement of motion, and EF with
        it, are "not measured" with the frame named."""
        blank = [f"{phase} frame {frame} has no measured motion" for phase, frame in
                 (("ED", self.ed_index), ("ES", self.es_index)) if not self.motion_measured(frame)]
        if blank:
            known = [f"{name} {value:.0f} ml" for name, value in (("EDV", self.edv), ("ESV", self.esv))
                     if np.isfinite(value)]
            return ", ".join([*known, f"EF not measured ({'; '.join(blank)})"])
        if not self.spacing_known:
            return f"EF {self.ef:.0f} % (EDV, ESV not measured: {NO_SPACING})"
        return f"EDV {self.edv:.0f} ml, ESV {self.esv:.0f} ml, EF {self.ef:.0f} %"

    def unreliable_segments(self) -> list[int]:
        """Indices of the segments whose tracking quality score is below :data:`QUALITY_WARNING`:
        their strain is not to be trusted (flagged in :meth:`warnings` and the segment diagram)."""
        return [k for k, score in enumerate(self.quality.score) if score < QUALITY_WARNING]

    def describe_reliability(self) -> str:
        """"" when every segment tracked reliably, else "; N of 6 segments unreliable (GLS and EF
        include them)": for the line that reports GLS and EF (naming only those of the two that were
        measured: "GLS includes them", or nothing after the count)."""
        poor = self.unreliable_segments()
        if not poor:
            return ""
        measured = [name for name, value in (("GLS", self.peaks()["GLS endocardial"]["peak_pct"]), ("EF", self.ef))
                    if np.isfinite(value)]
        include = {2: " (GLS and EF include them)", 1: f" ({''.join(measured)} includes them)"}.get(len(measured), "")
        return f"; {len(poor)} of {len(self.segment_names)} segments unreliable{include}"

    def warnings(self) -> list[str]:
        """What a reader must know before trusting the numbers: unknown pixel size or times, a
        detected ED or ES, a user's reference taken as ED where another frame's cavity is larger by more
        than :data:`LARGER_CAVITY`, ED and ES that show no ejection (the same frame, or EF under
        :data:`NO_EJECTION_PCT`: one of them, or the tracking, is wrong), positive (lengthening) GLS,
        segments whose tracking quality is near zero, segmental strain of a network's tracking
        (:data:`NETWORK_SEGMENTS`, or :data:`NETWORK_SEGMENTS_NO_ANCHOR` when it registered every frame
        directly to the reference, through no systole anchor frame and not from the chained start), frames
        whose field is not a measurement of motion, left out of ED / ES detection and the peaks, an ED or
        ES given on such a frame (the values read there are blank), and a full cycle asked for whose
        end-of-cycle drift cannot be read (:attr:`drift_note`)."""
        out = []
        unmeasured = np.flatnonzero(self.unmeasured).tolist()
        if unmeasured:
            listed = ", ".join(map(str, unmeasured[:10])) + (", ..." if len(unmeasured) > 10 else "")
            one = len(unmeasured) == 1
            out.append(f"{'frame' if one else 'frames'} {listed} left out of ED / ES detection and of peak strain: "
                       f"{'its field is not a measurement' if one else 'their fields are not measurements'} of "
                       f"motion (no signal, an NCC with the reference under {LOW_SIMILARITY:g} after "
                       "registration, or a field fitted to noise; the registration's warnings name them)")
        for phase, frame, source, values, option in (
                ("ED", self.ed_index, self.frames.ed_source, "EDV and EF", "--reference"),
                ("ES", self.es_index, self.frames.es_source, "ESV, EF and end-systolic strain", "--es-frame")):
            if not self.motion_measured(frame):
                out.append(f"{phase} frame {frame} ({source}) has no measured motion: {values} are left blank; "
                           f"set {phase} on a frame with measured motion ({option})")
        if not self.spacing_known:
            out.append(f"{NO_SPACING}: areas, volumes and distances (mm, mm2, ml) are left blank; "
                       "strain and EF are ratios and are reported")
        if not self.frame_times_known:
            out.append(f"{NO_TIMES}: times are left blank and curves run over frame indices; "
                       f"{self.frame_times_remedy}")
        if self.frames.ed_source not in (FROM_FILE, FROM_USER_REFERENCE):
            out.append(f"ED not given by the file: frame {self.ed_index} was detected as ED "
                       f"({self.frames.ed_source}); check it on the images, or set it (--reference: the strain "
                       "reference, also ED when the file gives none)")
        largest = extreme_volume_frame(self.lv_volume, self.unmeasured, largest=True)
        largest_volume, ed_volume = self.lv_volume[largest], self.lv_volume[self.ed_index]
        if self.frames.ed_source == FROM_USER_REFERENCE and largest_volume > (1 + LARGER_CAVITY) * ed_volume:
            larger = f"{largest_volume / ed_volume:.2f}x as large" if ed_volume > 0 else "larger"
            out.append(f"frame {self.ed_index}, set as the reference and so taken as ED, is not the frame of "
                       f"largest tracked LV cavity: frame {largest}'s is {larger}; if frame "
                       f"{self.ed_index} is not ED, EDV, EF and peak strain are underestimated (set the "
                       "reference at ED)")
        if self.frames.es_source not in (FROM_FILE, FROM_USER):
            out.append(f"ES not given by the file: frame {self.es_index} was detected as ES "
                       f"({self.frames.es_source}); check it on the images, or set it (--es-frame)")
        if self.ed_index == self.es_index:
            out.append(f"ED and ES are the same frame ({self.es_index}: ED {self.frames.ed_source}, ES "
                       f"{self.frames.es_source}): EF is 0 and systole spans the whole cine; check both")
        elif self.ef < NO_EJECTION_PCT:
            change = "grows" if self.ef <= -NO_EJECTION_PCT else "barely changes"
            out.append(f"EF {self.ef:.1f} %: the LV cavity {change} from ED (frame {self.ed_index}, "
                       f"{self.frames.ed_source}) to ES (frame {self.es_index}, {self.frames.es_source}); check "
                       "ED, ES and the tracking")
        peaks = self.peaks()
        lengthening = [f"{layer} {peaks[f'GLS {layer}']['peak_pct']:+.1f} %" for layer in ("endocardial", "mid-wall")
                       if peaks[f"GLS {layer}"]["peak_pct"] > 0]
        if lengthening:
            out.append(f"peak GLS is positive (lengthening: {', '.join(lengthening)}): check that the "
                       "reference frame is ED and that the myocardium was tracked")
        poor = [f"{self.segment_names[k]} ({self.quality.score[k]:.2f})" for k in self.unreliable_segments()]
        if poor:
            out.append(f"tracking quality near zero in {', '.join(poor)}: their strain is unreliable")
        if self.drift_note:
            out.append(self.drift_note)
        if self.registration.get("method") == "dlir":
            direct = (self.registration.get("mode") == "to_reference" and self.registration.get("anchor_frame") is None
                      and self.registration.get("refine_start_used") != "chained")
            out.append(NETWORK_SEGMENTS_NO_ANCHOR if direct else NETWORK_SEGMENTS)
        return out

    # ------------------------------------------------------------------ reports
    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: frames, peaks, volumes, quality, what is known, warnings and
        conventions; unknown values are None."""
        peaks = self.peaks()
        q = self.quality
        unreliable = self.unreliable_segments()
        segments = [{"name": name, **peaks[name], "reliable": k not in unreliable,
                     "quality_score": float(q.score[k]), "ncc": float(q.similarity[k]),
                     "folding_fraction": float(q.folding[k]), "jitter_pct": float(q.jitter[k])}
                    for k, name in enumerate(self.segment_names)]
        summary = {
            "view": self.view, "frames": len(self.frame_times), **self.frames.summary(),
            "tracked_from_frame": self.tracked_from,
            "spacing_known": self.spacing_known, "frame_times_known": self.frame_times_known,
            "full_cycle": self.full_cycle, "myocardium_source": self.myocardium.source,
            "unmeasured_frames": np.flatnonzero(self.unmeasured).tolist(),
            "gls_endocardial": peaks["GLS endocardial"], "gls_mid_wall": peaks["GLS mid-wall"],
            "segments": segments,
            "volumes": {"edv_ml": self.edv, "esv_ml": self.esv, "ef_pct": self.ef,
                        "method": f"single-plane method of discs ({N_DISCS} discs)"},
            "quality": {"mean_score": float(np.mean(q.score)),
                        "drift_mm": self.measured(self.drift_mm) if self.full_cycle else None},
            "warnings": self.warnings(),
            "registration": self.registration,
            "seconds": round(self.seconds, 4),
            "convention": CONVENTION,
        }
        return _json_ready(summary)

    def frame_table(self) -> tuple[list[str], list[list[float]]]:
        """Header and one row per frame: frame, times, GLS, each segment, area, volume; unknown
        times and (without pixel size) areas and volumes are NaN, their names marked."""
        time = "s" if self.frame_times_known else f"s, {NO_TIMES}"
        header = ["frame", f"time ({time})", f"time from ED ({time})", "GLS endocardial (%)",
                  "GLS mid-wall (%)", *(f"{name} (%)" for name in self.segment_names),
                  f"LV area ({self.unit('mm2')})", f"LV volume ({self.unit('ml')})"]
        times = self.frame_times if self.frame_times_known else np.full(len(self.frame_times), np.nan)
        columns = [np.arange(len(self.frame_times)), times, self.time_from_ed,
                   self.gls_endo, self.gls_mid, *self.segmental.T, self.measured(self.lv_area),
                   self.measured(self.lv_volume)]
        return header, [list(row) for row in zip(*columns)]

    def summary_table(self) -> list[list[Any]]:
        """Rows (measure, region, value, unit): peaks, time to peak, end-systolic strain (and
        drift) per curve; quality per segment; ED/ES frames, EDV, ESV, EF."""
        rows: list[list[Any]] = []
        time = "s" if self.frame_times_known else f"s, {NO_TIMES}"
        for name, entry in self.peaks().items():
            rows += [["peak systolic strain", name, entry["peak_pct"], "%"],
                     ["peak frame", name, entry["peak_frame"], "index"],
                     ["time to peak", name, entry["time_to_peak_s"], time],
                     ["end-systolic strain", name, entry["end_systolic_pct"], "%"]]
            if self.full_cycle:
                rows.append(["drift at end of cycle", name, entry["drift_pct"], "%"])
        q = self.quality
        unreliable = self.unreliable_segments()
        for k, name in enumerate(self.segment_names):
            rows += [["quality score", name, q.score[k], "0-1"],
                     ["reliable", name, int(k not in unreliable), f"1 = yes (quality score >= {QUALITY_WARNING:g})"],
                     ["similarity (NCC)", name, q.similarity[k], "-1..1"],
                     ["folding", name, 100.0 * q.folding[k], "%"],
                     ["jitter", name, q.jitter[k], "%"]]
        rows += [["ED frame", "LV", self.ed_index, f"index, {self.frames.ed_source}"],
                 ["ES frame", "LV", self.es_index, f"index, {self.frames.es_source}"],
                 ["reference frame", "LV", self.reference, f"index, {self.frames.reference_source}"],
                 ["EDV", "LV", self.edv, self.unit("ml")], ["ESV", "LV", self.esv, self.unit("ml")],
                 ["EF", "LV", self.ef, "%"]]
        if self.full_cycle:
            rows.append(["loop-closure drift", "myocardium", self.measured(self.drift_mm), self.unit("mm")])
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
    """A CSV cell: floats with 6 significant digits (NaN, an unknown value, blank), integers and
    text as they are."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}" if np.isfinite(value) else ""
    return int(value) if isinstance(value, np.integer) else value


def _json_ready(value: Any) -> Any:
    """``value`` (nested dicts / lists) with non-finite floats as None (JSON null: unknown)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value
