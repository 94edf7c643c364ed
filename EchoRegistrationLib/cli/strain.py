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
(:mod:`..strain.reference`). Every registration option of ``echoreg register`` applies; with
``--registration``, whose registration is reused as it was made, one it was not made with is refused
(:func:`refuse_options_not_in_registration`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..sequence import EchoDataError
from ..workflow import METHODS
from .common import (add_input_options, add_myocardium_options, add_output_options, add_registration_options,
                     add_slicer_views_option, check_slicer_views_writable, describe_registration_quality,
                     option_value, pair_progress, print_run_details, print_warnings, settings_from_args,
                     study_from_args, write_slicer_views)

# The registration options (common.add_registration_options) and the key of the report.json of echoreg register
# that records each (method and mode at its top, the others in its "parameters"; --float32 as the precision the
# networks ran in). --reference is checked against the reused registration's reference frame by
# workflow.run_strain; --device, which changes no result, is only warned about.
RECORDED_OPTIONS = {"--method": "method", "--mode": "mode", "--model": "model", "--refine": "refine",
                    "--refine-start": "refine_start", "--flip-average": "flip_average",
                    "--float32": "network_precision", "--anchor": "anchor", "--loss": "loss",
                    "--iterations": "iterations", "--control-spacing": "control_spacing", "--enhance": "enhance"}


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
                             "instead of registering again, as it was made (refused when its input or geometry "
                             "differs, or with a registration option it was not made with)")
    parser.set_defaults(run=run_strain_command)
    return parser


def _same(given: Any, recorded: Any) -> bool:
    """Whether an option's parsed value ``given`` is the value a report recorded (a list: one per level)."""
    if isinstance(recorded, list):
        return bool(recorded) and all(_same(given, value) for value in recorded)
    if isinstance(given, bool) or isinstance(recorded, bool):
        return given is recorded
    if isinstance(given, (int, float)) and isinstance(recorded, (int, float)):
        return math.isclose(given, recorded, rel_tol=1e-9, abs_tol=1e-12)
    return given == recorded


def _stored(key: str, report: Mapping[str, Any]) -> Any:
    """The value of an option's ``key`` that a registration's ``report`` holds (method and mode at its top, the
    others in its parameters), None where it holds none."""
    return report.get(key) if key in ("method", "mode") else report.get("parameters", {}).get(key)


def _recorded(key: str, report: Mapping[str, Any]) -> Any:
    """The value of an option's ``key`` that a registration's ``report`` holds (:func:`_stored`), or, for the
    loss and the control points' spacing, which a DLIR refinement records only when they were given, the default
    it used (that of the deformable optimiser, :func:`register_pair`; none for the network alone, refine 0)."""
    import inspect

    from ..registration import register_pair
    from ..registration.tracking import METHOD_DEFAULTS

    value = _stored(key, report)
    method, parameters = report.get("method"), report.get("parameters", {})
    optimised = method == "deformable" or (method == "dlir" and bool(parameters.get("refine")))
    if value is None and optimised:
        if key == "loss":
            return METHOD_DEFAULTS["deformable"]["loss"]
        if key == "control_spacing":
            return inspect.signature(register_pair).parameters["control_spacing"].default
    return value


def _listed(items: list[str], last: str) -> str:
    """"a", "a and b", "a, b and c" (``last``: "and" / "or")."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def refuse_options_not_in_registration(args: argparse.Namespace, folder: str, report: Mapping[str, Any]) -> None:
    """``--registration`` reuses a registration as it was made: refuse the registration options given (those not
    None or False; :data:`RECORDED_OPTIONS`) that its ``report`` (its report.json) does not record, each named with
    what the report records; warn of a --device other than the one it ran on (the device changes no result).

    Raises:
        EchoDataError: naming the ``folder`` and each such option with the report's value.
    """
    from ..dlir.shipped import installed_model_name

    differing = []
    for option, key in RECORDED_OPTIONS.items():
        given = option_value(args, option)
        if given is None or given is False:
            continue
        recorded = _recorded(key, report)
        if (recorded == "float32") if option == "--float32" else _same(given, recorded):
            continue
        if option == "--model" and recorded is not None and installed_model_name(str(given)) == recorded:
            continue  # the installed model given by its folder
        value = "" if given is True else f" {given:g}" if isinstance(given, float) else f" {given}"
        made = f"no {key}" if recorded is None else \
            f"{key} {', '.join(map(str, recorded)) if isinstance(recorded, list) else recorded}"
        default = recorded is not None and _stored(key, report) is None
        where = "the default it used, not in its report.json" if default else "its report.json"
        differing.append(f"{option}{value} ({where}: {made})")
    if differing:
        them = "it" if len(differing) == 1 else "them"
        raise EchoDataError(folder, f"--registration reuses this registration as it was made, not with "
                                    f"{_listed(differing, 'or')}: leave {them} out, or register again with {them} "
                                    f"(echoreg register)")
    device = str(report.get("device", ""))
    if args.device != "auto" and not device.startswith(args.device):
        print_warnings([f"--device {args.device} not used: --registration reuses {folder} as it was made "
                        f"(on {device or 'a device it does not record'})"])


def run_strain_command(args: argparse.Namespace) -> int:
    """The ``echoreg strain`` command; returns the exit status."""
    from ..strain.reference import tracking_reference_source
    from ..strain.result import percent_text
    from ..workflow import read_registration_report, run_strain

    check_slicer_views_writable(args)
    if args.registration:  # before any work
        report = read_registration_report(args.registration)
        refuse_options_not_in_registration(args, args.registration, report)
        if args.method is None and report.get("method") in METHODS:  # its own method's options are checked
            args = argparse.Namespace(**{**vars(args), "method": report["method"]})
    study, settings = study_from_args(args), settings_from_args(args, myocardium="auto")
    with pair_progress(f"{settings.method} registration") as progress:
        analysis = run_strain(study, settings, args.output, overwrite=args.overwrite,
                              registration=args.registration,
                              progress=progress)
    seq, registration, result = analysis.sequence, analysis.registration, analysis.strain
    print(f"myocardium and tracking from frame {registration.reference}: "
          f"{tracking_reference_source(seq, args.reference)}")
    how = f"reused {args.registration}" if args.registration else f"registered in {registration.seconds:.1f} s"
    print(f"{seq.n_frames} frames to frame {registration.reference} ({registration.method}, {how}); "
          f"strain in {result.seconds:.2f} s")
    print_run_details(registration.parameters, args.registration)
    print(describe_registration_quality(registration))
    print(result.frames.describe())
    print(f"peak systolic GLS {result.describe_peak()} (endocardial), "
          f"{percent_text(result.peaks()['GLS mid-wall']['peak_pct'])} (mid-wall); {result.describe_volumes()}; "
          f"tracking quality {np.mean(result.quality.score):.2f}{result.describe_reliability()}")
    print_warnings([*registration.warnings, *result.warnings()])
    print(f"wrote strain_frames.csv, strain_summary.csv, strain_summary.json, strain_curves.png, "
          f"strain_map.png, strain_segments.png in {args.output}")
    write_slicer_views(args, analysis)
    return 0
