"""The ``echoreg`` command line.

Subcommands: ``info`` (what a file holds), ``convert`` (any readable format to .seq.nrrd / NIfTI /
MetaImage), ``register`` (every frame to a reference frame; warped frames, fields and a report),
``strain`` (GLS, segments, EF tables and pictures), ``train`` (the deep-learning models), ``demo``
(the built-in pipeline on simulated data), ``web`` (the workflow in a browser page). Errors in the
input end the command with exit status 2 and one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sequence import EchoDataError, EchoSequence

if TYPE_CHECKING:
    from .registration import RegistrationResult
    from .strain import StrainResult

INPUT_ERRORS = (EchoDataError, FileNotFoundError, FileExistsError, IsADirectoryError)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="DICOM, NIfTI, MetaImage, NRRD, .seq.nrrd, AVI/MP4, or a CAMUS patient folder")
    parser.add_argument("--frame-rate", type=float, help="frames per second, for files that do not record time")
    parser.add_argument("--view", help="CAMUS view (2CH or 4CH) when the folder holds both")
    parser.add_argument("--crop-to-region", action="store_true", help="DICOM: crop to the 2D tissue region")
    parser.add_argument("--labels", help="label file (CAMUS codes) on the same grid, to attach")


def add_slicer_views_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slicer-views", action="store_true",
                        help="also write slicer_view_frameNNN.png of the reference and ES frames, rendered "
                             "as the Slicer module shows the run (needs slicer-core and EGL or OSMesa)")


def write_slicer_views(args: argparse.Namespace, seq: EchoSequence, registration: RegistrationResult,
                       strain: StrainResult | None = None) -> None:
    """With ``--slicer-views``: the run's pictures as the Slicer module shows it, into ``args.output``."""
    if not args.slicer_views:
        return
    from .mrml.pictures import write_slice_views
    from .mrml.pipeline import Analysis

    paths = write_slice_views(Analysis(seq, registration, strain), args.output, overwrite=args.overwrite)
    print(f"wrote {', '.join(p.name for p in paths)} in {args.output}")


def _load(args: argparse.Namespace):
    from .io.dispatch import load_sequence

    options: dict[str, Any] = {}
    if args.frame_rate is not None:
        options["frame_rate"] = args.frame_rate
    if args.view is not None:
        options["view"] = args.view
    if args.crop_to_region:
        options["crop_to_region"] = True
    return load_sequence(args.input, labels=args.labels, **options)


def _cmd_info(args: argparse.Namespace) -> int:
    print(_load(args).describe())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .io.dispatch import save_sequence

    seq = _load(args)
    out = save_sequence(seq, args.output, overwrite=args.overwrite)
    print(f"wrote {out} ({seq.n_frames} frames)")
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .registration import register_sequence, save_registration
    from .registration.export import check_outputs

    seq = _load(args)
    check_outputs(seq, args.output, overwrite=args.overwrite)  # fail before the work, not after
    options = {k: v for k, v in (("loss", args.loss), ("iterations", args.iterations),
                                 ("control_spacing", args.control_spacing)) if v is not None}
    if args.method == "dlir":
        options.update(model=args.model, refine=args.refine, flip_average=args.flip_average)
    with tqdm(total=seq.n_frames - 1, unit="pair", desc=f"{args.method} registration") as bar:
        result = register_sequence(seq, args.method, reference=args.reference, mode=args.mode,
                                   device=args.device, progress=lambda done, _: bar.update(done - bar.n),
                                   **options)
    save_registration(result, seq, args.output, overwrite=args.overwrite)
    print(f"registered {seq.n_frames} frames to frame {result.reference} on {result.device} in "
          f"{result.seconds:.2f} s ({1000 * result.seconds_per_pair:.0f} ms per pair)")
    print(f"NCC to the reference: {result.similarity_before.mean():.3f} before, "
          f"{result.similarity_after.mean():.3f} after; max folding {result.folding_fraction.max():.2%}")
    print(f"wrote {args.output}/warped.seq.nrrd, displacement.npz, fields/, report.json")
    write_slicer_views(args, seq, result)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), overwrite=args.overwrite)
    return 0


def _cmd_web(args: argparse.Namespace) -> int:
    from .web.app import serve

    serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, cine=args.cine)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echoreg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="print what an echo file holds (geometry, timing, labels)")
    _add_input_options(info)
    info.set_defaults(run=_cmd_info)

    convert = sub.add_parser("convert", help="convert an echo sequence to .seq.nrrd, .nii.gz, .mha ...")
    _add_input_options(convert)
    convert.add_argument("output", help="output file; the suffix chooses the format")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    convert.set_defaults(run=_cmd_convert)

    register = sub.add_parser("register", help="register every frame to a reference frame")
    _add_input_options(register)
    register.add_argument("-o", "--output", required=True, help="output folder")
    register.add_argument("--method", default="deformable", choices=["rigid", "affine", "deformable", "dlir"])
    register.add_argument("--model", help="dlir: installed model name or checkpoint folder (default: the shipped model)")
    register.add_argument("--refine", type=int, default=0, help="dlir: optimisation steps refining the network")
    register.add_argument("--flip-average", action="store_true",
                          help="dlir: average each pair's field with that of the mirrored pair (twice the time)")
    register.add_argument("--reference", type=int, help="reference frame (default: ED when known, else 0)")
    register.add_argument("--mode", choices=["sequential", "to_reference"],
                          help="track neighbouring frames or register each frame to the reference "
                               "(default: sequential; dlir: the mode its model was trained for)")
    register.add_argument("--loss", choices=["lncc", "ncc", "mse", "mi"], help="similarity (default: mse for deformable, ncc for rigid and affine)")
    register.add_argument("--iterations", type=int, help="optimiser steps per pyramid level")
    register.add_argument("--control-spacing", type=float, help="deformable control grid spacing, mm")
    register.add_argument("--device", default="auto", help="auto, cpu or cuda")
    register.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_slicer_views_option(register)
    register.set_defaults(run=_cmd_register)

    from .strain.cli import add_strain_parser  # here: strain.cli imports this module's helpers
    add_strain_parser(sub)
    from .dlir.cli import add_train_parser
    add_train_parser(sub)

    demo = sub.add_parser("demo", help="run the built-in pipeline on simulated data and write its outputs")
    demo.add_argument("-o", "--output", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier demo run")
    demo.set_defaults(run=_cmd_demo)

    web = sub.add_parser("web", help="the Slicer module's workflow in a browser page served from this machine "
                                     "(needs the [web] extra)")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    web.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port)")
    web.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200)")
    web.add_argument("--cine", help="a cine on this machine to open at start")
    web.set_defaults(run=_cmd_web)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except INPUT_ERRORS as err:
        print(f"echoreg: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
