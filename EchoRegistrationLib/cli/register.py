"""``echoreg info``, ``convert`` and ``register``: what a file holds, format conversion, and every
frame registered to a reference frame (warped frames, fields and a report)."""

from __future__ import annotations

import argparse

from .common import (add_input_options, add_output_options, add_registration_options, add_slicer_views_option,
                     check_slicer_views_writable, describe_registration_quality, pair_progress, print_run_details,
                     print_warnings, refuse_unheld_attachments, settings_from_args, study_from_args,
                     write_slicer_views)


def _cmd_info(args: argparse.Namespace) -> int:
    study = study_from_args(args)
    print(study.load().describe(labels_source=study.labels))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    """``echoreg convert``: what the output's format does not hold is refused before writing when an option
    attached it, else named by one warning line each (:func:`refuse_unheld_attachments`)."""
    from ..io.dispatch import save_sequence

    seq = study_from_args(args).load()
    dropped = refuse_unheld_attachments(seq, args, ("--labels", "--mask", "--frame-rate"))
    out = save_sequence(seq, args.output, overwrite=args.overwrite)
    print_warnings(dropped)
    print(f"wrote {out} ({seq.n_frames} frames)")
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from ..workflow import run_registration

    check_slicer_views_writable(args)
    study, settings = study_from_args(args), settings_from_args(args)
    with pair_progress(f"{settings.method} registration") as progress:
        analysis = run_registration(study, settings, args.output, overwrite=args.overwrite,
                                    itk_fields=args.itk_fields,
                                    progress=progress)
    result, seq = analysis.registration, analysis.sequence
    print(f"registered {seq.n_frames} frames to frame {result.reference} on {result.device} in "
          f"{result.seconds:.2f} s ({1000 * result.seconds_per_pair:.0f} ms per pair)")
    print_run_details(result.parameters)
    print(describe_registration_quality(result))
    print_warnings(result.warnings)  # after the results, before the files, as echoreg strain
    enhanced = ", enhanced.seq.nrrd" if result.enhanced is not None else ""
    fields = ", fields/" if args.itk_fields else ""
    print(f"wrote {args.output}/warped.seq.nrrd{enhanced}, displacement.npz, report.json{fields}")
    write_slicer_views(args, analysis)
    return 0


def add_register_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``info``, ``convert`` and ``register`` on the ``echoreg`` sub-parsers."""
    info = sub.add_parser("info", help="print what an echo file holds (geometry, timing, labels)")
    add_input_options(info, es_frame=True)
    info.set_defaults(run=_cmd_info)

    convert = sub.add_parser("convert", help="convert an echo sequence to .seq.nrrd, .nii.gz, .mha ...",
                             description="Convert an echo sequence. A .seq.nrrd holds the frames, their times and "
                                         "geometry, ED, ES and the view; .mha, .mhd and .nrrd the frames with their "
                                         "times; .nii and .nii.gz the frames alone. What the output does not hold is "
                                         "named by a warning line each; --frame-rate with an output that does not "
                                         "hold the times is refused.")
    add_input_options(convert, labels_help="refused: no format convert writes holds labels (give the label map "
                                           "with the converted file to echoreg register or strain)",
                      mask_help="refused: no format convert writes holds a mask (give the mask with the converted "
                                "file to echoreg register or strain)")
    convert.add_argument("output", help="output file; the suffix chooses the format")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    convert.set_defaults(run=_cmd_convert)

    register = sub.add_parser("register", help="register every frame to a reference frame")
    add_input_options(register, es_frame=True)
    add_output_options(register, "replace existing outputs")
    add_registration_options(register)
    add_slicer_views_option(register)
    register.add_argument("--itk-fields", action="store_true",
                          help="also write one ITK displacement field per frame (fields/*.mha, "
                               "compressed; large), for ITK tools and Slicer transforms")
    register.set_defaults(run=_cmd_register)
