"""The ``echoreg`` command line.

Subcommands: ``info`` (what a file holds), ``convert`` (any readable format to .seq.nrrd / NIfTI /
MetaImage), ``register`` (every frame to a reference frame; warped frames, fields and a report),
``strain`` (GLS, segments, EF tables and pictures), ``train`` (the deep-learning models), ``demo``
(the built-in pipeline on simulated data). Errors in the input, the options or the output
location end the command with exit status 2 and one line naming the file (or option) and the
problem; Ctrl-C ends it with exit status 130 and one line. Either way no partial output is left.
Facts about the input or the result that the numbers depend on (frames missing from a file, a
flagged spacing, frames without signal, a registration that lowered the similarity) are printed as
one ``echoreg: warning:`` line each.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .sequence import EchoDataError, EchoDataWarning, EchoSequence

# EchoDataError covers bad input and model files; OSError an unreadable input or an output
# location that cannot be written (read-only, full, below a file, existing files).
INPUT_ERRORS = (EchoDataError, OSError)
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``echoreg register: error: ...``)
    with exit status 2, like every other error of the command."""

    def error(self, message: str):  # noqa: D102 (argparse API)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def count(minimum: int):
    """argparse type factory: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value
    return parse


def device_name(text: str) -> str:
    """argparse type: a device this machine has ("auto", "cpu", "cuda", "cuda:N")."""
    from .registration.tracking import resolve_device

    try:
        resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def check_reference(seq: EchoSequence, reference: int | None) -> int:
    """The reference frame: ``reference``, or ED when known, else 0.

    Raises:
        EchoDataError: the frame is not in the sequence.
    """
    reference = (seq.ed_index or 0) if reference is None else reference
    if not 0 <= reference < seq.n_frames:
        raise EchoDataError(seq.source, f"reference frame {reference} is outside 0..{seq.n_frames - 1}")
    return reference


def print_warnings(lines: Sequence[str]) -> None:
    """Print each warning as one line on stderr (``echoreg: warning: ...``)."""
    for line in lines:
        print(f"echoreg: warning: {line}", file=sys.stderr)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="DICOM, NIfTI, MetaImage, NRRD, .seq.nrrd, AVI/MP4, or a CAMUS patient folder")
    parser.add_argument("--frame-rate", type=float, help="frames per second, for files that do not record time")
    parser.add_argument("--view", help="CAMUS view (2CH or 4CH) when the folder holds both")
    parser.add_argument("--crop-to-region", action="store_true", help="DICOM: crop to the 2D tissue region")
    parser.add_argument("--labels", help="label map (CAMUS codes) on the same grid, to attach: any input "
                                         "format holding integer codes, e.g. .nii.gz or a Slicer labelmap .seq.nrrd")
    parser.add_argument("--mask", help="field-of-view (sector) mask on the same grid, nonzero inside, in any "
                                       "input format; registration compares the images only inside it")


def _load(args: argparse.Namespace):
    from .io.dispatch import load_sequence

    options: dict[str, Any] = {}
    if args.frame_rate is not None:
        options["frame_rate"] = args.frame_rate
    if args.view is not None:
        options["view"] = args.view
    if args.crop_to_region:
        options["crop_to_region"] = True
    return load_sequence(args.input, labels=args.labels, mask=args.mask, **options)


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
    check_outputs(seq, args.output, overwrite=args.overwrite, itk_fields=args.itk_fields)  # before the work
    reference = check_reference(seq, args.reference)
    options = {k: v for k, v in (("loss", args.loss), ("iterations", args.iterations),
                                 ("control_spacing", args.control_spacing)) if v is not None}
    if args.method == "dlir":
        options.update(model=args.model, refine=args.refine, flip_average=args.flip_average)
    with tqdm(total=seq.n_frames - 1, unit="pair", desc=f"{args.method} registration") as bar:
        result = register_sequence(seq, args.method, reference=reference, mode=args.mode,
                                   device=args.device, progress=lambda done, _: bar.update(done - bar.n),
                                   enhance=args.enhance, **options)
    save_registration(result, seq, args.output, overwrite=args.overwrite, itk_fields=args.itk_fields)
    print_warnings(result.warnings)
    print(f"registered {seq.n_frames} frames to frame {result.reference} on {result.device} in "
          f"{result.seconds:.2f} s ({1000 * result.seconds_per_pair:.0f} ms per pair)")
    print(f"NCC to the reference: {result.similarity_before.mean():.3f} before, "
          f"{result.similarity_after.mean():.3f} after; max folding {result.folding_fraction.max():.2%}")
    fields = ", fields/" if args.itk_fields else ""
    print(f"wrote {args.output}/warped.seq.nrrd, displacement.npz, report.json{fields}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), overwrite=args.overwrite)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .enhancement.cli import add_enhance_option, add_enhance_parser

    parser = OneLineParser(prog="echoreg", description=__doc__.splitlines()[0])
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
    register.add_argument("--refine", type=count(0), default=0, help="dlir: optimisation steps refining the network")
    register.add_argument("--flip-average", action="store_true",
                          help="dlir: average each pair's field with that of the mirrored pair (twice the time)")
    register.add_argument("--reference", type=int, help="reference frame (default: ED when known, else 0)")
    register.add_argument("--mode", choices=["sequential", "to_reference"],
                          help="track neighbouring frames or register each frame to the reference "
                               "(default: sequential; dlir: the mode its model was trained for)")
    register.add_argument("--loss", choices=["lncc", "ncc", "mse", "mi"], help="similarity (default: mse for deformable, ncc for rigid and affine)")
    register.add_argument("--iterations", type=count(1), help="optimiser steps per pyramid level")
    register.add_argument("--control-spacing", type=positive_number,
                          help="deformable control grid spacing, mm")
    register.add_argument("--device", default="auto", type=device_name, help="auto, cpu or cuda")
    add_enhance_option(register)
    register.add_argument("--itk-fields", action="store_true",
                          help="also write one ITK displacement field per frame (fields/*.mha, "
                               "compressed; large), for ITK tools and Slicer transforms")
    register.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    register.set_defaults(run=_cmd_register)

    from .strain.cli import add_strain_parser  # here: strain.cli imports this module's helpers
    add_strain_parser(sub)
    from .dlir.cli import add_train_parser
    add_train_parser(sub)
    add_enhance_parser(sub)

    demo = sub.add_parser("demo", help="run the built-in pipeline on simulated data and write its outputs")
    demo.add_argument("-o", "--output", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier demo run")
    demo.set_defaults(run=_cmd_demo)
    return parser


def error_line(err: BaseException) -> str:
    """One line for an error: an OSError as "file: problem" (errno's words), others as they are."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        problem = "no space left on the device" if err.errno == errno.ENOSPC else err.strerror
        return f"{err.filename}: {problem}"
    return " ".join(str(err).split())


def _show_warning(message: Warning | str, category: type[Warning], *details: Any, **kw: Any) -> None:
    """Print an :class:`EchoDataWarning` as one ``echoreg: warning:`` line; others as Python does."""
    if issubclass(category, EchoDataWarning):
        print_warnings([str(message)])
    else:
        _PYTHON_SHOWWARNING(message, category, *details, **kw)


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 2 for any error, 130 for Ctrl-C)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", EchoDataWarning)
        try:
            args = build_parser().parse_args(argv)
            return args.run(args)
        except INPUT_ERRORS as err:
            print(f"echoreg: error: {error_line(err)}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("echoreg: interrupted; no outputs were written", file=sys.stderr)
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
