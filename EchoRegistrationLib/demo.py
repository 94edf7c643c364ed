"""The built-in demo (through :mod:`.workflow`, as every front end).

Simulate an apical echo with known motion, save it (the cine as ``simulated_a4c.seq.nrrd``, which holds no
labels, and the simulator's label maps beside it as :data:`LABELS_FILE`), load both back as ``echoreg strain
simulated_a4c.seq.nrrd --labels simulated_a4c_labels.nii.gz`` would, register every frame to ED with the
default method (:data:`.workflow.DEFAULT_METHOD`: the default DLIR model refined by
:data:`.workflow.DEFAULT_REFINE` steps), measure strain and EF, and write pictures, fields, tables and a
summary a person can open (``echoreg demo``). Its summary names the method, model, licence and refinement,
and compares the motion, GLS and EF with the simulator's truth."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .io import load_sequence, save_sequence
from .io.atomic import atomic_output_set
from .spatial.metrics import myocardial_end_point_error
from .visualize import save_frame_montage, save_registration_figure
from .workflow import describe_registration

DEMO_SEED = 2026
CINE, FRAMES_PNG, REGISTRATION_PNG = "simulated_a4c.seq.nrrd", "frames.png", "registration.png"
SUMMARY = "summary.txt"
# the simulator's label maps (CAMUS codes, every frame): a .seq.nrrd holds no labels (io.seqnrrd)
LABELS_FILE = "simulated_a4c_labels.nii.gz"


def demo_output_names(n_frames: int, slicer_views: bool) -> list[str]:
    """The files :func:`run_demo` writes for a cine of ``n_frames`` frames (ED the first, ES the last), relative
    to its folder; ``slicer_views``: with the pictures of ED and ES as the Slicer module shows them."""
    from .registration.export import output_names
    from .strain.outputs import OUTPUT_NAMES

    views = []
    if slicer_views:
        from .mrml.pictures import slice_view_name

        views = [f"slicer_views/{slice_view_name(frame)}" for frame in sorted({0, n_frames - 1})]
    return [CINE, LABELS_FILE, FRAMES_PNG, REGISTRATION_PNG, *(f"registration/{name}" for name in output_names(None)),
            *(f"strain/{name}" for name in OUTPUT_NAMES), *views, SUMMARY]


def run_demo(output: Path, *, overwrite: bool = False, n_frames: int = 20) -> dict[str, float]:
    """Run the demo into the folder ``output``; returns the headline numbers. The files
    (:func:`demo_output_names`) are written as one set (:func:`.io.atomic.atomic_output_set`): checked before
    any work, moved in at the end; a failure or Ctrl-C leaves ``output`` as it was.

    Raises:
        FileExistsError: one of the files exists and not ``overwrite`` (before any work); NotADirectoryError,
            PermissionError: ``output`` cannot be created or written.
    """
    from .io.itk import write_itk_image
    from .registration import save_registration
    from .simulation import simulate_sequence
    from .strain.compute import myocardium_at_reference

    slicer_views = importlib.util.find_spec("slicer") is not None  # slicer-core: the run as the module shows it
    with atomic_output_set(output, demo_output_names(n_frames, slicer_views), overwrite) as tmp:
        simulated = simulate_sequence(view="A4C", cycle="half", n_frames=n_frames, seed=DEMO_SEED)
        # .seq.nrrd holds the images, times, geometry, view and ED/ES (frames 0 and T - 1); the labels go beside it
        cine = save_sequence(simulated.sequence, tmp / CINE)
        labels = write_itk_image(simulated.sequence, tmp / LABELS_FILE, array=simulated.sequence.labels)
        seq = load_sequence(cine, labels=labels)
        # the source is the file as it will be named (it is written in a temporary folder)
        seq = dataclasses.replace(seq, metadata={**seq.metadata, "source": str(output / CINE)})
        save_frame_montage(seq, tmp / FRAMES_PNG)
        print(seq.describe(labels_source=output / LABELS_FILE))

        from .strain.outputs import save_strain_outputs
        from .workflow import WorkflowSettings, analyse

        view = simulated.sequence.metadata["view"]
        analysis = analyse(seq, WorkflowSettings(apical_view=view), myocardium_at_reference(seq, 0))
        result, strain = analysis.registration, analysis.strain
        save_registration(result, seq, tmp / "registration")
        es = seq.n_frames - 1
        save_registration_figure(seq, result.displacement, result.warped, es, 0, tmp / REGISTRATION_PNG)
        save_strain_outputs(strain, seq, tmp / "strain")
        if slicer_views:
            from .mrml.pictures import write_slice_views
            from .mrml.pipeline import Analysis

            write_slice_views(Analysis(seq, result, strain), tmp / "slicer_views")
        numbers, lines = _summary(simulated, seq, result, strain)
        (tmp / SUMMARY).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return numbers


def _summary(simulated: Any, seq: Any, result: Any, strain: Any) -> tuple[dict[str, float], list[str]]:
    """The demo's headline numbers and the lines of its summary, from the ``simulated`` truth, the cine ``seq``,
    its registration ``result`` and ``strain``."""
    es = seq.n_frames - 1
    epe = myocardial_end_point_error(result.displacement, simulated.displacement, simulated.myocardium_ed)
    identity = myocardial_end_point_error(np.zeros_like(simulated.displacement), simulated.displacement,
                                          simulated.myocardium_ed)
    numbers = {
        "seconds": result.seconds, "seconds_per_pair": result.seconds_per_pair,
        "epe_es_mm": float(epe[es]), "epe_mean_mm": float(epe[1:].mean()),
        "identity_epe_es_mm": float(identity[es]), "max_folding_fraction": float(result.folding_fraction.max()),
        **dict(zip(("ncc_before", "ncc_after"), result.mean_similarity())),
        "gls_peak_pct": float(strain.peaks()["GLS endocardial"]["peak_pct"]),
        "gls_true_pct": float(simulated.gls_endo.min()),
        "ef_pct": float(strain.ef), "ef_true_pct": float(simulated.ef),
    }
    lines = [
        f"EchoRegistration demo: simulated A4C, {seq.n_frames} frames {seq.frame_shape[0]}x{seq.frame_shape[1]}, "
        f"spacing {seq.spacing[0]:.3f} mm, seed {DEMO_SEED}",
        f"{describe_registration(result.method, result.parameters)} registration to frame 0 on {result.device}: "
        f"{result.seconds:.2f} s "
        f"({1000 * result.seconds_per_pair:.0f} ms per frame pair)",
        f"NCC to the reference: {numbers['ncc_before']:.3f} before, {numbers['ncc_after']:.3f} after",
        f"myocardial end-point error vs the simulator's true motion: {numbers['epe_es_mm']:.2f} mm at ES "
        f"(identity {numbers['identity_epe_es_mm']:.2f} mm), {numbers['epe_mean_mm']:.2f} mm mean over frames",
        f"folding: {100 * numbers['max_folding_fraction']:.3f} % of pixels at most",
        f"strain: peak endocardial GLS {numbers['gls_peak_pct']:.1f} % (true {numbers['gls_true_pct']:.1f} %), "
        f"EF {numbers['ef_pct']:.1f} % (true {numbers['ef_true_pct']:.1f} %)",
        *(f"warning: {warning}" for warning in strain.warnings()),
        f"files: {CINE}, {LABELS_FILE} (its labels, for echoreg strain's --labels), "
        "frames.png, registration.png, registration/ "
        "(warped.seq.nrrd, displacement.npz, report.json), strain/ (strain_frames.csv, "
        "strain_summary.csv/.json, strain_curves.png, strain_map.png, strain_segments.png), "
        "slicer_views/ (ED and ES as the Slicer module shows them; with slicer-core)",
    ]
    return numbers, lines
