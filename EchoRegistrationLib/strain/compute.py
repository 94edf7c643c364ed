"""From a registered sequence to clinical strain: :func:`compute_strain` and biplane EF."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..registration.tracking import RegistrationResult, frame_quality
from ..sequence import EchoDataError, EchoSequence
from .definitions import polygon_area
from ..spatial import field_to_torch, warp
from .contours import apical_view, length_strain, segment_names, segment_strain, track_points
from .myocardium import Myocardium, myocardium_from_labels
from .quality import loop_closure_mm, segment_quality
from .reference import cardiac_frames, end_of_cycle_problem
from .result import StrainResult
from .tensors import deformation_gradient, rereferenced_stretch, wall_strain_maps
from .volumes import biplane_volume, ejection_fraction, single_plane_volume


def myocardium_at_reference(seq: EchoSequence, reference: int, source: str | None = None) -> Myocardium:
    """The myocardium of ``seq``'s own labels at the reference frame (a single (H, W) map is taken
    to annotate the reference frame); ``source`` names the labels in errors (default the sequence).

    Raises:
        EchoDataError: the sequence has no label map for that frame, or it shows no myocardium.
    """
    source = seq.source if source is None else source
    if seq.labels is None:
        raise EchoDataError(source, "no myocardium: the sequence has no labels; give a label "
                                    "map (CAMUS codes) or three landmarks (annulus, apex, annulus)")
    if seq.labels.ndim == 2:
        return myocardium_from_labels(seq.labels, seq.spacing, source=source)
    if reference not in seq.label_frames:
        raise EchoDataError(source, f"no myocardium: the reference frame {reference} has no label "
                                    f"map (annotated frames: {list(seq.label_frames)})")
    return myocardium_from_labels(seq.labels[reference], seq.spacing, source=source)


def result_from_displacement(seq: EchoSequence, displacement: np.ndarray, reference: int,
                             method: str = "given") -> RegistrationResult:
    """A :class:`RegistrationResult` for fields computed elsewhere (a simulator's true motion, a
    peer method): warped frames and per-frame quality are derived from the (T, H, W, 2) mm field
    on the grid of frame ``reference``."""
    field = np.asarray(displacement, dtype=np.float32)
    if field.shape != (*seq.frames.shape, 2):
        raise ValueError(f"{seq.source}: displacement of shape {field.shape} does not match frames "
                         f"{seq.frames.shape} (expected {(*seq.frames.shape, 2)})")
    frames = torch.from_numpy(seq.frames)[:, None]
    fields = field_to_torch(field)
    start = time.perf_counter()
    warped = warp(frames, fields, seq.spacing)
    before, after, folding = frame_quality(frames[reference:reference + 1], frames, warped, fields,
                                           seq.spacing)
    return RegistrationResult(displacement=field, warped=warped[:, 0].numpy(), reference=reference,
                              method=method, mode="given", similarity_before=before,
                              similarity_after=after, folding_fraction=folding,
                              seconds=time.perf_counter() - start, device="cpu")


def _check_inputs(seq: EchoSequence, registration: RegistrationResult, myocardium: Myocardium) -> None:
    expected = (*seq.frames.shape, 2)
    if registration.displacement.shape != expected:
        raise ValueError(f"{seq.source}: registration displacement {registration.displacement.shape} "
                         f"does not match the sequence (expected {expected})")
    if myocardium.mask.shape != seq.frame_shape or not np.allclose(myocardium.spacing, seq.spacing):
        raise ValueError(f"{seq.source}: the myocardium was drawn on a {myocardium.mask.shape} grid with "
                         f"spacing {myocardium.spacing}, the sequence is {seq.frame_shape} with "
                         f"spacing {seq.spacing}")


def compute_strain(seq: EchoSequence, registration: RegistrationResult,
                   myocardium: Myocardium | None = None, *, view: str | None = None,
                   full_cycle: bool | None = None, reference: int | None = None) -> StrainResult:
    """Strain curves, segments, maps, volumes and tracking quality of a registered sequence.

    Args:
        seq: the sequence that was registered (frames, spacing, frame times, ED / ES).
        registration: its registration (fields on the reference frame grid in mm), e.g. from
            :func:`~EchoRegistrationLib.registration.register_sequence` or
            :func:`result_from_displacement`.
        myocardium: the region and contours at the reference frame
            (:func:`~.myocardium.myocardium_from_labels` / ``_from_landmarks``); default from the
            sequence's own label map of the reference frame.
        view: "A4C" / "A2C" (or CAMUS "4CH" / "2CH") for the segment names; default
            ``seq.metadata["view"]``; unknown views get side names.
        full_cycle: whether the last frame is the next ED (loop-closure drift is then reported);
            default: ED at frame 0 and an ES given by the file strictly between the first and last
            frames (:attr:`..sequence.EchoSequence.es_in_file`: an ES set by the user says nothing
            about where the cine ends). Where the last frame cannot be the next ED
            (:func:`~.reference.end_of_cycle_problem`: ES not after ED and before the last frame,
            strain not relative to ED, a last frame without measured motion) no drift is reported,
            and the result's ``drift_note`` (a warning line) says why.
        reference: a user-set strain reference frame; default ED.

    Returns:
        :class:`StrainResult`. ED is ``seq.ed_index``, else ``reference``, else detected from the
        tracked cavity volume; ES is ``seq.es_index``, else detected
        (:func:`~.reference.cardiac_frames`), both detected among the frames whose field is a
        measurement of motion (:attr:`~..registration.RegistrationResult.unmeasured`, which the result
        keeps: its peaks leave those frames out). Strain is Lagrangian relative to ED (or
        ``reference``): the length of the same tracked material
        contour, L(t) / L(ED) - 1, and the stretch of the same material fibre in the maps, so the
        registration reference (where the myocardium was drawn) need not be ED. The maps stay on
        the registration reference's grid.

    Raises:
        EchoDataError: no myocardium given and no labels at the reference frame; the strain reference
            (``reference``, or ED from the file) is a frame whose field is not a measurement of motion.
        ValueError: fields or myocardium that do not match the sequence's grid.
    """
    start = time.perf_counter()
    if myocardium is None:
        myocardium = myocardium_at_reference(seq, registration.reference)
    _check_inputs(seq, registration, myocardium)
    u = registration.displacement
    n = myocardium.points_per_segment
    endo = track_points(u, myocardium.endo, seq.spacing)
    mid = track_points(u, myocardium.mid, seq.spacing)
    volume = np.array([single_plane_volume(c) for c in endo])
    unmeasured = registration.unmeasured
    frames = cardiac_frames(seq, volume, reference, unmeasured)
    if unmeasured[frames.reference]:
        raise EchoDataError(seq.source, f"strain reference frame {frames.reference} ({frames.reference_source}) "
                                        "has no measured motion (no signal, or unlike the registration "
                                        "reference): set the reference on another frame")
    gls_endo, gls_mid = length_strain(endo, frames.reference), length_strain(mid, frames.reference)
    segmental = segment_strain(endo, n, frames.reference)
    deformation = deformation_gradient(u, seq.spacing, myocardium.mask)
    longitudinal, transverse = (rereferenced_stretch(m, frames.reference) for m in
                                wall_strain_maps(deformation, myocardium.direction, myocardium.mask))
    asked = full_cycle is not None
    if full_cycle is None:
        full_cycle = frames.ed == 0 and seq.es_in_file is not None and 0 < seq.es_in_file < seq.n_frames - 1
    problem = end_of_cycle_problem(frames, unmeasured) if full_cycle else None
    drift_note = None if problem is None else \
        f"{'--full-cycle: ' if asked else ''}end-of-cycle drift left blank: {problem}"
    full_cycle = full_cycle and problem is None
    quality = segment_quality(registration.warped, deformation, myocardium.segment_map, segmental,
                              gls_endo, seq.frame_times)
    known_view = apical_view(view if view is not None else seq.metadata.get("view"))
    return StrainResult(
        view=known_view, segment_names=segment_names(known_view), frames=frames,
        tracked_from=registration.reference, frame_times=seq.frame_times.copy(),
        spacing_known=seq.spacing_known, frame_times_known=seq.frame_times_known,
        gls_endo=gls_endo, gls_mid=gls_mid, segmental=segmental, endo_contour=endo,
        mid_contour=mid, longitudinal_map=longitudinal, transverse_map=transverse,
        lv_area=polygon_area(endo), lv_volume=volume, quality=quality, full_cycle=bool(full_cycle),
        drift_mm=loop_closure_mm(u, myocardium.mask, frames.ed) if full_cycle else float("nan"),
        myocardium=myocardium, seconds=time.perf_counter() - start,
        registration=registration_record(registration), unmeasured=unmeasured, drift_note=drift_note,
        **({"frame_times_remedy": seq.frame_times_remedy} if "frame_times_remedy" in seq.metadata else {}))


# what a strain summary repeats of its registration's parameters (those that name how it was made)
RECORDED_PARAMETERS = ("model", "licence", "passes", "network_precision", "refine", "refine_iterations",
                       "refine_learning_rates", "refine_anatomy_weight", "refine_start", "refine_start_used",
                       "refine_chain_key_seconds",
                       "flip_average", "anchor", "anchor_frame")


def registration_record(registration: RegistrationResult) -> dict[str, Any]:
    """How ``registration`` tracked the motion, for the strain summary: method, mode, device and
    those of its parameters in :data:`RECORDED_PARAMETERS` that it has (DLIR's model, licence,
    passes and their precision, refinement with its steps, step sizes, anatomy maps' weight and start, systole
    anchor and the anchor frame used)."""
    return {"method": registration.method, "mode": registration.mode, "device": registration.device,
            **{key: registration.parameters[key] for key in RECORDED_PARAMETERS if key in registration.parameters}}


def biplane_ef(four_chamber: StrainResult, two_chamber: StrainResult) -> dict[str, float]:
    """Biplane EDV, ESV (ml) and EF (%) from the A4C and A2C analyses of the same heart: each
    view's tracked cavity at its own ED and ES frames, by the biplane method of discs. EDV and
    ESV are NaN when either view's pixel size is unknown (EF, a ratio, is still given); a volume
    whose ED or ES frame in either view has no measured motion
    (:meth:`.result.StrainResult.motion_measured`) is NaN, and EF with it."""
    for result, expected in ((four_chamber, "A4C"), (two_chamber, "A2C")):
        if result.view not in (None, expected):
            raise ValueError(f"biplane EF needs an A4C and an A2C analysis; got {result.view} "
                             f"where {expected} was expected")
    def volume(phase: str) -> float:
        frames = [(result, getattr(result, f"{phase}_index")) for result in (four_chamber, two_chamber)]
        if not all(result.motion_measured(frame) for result, frame in frames):
            return float("nan")
        return biplane_volume(*(result.endo_contour[frame] for result, frame in frames))

    edv, esv = volume("ed"), volume("es")
    known = four_chamber.spacing_known and two_chamber.spacing_known
    return {"edv_ml": edv if known else float("nan"), "esv_ml": esv if known else float("nan"),
            "ef_pct": ejection_fraction(edv, esv)}
