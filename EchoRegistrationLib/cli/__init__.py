"""The ``echoreg`` command line.

Subcommands: ``info`` (what a file holds), ``convert`` (any readable format to .seq.nrrd / NIfTI /
MetaImage), ``register`` (every frame to a reference frame; warped frames, fields and a report),
``strain`` (GLS, segments, EF tables and pictures), ``batch`` (strain over a cohort, with one cohort
table), ``train`` (the deep-learning models), ``models`` (the installed ones, with their terms),
``enhance`` (echo enhancement), ``web`` (the workflow in a browser page), ``demo`` (the built-in
pipeline on simulated data).
Each subcommand is a thin layer over :mod:`EchoRegistrationLib.workflow`. Errors in the input, the
options or the output location end the command with exit status 2 and one line naming the file (or
option) and the problem; Ctrl-C ends it with exit status 130 and one line. Either way no partial
output is left. Facts about the input or the result that the numbers depend on (frames missing
from a file, a flagged spacing, frames without signal, a registration that lowered the similarity) or
a trained model (an anatomy network that segments its validation frames poorly) are printed as one
``echoreg: warning:`` line each.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..sequence import EchoWarning
from .common import EXIT_ERROR, EXIT_INTERRUPTED, INPUT_ERRORS, OneLineParser, error_line, print_warnings


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(Path(args.output), overwrite=args.overwrite)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``echoreg`` parser with every subcommand."""
    from .batch import add_batch_parser
    from .enhance import add_enhance_parser
    from .models import add_models_parser
    from .register import add_register_parsers
    from .strain import add_strain_parser
    from .train import add_train_parser
    from .web import add_web_parser

    parser = OneLineParser(prog="echoreg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_register_parsers(sub)
    add_strain_parser(sub)
    add_batch_parser(sub)
    add_train_parser(sub)
    add_enhance_parser(sub)
    add_models_parser(sub)
    add_web_parser(sub)
    demo = sub.add_parser("demo", help="run the built-in pipeline on simulated data and write its outputs")
    demo.add_argument("-o", "--output", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier demo run")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *details: Any, **kw: Any) -> None:
    """Print an :class:`~..sequence.EchoWarning` (about the data or a model) as one ``echoreg: warning:``
    line; others as Python does."""
    if issubclass(category, EchoWarning):
        print_warnings([str(message)])
    else:
        _PYTHON_SHOWWARNING(message, category, *details, **kw)


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0; 1 when studies of a batch failed, each
    then a row of the cohort table; 2 for any error; 130 for Ctrl-C)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", EchoWarning)
        try:
            args = build_parser().parse_args(argv)
            return args.run(args)
        except BrokenPipeError:  # the reader of the output went away (``echoreg info ... | head``)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return EXIT_ERROR
        except INPUT_ERRORS as err:
            print(f"echoreg: error: {error_line(err)}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt as err:  # a command may say what it leaves behind (train: its checkpoints)
            start = "\n" if sys.stderr.isatty() else ""  # not after the terminal's own "^C"
            print(f"{start}echoreg: interrupted; {str(err) or 'no outputs were written'}", file=sys.stderr)
            return EXIT_INTERRUPTED


__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "build_parser", "main"]
