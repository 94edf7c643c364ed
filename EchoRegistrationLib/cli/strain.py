"""``echoreg strain``: load, register (or reuse an ``echoreg register`` folder), compute strain,
volumes and EF, write tables and pictures.

    echoreg strain INPUT [--labels FILE | --landmarks x1,y1,x2,y2,x3,y3] -o OUTDIR
                   [--method dlir --model NAME --flip-average ...] [--registration REGDIR]

The myocardium at the tracked-from frame (``--reference``, else the file's ED, else frame 0) comes
from ``--labels`` (a CAMUS-coded label file on the same grid; that frame's map), from
``--landmarks`` (mm, x,y order: annulus, apex, annulus, with ``--wall-width``; pixels, column,row,
when the file gives no pixel size), or from the input's own labels (CAMUS folders). Without ED in
the file, ED is the user's ``--reference``, else detected from the tracked cavity volume, as ES is
when neither the file nor ``--es-frame`` gives it; strain is taken relative to ED
(:mod:`..strain.reference`). Every registration option of ``echoreg register`` applies.
"""

from __future__ import annotations

import argparse

import numpy as np

from .common import (add_input_options, add_myocardium_options, add_output_options, add_registration_options,
                     add_slicer_views_option, describe_registration_quality, pair_progress, print_run_details,
                     print_warnings, settings_from_args, study_from_args, write_slicer_views)


def add_strain_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``strain`` subcommand on the ``echoreg`` sub-parsers; returns its parser."""
    parser = subparsers.add_parser(
        "strain", help="register a sequence, then write GLS, segmental strain, volumes and EF",
        description="Register every frame to the reference (ED) frame, then compute GLS, segmental "
                    "strain, strain maps, LV volumes and EF and write CSV tables, a JSON summary and "
                    "PNG pictures.")
    add_input_options(parser, es_frame=True)
    add_myocardium_options(parser)
    add_output_options(parser, "replace outputs of an earlier run")
    add_registration_options(parser)
    add_slicer_views_option(parser)
    parser.add_argument("--registration", metavar="REGDIR",
                        help="reuse the output folder of an earlier 'echoreg register' of the same input "
                             "instead of registering again (refused when its input or geometry differs)")
    parser.set_defaults(run=run_strain_command)
    return parser


def run_strain_command(args: argparse.Namespace) -> int:
    """The ``echoreg strain`` command; returns the exit status."""
    from ..strain.reference import tracking_reference_source
    from ..workflow import run_strain

    study, settings = study_from_args(args), settings_from_args(args, myocardium="auto")
    with pair_progress(f"{args.method} registration") as progress:
        analysis = run_strain(study, settings, args.output, overwrite=args.overwrite,
                              registration=args.registration,
                              progress=progress)
    seq, registration, result = analysis.sequence, analysis.registration, analysis.strain
    print(f"myocardium and tracking from frame {registration.reference}: "
          f"{tracking_reference_source(seq, args.reference)}")
    how = f"reused {args.registration}" if args.registration else f"registered in {registration.seconds:.1f} s"
    print(f"{seq.n_frames} frames to frame {registration.reference} ({registration.method}, {how}); "
          f"strain in {result.seconds:.2f} s")
    print_run_details(registration.parameters)
    print(describe_registration_quality(registration))
    print(result.frames.describe())
    print(f"peak systolic GLS {result.describe_peak()} (endocardial), "
          f"{result.peaks()['GLS mid-wall']['peak_pct']:+.1f} % (mid-wall); {result.describe_volumes()}; "
          f"tracking quality {np.mean(result.quality.score):.2f}{result.describe_reliability()}")
    print_warnings([*registration.warnings, *result.warnings()])
    print(f"wrote strain_frames.csv, strain_summary.csv, strain_summary.json, strain_curves.png, "
          f"strain_map.png, strain_segments.png in {args.output}")
    write_slicer_views(args, analysis)
    return 0
