"""One workflow for every front end: load -> reference frame -> myocardium -> register -> strain ->
outputs. ``echoreg register``, ``echoreg strain``, ``echoreg batch``, the demo and the Slicer module
(through :mod:`.mrml.pipeline`, which only converts nodes) all call it, so they cannot drift.

* :class:`Study`: what to read for one study (file, labels, landmarks, mask, view, frame rate);
* :class:`WorkflowSettings`: how to analyse it (method, model, mode, refine, flip averaging,
  device, reference frame, myocardium source, wall width, apical view ...);
* :func:`analyse`: register and compute the strain of a loaded sequence (no files written);
* :func:`run_strain` / :func:`run_registration`: a study from its file to its output folder;
* :func:`load_registration`: a finished ``echoreg register`` folder, checked against the input,
  to compute strain without registering again;
* :func:`register_one_frame`: one frame to the reference, tracked as the whole sequence would be, with
  how it was made (:class:`FrameRegistration`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dlir.shipped import SHIPPED_MODEL, tracking_of
from .sequence import EchoDataError, EchoSequence, no_signal_frames

if TYPE_CHECKING:
    from .registration import RegistrationResult
    from .strain import StrainResult
    from .strain.myocardium import Myocardium

METHODS = ("deformable", "affine", "rigid", "dlir")
# The default registration of every front end (CLI, batch runner, panel, web page, demo): the default DLIR model
# refined by 24 optimisation steps against the images and its anatomy maps (since 2026-12-01, tenth session; 40
# against the images alone before: the maps make each step dearer, and 24 steps keep the refinement under half
# the optimiser's time per pair, docs/generalisation.md, "Tenth session"; the history below is of refine 40),
# tracking to the reference through the systole anchor where ES is known
# (registration.tracking.frame_anchors; since 2026-11-30). As shipped since the twelfth session (its anatomy
# network trained 10000 steps), in one run of the generalisation benchmark: CAMUS valid 0.914 / 0.854 ED->ES and
# 0.932 / 0.848 ES->ED (network alone 0.909 / 0.845 and 0.924 / 0.843), the held-out family 0.21 mm and 0.14 GLS
# points, SIMUS 0.63 mm (segments 3.1 points off), 0.42x the optimiser's time per CAMUS pair.
# With the model's correction stage (seventh session), refine 40 on the images alone:
# CAMUS valid 0.906 / 0.845 ED->ES and 0.926 / 0.840 ES->ED, the held-out family 0.20 mm and 0.11 GLS points,
# SIMUS 0.60 mm (segments 3.2 points off), 0.40x the optimiser's time per pair; the numbers below are the model
# before the stage. On the generalisation benchmark (docs/generalisation.md, "The systole anchor as the default")
# it is near the best without folding on every held-out domain: CAMUS valid Dice 0.905 / 0.843 ED->ES (level with
# the network alone's 0.906 / 0.843, ahead of OpenCV DIS) and 0.923 / 0.840 ES->ED (the highest mean; its lead over
# DIS is within the spread between patients), the same pairs at 112 x 112 px 0.904 / 0.834 and 0.917 / 0.827, the
# held-out family 0.23 mm and 0.13 GLS points (0.19 / 0.15 registering each frame directly; behind the optimiser's
# 0.09 / 0.08 to the reference; level with OpenCV DIS's 0.21 / 0.19, which folds 2.5 % of pixels on real pairs),
# physics-simulated echo (SIMUS) 0.60 mm and 0.44 GLS points (1.41 / 1.15 directly; DIS 0.75 / 1.52, the sequential
# optimiser 0.34 / 0.55), cine NCC 0.973 / 0.945 (no ES: directly). It costs 0.39-0.65x the optimiser's time per
# CAMUS pair in block-timed benchmark runs (12x against 25x OpenCV DIS, 13x against 34x, 14x against 28x, 13x
# against 21x, 8.9x against 21x) and 0.51x timed pair by pair (benchmarks/refine_time_per_pair.py, 2026-11-30).
# docs/generalisation.md gives the paired intervals. Its SIMUS segment peaks are still 3.6 points off (the
# sequential optimiser's 0.86; about 10 without the anchor); strain results of "dlir" say so
# (strain.result.NETWORK_SEGMENTS). The optimiser alone stays a choice ("deformable", the one for segmental
# strain), as does the network alone (refine 0) and direct registration (anchor 0).
DEFAULT_METHOD = "dlir"
# The float32 switch of the Slicer panel and the web page (the panel's .ui holds the same texts;
# Testing/test_slicer_module_ui.py holds them together); the numbers: benchmarks/compare_precisions.py
FLOAT32_LABEL = "Networks in float32 (not in reduced precision)"
FLOAT32_HINT = ("DLIR: run the networks in float32 where they would run in reduced precision (bfloat16 on CPUs "
                "with AMX; bfloat16 or float16 on GPUs), so that the results do not depend on the hardware having "
                "it. On a 2-core CPU with AMX the network alone then takes about 1.3-1.6x as long, DLIR + refine "
                "(the default) about 1.0-1.2x; the reduced-precision fields differ from float32's by 0.01-0.02 mm "
                "on average for the network alone and 0.07-0.10 mm with the default refinement (up to about 1 mm "
                "at single pixels). The status line and the log name the precision used.")
DEFAULT_REFINE = 24
# The refinement-start choice of the Slicer panel and the web page (its choices:
# registration.tracking.REFINE_STARTS; the panel's .ui holds the same texts, Testing/test_slicer_module_ui.py
# holds them together); the numbers: README, "Where the refinement starts"
REFINE_START_LABEL = "Refinement start"
REFINE_START_HINT = ("DLIR + refine, tracking to the reference: where each frame's refinement starts. best (the "
                     "default): from both of the others, the cine keeping the one whose warped frames match the "
                     "reference better (on cines with frames to chain the refinement then takes about twice as "
                     "long; on physics-simulated echo it ended 0.37 mm off at ES against 0.63 for direct). direct: "
                     "from the network's field of the frame (the default before 2026-12-02). chained: from the "
                     "refined field (at the half level, where the refinement has two) of the last key frame before "
                     "it composed with the network's step between the two, outwards from the reference through key "
                     "frames at least 0.05 s apart (every frame where the frame times are unknown). The status "
                     "line says where the run kept the chained start.")
MYOCARDIUM_SOURCES = ("auto", "labels", "landmarks", "none")
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Study:
    """One input to analyse.

    Attributes:
        input: DICOM, NIfTI, MetaImage, NRRD, .seq.nrrd, AVI/MP4 file or a CAMUS patient folder.
        labels: label map (CAMUS codes) on the same grid, or None (the input's own labels).
        landmarks: (3, 2) endocardial points annulus, apex, annulus in mm (x, y); in pixels
            (column, row) when the file gives no pixel size. None: no landmarks.
        mask: field-of-view mask on the same grid (registration compares the images inside it).
        view: CAMUS view (2CH / 4CH) when the folder holds both.
        frame_rate: frames per second for files that do not record time (refused over times the file
            records; a video container's rate is replaced with a warning: :mod:`.io.timing`).
        es_frame: end-systole frame (0-based) set by the user, over the file's
            (:meth:`.sequence.EchoSequence.with_end_systole`); None: the file's, else detected.
        crop_to_region: DICOM: crop to the 2D tissue region.
        landmarks_source, es_frame_source: how errors name the landmarks and the ES frame (the
            option, or a listing's line).

    Raises:
        EchoDataError: labels and landmarks both given, or landmarks that are not three points.
    """

    input: str
    labels: str | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    mask: str | None = None
    view: str | None = None
    frame_rate: float | None = None
    es_frame: int | None = None
    crop_to_region: bool = False
    landmarks_source: str = "--landmarks"
    es_frame_source: str = "--es-frame"

    def __post_init__(self) -> None:
        if self.labels is not None and self.landmarks is not None:
            raise EchoDataError(self.input, "give the myocardium by --labels or by --landmarks, not both")
        if self.landmarks is not None and np.shape(self.landmarks) != (3, 2):
            raise EchoDataError(self.input, f"landmarks must be three (x, y) points, got shape "
                                            f"{np.shape(self.landmarks)}")

    def load(self) -> EchoSequence:
        """The sequence with its labels and mask attached and the user's ES set (raises as
        :func:`.io.load_sequence` and :meth:`.sequence.EchoSequence.with_end_systole`)."""
        from .io.dispatch import load_sequence

        options: dict[str, Any] = {}
        if self.frame_rate is not None:
            options["frame_rate"] = self.frame_rate
        if self.view is not None:
            options["view"] = self.view
        if self.crop_to_region:
            options["crop_to_region"] = True
        seq = load_sequence(self.input, labels=self.labels, mask=self.mask, **options)
        return seq if self.es_frame is None else seq.with_end_systole(self.es_frame, self.es_frame_source)


@dataclass(frozen=True)
class WorkflowSettings:
    """How to register a sequence and measure its strain.

    Attributes:
        method: one of :data:`METHODS`; default :data:`DEFAULT_METHOD` ("dlir", refined by
            :data:`DEFAULT_REFINE` steps, through the systole anchor where ES is known: near the best
            without folding on every held-out domain of the generalisation benchmark, at about half the
            optimiser's time per real pair; its segmental strain is not validated along the wall; the
            comment at :data:`DEFAULT_METHOD`).
            "deformable" is the optimiser alone (the one for segmental strain).
        model: DLIR only: an installed model's name (:func:`.dlir.shipped.list_models`) or a
            checkpoint path; "" or None: the default model (:data:`.dlir.shipped.SHIPPED_MODEL`,
            :meth:`describe_model`), as every front end leaves it unless told.
        mode: "sequential" / "to_reference"; None: the method's default (DLIR: its model's).
        refine: DLIR only: optimisation steps refining the predicted fields (0: none; None:
            :data:`DEFAULT_REFINE`).
        flip_average: DLIR only: average each pair with its mirrored pair (twice the time).
        float32: DLIR only: the networks in float32 where they would run in reduced precision (bfloat16
            on CPUs with AMX, bfloat16 or float16 on CUDA; :func:`.dlir.inference.mixed_precision`):
            results that do not depend on AMX (:data:`FLOAT32_HINT`).
        anchor: DLIR to the reference only: the systole anchor's place between the reference and ES
            (:func:`.registration.tracking.frame_anchors`); None: the default,
            :data:`.spatial.pairs.SYSTOLE_ANCHOR`; 0: every frame registered to the reference directly.
        device: "auto", "cpu", "cuda" or "cuda:N".
        reference: user-set reference frame; None: track from the file's ED, else frame 0, and take
            strain relative to ED (given, else detected: :mod:`.strain.reference`).
        chunk_size: frame pairs per batch (smaller: progress more often).
        options: further :func:`.registration.register_pair` options (loss, iterations,
            control_spacing ...) and ``refine_start``; any other key, such as one of the settings above, is
            refused when the registration runs (:func:`.registration.tracking.check_options`).
        myocardium: "labels" (the study's label map at the reference frame), "landmarks" (the
            study's three points with ``wall_width``), "none" (registration only) or "auto"
            (landmarks when the study has them, else labels).
        wall_width: mm, myocardial wall width for landmarks; None: the default (10 mm).
        apical_view: "A4C" / "A2C" segment names (and the view the registration's warnings name)
            when the input does not record its view.
        full_cycle: the last frame is the next ED (drift reported, unless ES is not between ED and the
            last frame: :func:`.strain.reference.end_of_cycle_problem`, then blank with a warning); None:
            decided from ED / ES.
        enhance: an enhancement model (installed name or checkpoint) applied to the frames before
            registration (:func:`.enhancement.enhance_sequence`); None: off (the default: it did not
            help registration in the benchmark, README "Enhancement before registration").
    """

    method: str = DEFAULT_METHOD
    model: str | None = None
    mode: str | None = None
    refine: int | None = None
    flip_average: bool = False
    float32: bool = False
    anchor: float | None = None
    device: str = "auto"
    reference: int | None = None
    chunk_size: int = 32
    options: Mapping[str, Any] = field(default_factory=dict)
    myocardium: str = "auto"
    wall_width: float | None = None
    apical_view: str | None = None
    full_cycle: bool | None = None
    enhance: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.myocardium not in MYOCARDIUM_SOURCES:
            raise ValueError(f"myocardium must be one of {MYOCARDIUM_SOURCES}, got {self.myocardium!r}")
        if self.method != "dlir" and (self.refine or self.flip_average or self.anchor or self.float32):
            raise ValueError("refine, flip averaging, the systole anchor and float32 are DLIR options (method='dlir')")
        if self.anchor is not None and not 0 <= self.anchor < 1:
            raise ValueError(f"the systole anchor is a fraction in [0, 1) (0: none), got {self.anchor}")
        if self.refine is not None and self.refine < 0:
            raise ValueError(f"refine must be >= 0 optimisation steps, got {self.refine}")
        if "anchor" in self.options:
            raise ValueError("the systole anchor is WorkflowSettings.anchor, not a register_pair option")

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`.registration.register_sequence` (besides the sequence and
        callbacks); the DLIR options only for DLIR, the mode only when set."""
        arguments: dict[str, Any] = {"method": self.method, "reference": self.reference,
                                     "device": self.device, "chunk_size": self.chunk_size,
                                     **self.options}
        if self.mode is not None:
            arguments["mode"] = self.mode
        if self.enhance is not None:
            arguments["enhance"] = self.enhance
        if self.method == "dlir":
            arguments.update(model=self.model or None,
                             refine=DEFAULT_REFINE if self.refine is None else self.refine)
            if self.flip_average:
                arguments["flip_average"] = True
            if self.float32:
                arguments["amp"] = False
            if self.anchor is not None:
                arguments["anchor"] = self.anchor
        return arguments

    def dlir_mode(self) -> str | None:
        """DLIR: the tracking mode it will run with, read without loading the model (torch-free): the
        set ``mode``, else the one the model was trained for (:func:`.dlir.shipped.tracking_of`; a
        checkpoint that does not say: "to_reference"); None for the other methods.

        Raises:
            FileNotFoundError, ValueError: the model cannot be found (:func:`.dlir.shipped.resolve_model`).
        """
        if self.method != "dlir":
            return None
        return self.mode or tracking_of(self.describe_model()) or "to_reference"

    def describe_model(self) -> str:
        """The model as the cohort table names it: its name or path (the shipped model's name when
        none was set), or "" (no DLIR)."""
        return (self.model or SHIPPED_MODEL) if self.method == "dlir" else ""


def describe_registration(method: str, parameters: Mapping[str, Any]) -> str:
    """How a registration was made, in one line: the method, and for DLIR the model, its licence, the networks'
    precision (``parameters["network_precision"]``,
    :func:`EchoRegistrationLib.dlir.inference.network_precision`: "bfloat16" on CPUs with AMX and CUDA,
    "float16" on older GPUs, else "float32"; left out of reports written before it was recorded), the
    refinement steps (with the weight of the anatomy maps when they guided it) and the systole anchor frame
    it went through, or the chained start where the refinement kept it
    (:data:`.registration.tracking.REFINE_STARTS`): "DLIR (echoreg-dlir-camus, licence CC BY-NC-SA 4.0,
    networks in bfloat16) + refine 24 on the images and anatomy maps (weight 0.1) (systole anchor: frame 11)".
    Other methods by the Slicer panel's names: "Deformable", "Affine", "Rigid"."""
    if method != "dlir":
        return method.capitalize()
    refine, anchor_frame = parameters.get("refine") or 0, parameters.get("anchor_frame")
    chained = parameters.get("refine_start_used") == "chained"
    weight = parameters.get("refine_anatomy_weight")
    precision = parameters.get("network_precision")
    return (f"DLIR ({parameters.get('model')}, licence {parameters.get('licence') or 'unknown'}"
            + (f", networks in {precision}" if precision else "") + ")"
            + (f" + refine {refine}" if refine else "")
            + (f" on the images and anatomy maps (weight {weight:g})" if refine and weight else "")
            + (" (chained start: through every frame from the reference)" if chained else "")
            + (f" (systole anchor: frame {anchor_frame})" if anchor_frame is not None else ""))


@dataclass(eq=False)
class Analysis:
    """A registered sequence: its frames, the registration (with the enhanced frames when the
    settings enhanced them, ``registration.enhanced``) and (with a myocardium) the strain."""

    sequence: EchoSequence
    registration: RegistrationResult
    strain: StrainResult | None = None


def parse_landmarks(text: str) -> np.ndarray:
    """(3, 2) points from "x1,y1,x2,y2,x3,y3" (annulus, apex, annulus; mm, or pixels without a
    pixel size). Raises ValueError naming the text."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or not np.isfinite(values).all():
        raise ValueError(f"expected six numbers x1,y1,x2,y2,x3,y3 in mm (annulus, apex, annulus), got {text!r}")
    return np.array(values).reshape(3, 2)


def parse_frame_number(text: str | None, name: str) -> int | None:
    """A frame number (from 0) typed as text (a listing's cell, a form's field); None when empty.

    Raises:
        ValueError: naming ``name``, when ``text`` holds anything but the digits 0-9."""
    text = "" if text is None else str(text).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name}: a frame number (a whole number from 0) or empty, got {text!r}")
    return int(text)


def landmarks_in_mm(landmarks: np.ndarray, seq: EchoSequence, source: str = "--landmarks") -> np.ndarray:
    """(3, 2) mm points of landmarks: as given when the pixel size is known; read as pixels
    (column, row) and scaled by the placeholder spacing when it is not (said as a warning naming
    the landmarks' ``source``)."""
    import warnings

    from .sequence import EchoDataWarning

    landmarks = np.asarray(landmarks, dtype=np.float64)
    if seq.spacing_known:
        return landmarks
    warnings.warn(f"{source} read in pixels (column, row): {seq.source} gives no pixel size",
                  EchoDataWarning, stacklevel=2)
    return landmarks * np.asarray(seq.spacing)


def study_myocardium(seq: EchoSequence, study: Study, settings: WorkflowSettings,
                     reference: int) -> Myocardium | None:
    """The myocardium at the ``reference`` frame, from the source the settings name.

    Raises:
        EchoDataError: both labels and landmarks given, or the named source is missing / unusable.
    """
    from .strain.compute import myocardium_at_reference
    from .strain.myocardium import myocardium_from_landmarks

    source = settings.myocardium
    if source == "auto":
        source = "landmarks" if study.landmarks is not None else "labels"
    if source == "none":
        return None
    if source == "landmarks":
        if study.landmarks is None:
            raise EchoDataError(study.input, "no landmarks given for the myocardium")
        width = {} if settings.wall_width is None else {"wall_width": settings.wall_width}
        return myocardium_from_landmarks(landmarks_in_mm(np.asarray(study.landmarks), seq, study.landmarks_source),
                                         seq.frame_shape, seq.spacing, source=study.landmarks_source, **width)
    if seq.labels is None:
        raise EchoDataError(seq.source, "no myocardium: the input has no labels; pass --labels FILE "
                                        "or --landmarks x1,y1,x2,y2,x3,y3 (mm)")
    return myocardium_at_reference(seq, reference, source=study.labels or seq.source)


def register(seq: EchoSequence, settings: WorkflowSettings, *, progress: ProgressCallback | None = None,
             cancel: Callable[[], bool] | None = None) -> RegistrationResult:
    """Register every frame of ``seq`` to the tracking reference
    (:func:`.strain.reference.tracking_reference`). The settings' ``apical_view``, where the input
    records no view, is the view the registration's warnings speak of
    (:func:`.registration.tracking.anatomy_view_warnings`)."""
    from . import registration
    from .registration.tracking import check_options
    from .strain.reference import tracking_reference

    check_options(settings.options)  # none may stand in for a setting of its own (arguments() puts them last)
    if settings.apical_view and not seq.metadata.get("view"):
        seq = replace(seq, metadata={**seq.metadata, "view": settings.apical_view})
    arguments = {**settings.arguments(), "reference": tracking_reference(seq, settings.reference)}
    return registration.register_sequence(seq, progress=progress, cancel=cancel, **arguments)


def analyse(seq: EchoSequence, settings: WorkflowSettings, myocardium: Myocardium | None, *,
            registration: RegistrationResult | None = None, progress: ProgressCallback | None = None,
            cancel: Callable[[], bool] | None = None) -> Analysis:
    """Register ``seq`` (unless a ``registration`` of it is given) and, with a ``myocardium`` drawn
    on the tracking reference, compute the strain relative to ED (or the settings' reference).

    Raises:
        EchoDataError, ValueError: as :func:`.registration.register_sequence` and
            :func:`.strain.compute_strain`; RegistrationCancelled when ``cancel()`` is True.
    """
    from .strain import compute_strain

    if registration is None:
        registration = register(seq, settings, progress=progress, cancel=cancel)
    strain = None if myocardium is None else compute_strain(
        seq, registration, myocardium, view=settings.apical_view, full_cycle=settings.full_cycle,
        reference=settings.reference)
    return Analysis(seq, registration, strain)


def _unreadable_registration(folder: str | os.PathLike, problem: object) -> EchoDataError:
    """The error for a folder that is not a readable ``echoreg register`` output, naming the ``problem``."""
    return EchoDataError(str(folder), f"not a readable registration folder (displacement.npz and "
                                      f"report.json of echoreg register): {problem}")


def read_registration_report(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``report.json`` an ``echoreg register`` run wrote into ``folder``: how the registration was made
    (method, mode, reference frame, device and ``parameters``; :meth:`.registration.RegistrationResult.report`).

    Raises:
        EchoDataError: it is missing, unreadable or not a JSON object.
    """
    try:
        report = json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError) as err:
        raise _unreadable_registration(folder, err) from None
    if not isinstance(report, dict) or not isinstance(report.get("parameters", {}), dict):
        raise _unreadable_registration(folder, "report.json is not a registration report")
    return report


def load_registration(folder: str | os.PathLike, seq: EchoSequence) -> RegistrationResult:
    """The registration an ``echoreg register`` run wrote into ``folder`` (``displacement.npz``,
    ``report.json``), for the sequence ``seq`` it was computed on: its fields, frames without signal and
    NCC before / after as recorded (so the frames it flagged as no measurement of motion stay flagged), the
    warped frames and folding derived again from the fields.

    Raises:
        EchoDataError: a file is missing or unreadable, or the folder was computed on another
            input: different frame count, grid, spacing or frame times, or another ES where the ES
            placed its systole anchor frame.
    """
    from .strain.compute import result_from_displacement

    folder = Path(folder)
    report = read_registration_report(folder)
    try:
        with np.load(folder / "displacement.npz") as data:
            displacement, spacing = data["displacement"], data["spacing"]
            frame_times, reference = data["frame_times"], int(data["reference"])
            no_signal = data["no_signal"]
    except (OSError, ValueError, KeyError) as err:
        raise _unreadable_registration(folder, err) from None
    problems = []
    if displacement.shape != (*seq.frames.shape, 2):
        problems.append(f"fields of shape {displacement.shape[:3]}, the input has {seq.frames.shape}")
    elif not np.allclose(spacing, seq.spacing, rtol=1e-5):
        problems.append(f"spacing {tuple(spacing)} mm, the input has {seq.spacing}")
    elif (recorded_known := report.get("frame_times_known", True)) != seq.frame_times_known:
        # the same file, read with and without --frame-rate
        problems.append("it was registered with " + ("known" if recorded_known else "unknown")
                        + " frame times, the input now has " + ("known" if seq.frame_times_known else
                                                               "unknown") + " ones (--frame-rate)")
    elif seq.frame_times_known and not np.allclose(frame_times, seq.frame_times, atol=1e-6):
        problems.append("frame times differ from the input's")  # unknown ones: NaN (frame indices before)
    parameters = report.get("parameters", {})
    # an anchor placed from ES (not from a frame map given through the API, recorded with es_frame None)
    if parameters.get("anchor_frame") is not None and parameters.get("es_frame") not in (None, seq.es_index):
        es = "no ES" if seq.es_index is None else f"ES frame {seq.es_index}"
        problems.append(f"its systole anchor (frame {parameters['anchor_frame']}) was placed for ES frame "
                        f"{parameters['es_frame']}, the input now has {es} (give --es-frame "
                        f"{parameters['es_frame']})")
    if problems:
        raise EchoDataError(str(folder), f"registered {report.get('input')} as read then: "
                                         f"{problems[0]}; register {seq.source} again")
    result = result_from_displacement(seq, displacement, reference, method=report.get("method", "given"))
    recorded = report.get("frames") or []
    if len(recorded) == seq.n_frames and all("ncc_after" in frame for frame in recorded):
        # the registration's own NCC (within its mask, of the frames it registered, enhanced or not): the
        # frames it flagged as no measurement of motion (RegistrationResult.unmeasured) stay flagged
        result.similarity_before = np.array([frame["ncc_before"] for frame in recorded], dtype=np.float64)
        result.similarity_after = np.array([frame["ncc_after"] for frame in recorded], dtype=np.float64)
    result.mode, result.device = report.get("mode", "given"), report.get("device", "")
    result.parameters, result.warnings = parameters, report.get("warnings", [])
    result.seconds, result.no_signal = float(report.get("seconds", 0.0)), no_signal.astype(bool)
    return result


def run_registration(study: Study, settings: WorkflowSettings, output: str | os.PathLike, *,
                     overwrite: bool = False, itk_fields: bool = False,
                     progress: ProgressCallback | None = None) -> Analysis:
    """``echoreg register``: load, register, write ``warped.seq.nrrd``, ``displacement.npz``,
    ``report.json`` (with ``settings.enhance``, also ``enhanced.seq.nrrd``; and ITK fields) into
    ``output`` as one set; outputs are checked before the work. Raises as :func:`analyse` and
    FileExistsError for outputs that exist."""
    from .registration import save_registration
    from .registration.export import check_outputs

    seq = study.load()
    check_outputs(seq, output, overwrite=overwrite, itk_fields=itk_fields, enhanced=settings.enhance is not None)
    analysis = analyse(seq, settings, None, progress=progress)
    save_registration(analysis.registration, seq, output, overwrite=overwrite, itk_fields=itk_fields)
    return analysis


def reference_mismatch(registered: int, seq: EchoSequence, requested: int | None) -> str:
    """Why a registration to frame ``registered`` cannot be reused for the strain of ``seq`` tracked from the
    frame ``requested`` (``--reference``; None: the file's ED, else the first frame,
    :func:`.strain.reference.tracking_reference`), and what to do: a registration is reused as it was made."""
    from .strain.reference import tracking_reference, tracking_reference_source

    reference = tracking_reference(seq, requested)
    if requested is not None:
        return (f"registered to frame {registered}, not to frame {reference} (--reference): the registration is "
                f"reused as it was made; give --reference {registered}, or register again with --reference "
                f"{reference}")
    return (f"registered to frame {registered}, the strain tracks from frame {reference} "
            f"({tracking_reference_source(seq)}): the registration is reused as it was made; give --reference "
            f"{registered} to track from its frame")


def run_strain(study: Study, settings: WorkflowSettings, output: str | os.PathLike, *,
               overwrite: bool = False, registration: str | os.PathLike | None = None,
               progress: ProgressCallback | None = None) -> Analysis:
    """``echoreg strain``: load, myocardium, register (or reuse the ``registration`` folder of an
    earlier ``echoreg register`` of the same input), strain; write the tables, summary and
    pictures into ``output`` as one set (:func:`.strain.outputs.save_strain_outputs`).

    Raises:
        EchoDataError: bad input, myocardium or registration folder (one of another input, or registered to
            another frame than the strain tracks from: :func:`reference_mismatch`); FileExistsError: outputs
            exist and not ``overwrite`` (checked before the work).
    """
    from .strain.outputs import check_strain_outputs, save_strain_outputs
    from .strain.reference import tracking_reference

    seq = study.load()
    check_strain_outputs(output, overwrite)
    reference = tracking_reference(seq, settings.reference)
    myocardium = study_myocardium(seq, study, settings, reference)
    if myocardium is None:
        raise EchoDataError(study.input, "strain needs a myocardium (labels or landmarks)")
    given = None if registration is None else load_registration(registration, seq)
    if given is not None and given.reference != reference:
        raise EchoDataError(str(registration), reference_mismatch(given.reference, seq, settings.reference))
    analysis = analyse(seq, settings, myocardium, registration=given, progress=progress)
    save_strain_outputs(analysis.strain, seq, output, overwrite)
    return analysis


# What :class:`FrameRegistration` says of the reference frame itself
REFERENCE_FRAME_NOTE = "the reference frame itself: nothing to register"


@dataclass(eq=False)
class FrameRegistration:
    """One frame registered to the tracking reference (:func:`register_one_frame`).

    Attributes:
        sequence: the whole sequence the frame belongs to.
        frame, reference: the frame and the reference frame (indices from 0 in ``sequence``).
        displacement: (H, W, 2) mm field on the reference grid (reference point -> where it is in the frame).
        warped: (H, W) the frame resampled onto the reference grid.
        method: the registration method ("dlir", "deformable", ...); None for the reference frame itself
            (nothing registered: a zero field).
        parameters: the registration's parameters as :func:`.registration.register_sequence` records them
            (model, licence, network precision, refinement, ...), the anchor setting and frame numbered in
            ``sequence``; {} for the reference frame itself.
    """

    sequence: EchoSequence
    frame: int
    reference: int
    displacement: np.ndarray
    warped: np.ndarray
    method: str | None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """How the frame was registered, in :func:`describe_registration`'s words (:data:`REFERENCE_FRAME_NOTE`
        for the reference itself)."""
        if self.method is None:
            return REFERENCE_FRAME_NOTE
        return describe_registration(self.method, self.parameters)


def register_one_frame(seq: EchoSequence, frame: int, settings: WorkflowSettings) -> FrameRegistration:
    """Register frame ``frame`` to the tracking reference as :func:`analyse` would: the tracking
    mode and model come from :func:`.registration.tracking.tracking_plan` (the one place that
    decides them), a sequential mode goes through the frames between, and DLIR to the reference
    through the systole anchor frame where the whole sequence's ES puts one
    (:func:`.registration.tracking.frame_anchors`). A frame without signal is bridged in time from
    the nearest frames with signal, as the whole run bridges it. The DLIR refinement's start
    (``refine_start``, :data:`.registration.tracking.REFINE_STARTS`): "chained" registers every frame between
    the reference and this one, as the whole run's chain does (the batches' rounding differences then add up
    along the chain: 0.1-0.2 mm on average at frames 5-10 of the real A4C cine); "best", the default, refines
    the frame from the direct start (recorded as such), since the whole run chooses its start on all its
    frames: where that run keeps the chained start, the quick look differs from it (its description says
    which start it used).

    Returns:
        :class:`FrameRegistration`: the field, the warped frame and how they were made (the model, its
        licence and precision, as the whole run would record them).

    Raises:
        ValueError: ``frame`` is not a frame of ``seq``, or settings :func:`analyse` would refuse (for the
            reference frame itself, which returns a zero field, the method, device, anchor, refinement start
            and options are checked).
        FileNotFoundError, EchoDataError: DLIR: the model is neither installed nor a checkpoint
            (:func:`.registration.tracking.tracking_plan`), or its file is unusable (for the reference
            frame too).
    """
    from . import registration
    from .registration.tracking import (DEFAULT_REFINE_START, anchor_setting, check_options, frame_anchors,
                                        tracking_plan)
    from .spatial.pairs import tracked_frames
    from .strain.reference import tracking_reference

    reference = tracking_reference(seq, settings.reference)
    if not 0 <= frame < seq.n_frames:
        raise ValueError(f"{seq.source}: frame {frame} is outside 0..{seq.n_frames - 1}")
    arguments = settings.arguments()
    check_options(settings.options)  # the refinement's start and the options: for the reference too
    device, model, mode, _ = tracking_plan(settings.method, arguments.get("model"), settings.mode,
                                           settings.device)  # the model and device: for the reference too
    setting = anchor_setting(settings.method, mode, arguments.get("anchor"))
    if frame == reference:  # nothing to register: the other settings are checked where they are used
        return FrameRegistration(seq, frame, reference, np.zeros((*seq.frame_shape, 2), np.float32),
                                 seq.frames[frame].copy(), None)
    no_signal = no_signal_frames(seq.frames, seq.mask)
    if no_signal[frame]:
        return _bridged_frame(seq, frame, settings, no_signal)
    anchors = frame_anchors(seq, reference, settings.method, mode, setting)
    via = reference if anchors is None else anchors.get(frame, reference)
    refined = settings.method == "dlir" and arguments.get("refine")
    if refined and arguments.get("refine_start", DEFAULT_REFINE_START) == "best":
        # the whole run keeps the start that matches the reference better over all its frames: one frame cannot
        # choose as it would, and the direct start is the one a frame alone refines as the whole run does
        arguments["refine_start"] = "direct"
    chaining = refined and arguments.get("refine_start") == "chained"  # through every frame between
    frames = sorted({*tracked_frames(frame, reference, "sequential" if chaining else mode), via})
    if setting != 0:  # the whole run's anchor, renumbered
        arguments["anchor"] = {frames.index(frame): frames.index(via)} if via != reference else 0
    arguments.update(reference=frames.index(reference), mode=mode, device=device)
    subsequence = seq.subsequence(frames)
    if settings.method == "dlir" and arguments.get("enhance") is None:
        # the network sees the frames normalised by the whole sequence's intensity window, as in
        # analyse (enhanced frames: the window of the enhanced subsequence, as today)
        from .dlir.grid import INTENSITY_WINDOW, sequence_intensity_window

        window = sequence_intensity_window(seq.frames, seq.spacing, model.working_size)
        subsequence = replace(subsequence, metadata={**subsequence.metadata, INTENSITY_WINDOW: window})
    result = registration.register_sequence(subsequence, **arguments)
    moving = frames.index(frame)
    parameters = dict(result.parameters)  # the model by the settings' name (loaded once: dlir.inference.as_model)
    if "anchor" in parameters:  # numbered in the whole sequence, as the whole run records them
        used = parameters.get("anchor_frame")  # None where the anchor frame had no signal: registered directly
        parameters.update(anchor=setting, anchor_frame=None if used is None else frames[used],
                          es_frame=None if isinstance(setting, Mapping) else seq.es_index)
    return FrameRegistration(seq, frame, reference, result.displacement[moving], result.warped[moving],
                             result.method, parameters)


def _bridged_frame(seq: EchoSequence, frame: int, settings: WorkflowSettings,
                   no_signal: np.ndarray) -> FrameRegistration:
    """The quick look of ``frame``, which has no signal (the (T,) bool ``no_signal``): bridged as
    :func:`.registration.register_sequence` bridges it (:func:`.registration.tracking.interpolate_in_time`),
    from the quick looks of the nearest frames with signal before and after it. How it was made is the
    later of those frames' that was registered (the reference itself was not)."""
    import torch

    from .registration.pairwise import as_image_batch
    from .registration.tracking import interpolate_in_time
    from .spatial import field_to_numpy, field_to_torch, warp

    present = np.flatnonzero(~no_signal)
    sides = [int(k) for k in (*present[present < frame][-1:], *present[present > frame][:1])]
    parts = [register_one_frame(seq, k, settings) for k in sides]
    keys = sorted({*sides, frame})
    fields = field_to_torch(np.stack([np.zeros((*seq.frame_shape, 2), np.float32) if k == frame
                                      else parts[sides.index(k)].displacement for k in keys]))
    fields = interpolate_in_time(fields, np.array([k == frame for k in keys]), seq.frame_times[keys])
    field = fields[keys.index(frame):keys.index(frame) + 1]
    with torch.inference_mode():
        warped = warp(as_image_batch(seq.frames[frame]), field, seq.spacing)
    registered = [part for part in parts if part.method is not None]
    source = registered[-1] if registered else parts[-1]
    return FrameRegistration(seq, frame, source.reference, field_to_numpy(field)[0], warped[0, 0].numpy(),
                             source.method, source.parameters)
